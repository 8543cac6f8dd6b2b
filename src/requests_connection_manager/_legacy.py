"""The API of requests-connection-manager 1.0.0, kept name for name.

Endpoint configs, credential setters, TLS and timeout setters, hooks and the read-only
attribute views: each is a thin front door onto the manager's settings (validated, then
swapped in as a new immutable snapshot, effective from the next request on) or its hooks.
:class:`~._manager.ConnectionManager` inherits them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Union

from ._auth import DEFAULT_API_KEY_HEADER
from ._batch import ProgressCallback, run_batch
from ._validate import CertType, VerifyType, check_cert, check_verify
from .plugins import HookType, PluginManager

if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence

    import requests
    from requests import Response

    from ._engine import Engine
    from .plugins import Hook

__all__ = ["BreakerSummary", "LegacyAPI"]

_AUTH_TYPES = {
    "api_key": ({"api_key"}, {"header_name"}),
    "bearer": ({"token"}, set()),
    "oauth2": ({"token"}, set()),
    "basic": ({"username", "password"}, set()),
}
_AUTH_KEYS = ("api_key", "api_key_header", "bearer_token", "oauth2_token", "basic_auth")


class BreakerSummary(NamedTuple):
    """What ``cm.circuit_breaker`` gives (see :attr:`LegacyAPI.circuit_breaker`).

    Attributes:
        current_state: The most severe state among the hosts' breakers.
        fail_counter: Consecutive failures counted, summed over the hosts.
        fail_max: ``circuit_breaker_failure_threshold`` (None when the breaker is off).
        reset_timeout: ``circuit_breaker_recovery_timeout`` (None when off).
        hosts: Each tracked host key and its breaker's state.
    """

    current_state: str
    fail_counter: int
    fail_max: Optional[int]
    reset_timeout: Optional[float]
    hosts: Mapping[str, str]


class LegacyAPI:
    """The setters, hooks and attribute views of 1.0.0's ``ConnectionManager``."""

    _engine: Engine
    _session: requests.Session

    request: Callable[..., Response]  # the manager's

    def batch_request(
        self,
        requests_data: Sequence[tuple[str, str, dict[str, Any]]],
        max_workers: int = 5,
        return_exceptions: bool = True,
        on_progress: Optional[ProgressCallback] = None,
    ) -> list[Union[Response, Exception]]:
        """Send many requests concurrently through the pipeline (limiter and breaker shared).

        ``requests_data`` holds ``(method, url, kwargs)`` per request; results (responses,
        or exceptions in place of failed requests) come back in input order. See
        :func:`~._batch.run_batch` for every argument.

        Returns:
            One response or exception per request, in input order.
        """
        return run_batch(self.request, requests_data, max_workers, return_exceptions, on_progress)

    # ------------------------------------------------------------------ endpoint configs
    def add_endpoint_config(self, pattern: str, config: dict[str, Any]) -> None:
        """Add or replace the config of an endpoint pattern; it applies from the next request.

        Raises:
            ValueError: The pattern or a key or value of the config is invalid.
            TypeError: A value has the wrong type.
        """
        self._engine.settings.set_endpoint(pattern, config)

    def remove_endpoint_config(self, pattern: str) -> None:
        """Remove the config of an endpoint pattern; an unknown pattern is ignored."""
        self._engine.settings.remove_endpoint(pattern)

    def get_endpoint_configs(self) -> dict[str, dict[str, Any]]:
        """Return a copy of the endpoint configs, pattern to config."""
        return self._engine.settings.endpoint_configs()

    @property
    def endpoint_configs(self) -> Mapping[str, Mapping[str, Any]]:
        """A read-only view of the endpoint configs (change them with the methods)."""
        return MappingProxyType(
            {k: MappingProxyType(v) for k, v in self._engine.settings.endpoint_configs().items()}
        )

    # ----------------------------------------------------------------------- credentials
    def set_api_key(self, api_key: str, header_name: str = DEFAULT_API_KEY_HEADER) -> None:
        """Send ``api_key`` in the ``header_name`` header from the next request on."""
        self._engine.settings.update_credentials(api_key=api_key, api_key_header=header_name)

    def set_bearer_token(self, token: str) -> None:
        """Send ``Authorization: Bearer <token>`` from the next request on."""
        self._engine.settings.update_credentials(bearer_token=token)

    def set_oauth2_token(self, token: str) -> None:
        """Send the OAuth2 access token as a bearer token from the next request on."""
        self._engine.settings.update_credentials(oauth2_token=token)

    def set_basic_auth(self, username: str, password: str) -> None:
        """Use HTTP basic auth from the next request on."""
        self._engine.settings.update_credentials(basic_auth=(username, password))

    def set_endpoint_auth(self, pattern: str, auth_type: str, **auth_kwargs: Any) -> None:
        """Set credentials for the hosts an endpoint pattern matches.

        Args:
            pattern: The endpoint pattern (created if it has no config yet).
            auth_type: ``"api_key"`` (``api_key=``, optional ``header_name=``),
                ``"bearer"`` (``token=``), ``"oauth2"`` (``token=``) or ``"basic"``
                (``username=``, ``password=``).
            **auth_kwargs: The credential values.

        Raises:
            ValueError: ``auth_type`` is not one of the four.
            TypeError: A required keyword is missing or an unknown one is given.
        """
        if auth_type not in _AUTH_TYPES:
            raise ValueError(
                f"Unsupported auth_type: {auth_type!r} (expected one of "
                + ", ".join(map(repr, _AUTH_TYPES))
                + ")"
            )
        required, optional = _AUTH_TYPES[auth_type]
        missing = required - set(auth_kwargs)
        extra = set(auth_kwargs) - required - optional
        if missing or extra:
            wrong = sorted(missing) or sorted(extra)
            kind = "needs" if missing else "does not take"
            raise TypeError(f"set_endpoint_auth(auth_type={auth_type!r}) {kind} {wrong[0]}=")
        if auth_type == "api_key":
            fields: dict[str, Any] = {
                "api_key": auth_kwargs["api_key"],
                "api_key_header": auth_kwargs.get("header_name", DEFAULT_API_KEY_HEADER),
            }
        elif auth_type == "bearer":
            fields = {"bearer_token": auth_kwargs["token"]}
        elif auth_type == "oauth2":
            fields = {"oauth2_token": auth_kwargs["token"]}
        else:
            fields = {"basic_auth": (auth_kwargs["username"], auth_kwargs["password"])}
        config = self._engine.settings.endpoint_config(pattern) or {}
        config.update(fields)
        self._engine.settings.set_endpoint(pattern, config)

    def clear_auth(self, pattern: Optional[str] = None) -> None:
        """Forget the credentials of one endpoint pattern, or the global ones (None)."""
        if pattern is None:
            self._engine.settings.clear_credentials()
            return
        config = self._engine.settings.endpoint_config(pattern)
        if config is None:
            return
        for name in _AUTH_KEYS:
            config.pop(name, None)
        self._engine.settings.set_endpoint(pattern, config)

    # --------------------------------------------------------------------- TLS, timeouts
    def set_ssl_verification(self, verify: VerifyType) -> None:
        """Set TLS verification (True, False, or a CA bundle path) from the next request on."""
        self._session.verify = check_verify("verify", verify)

    def set_client_certificate(self, cert: Optional[CertType]) -> None:
        """Set the client certificate (a PEM path or ``(cert, key)``; None removes it)."""
        self._session.cert = check_cert("cert", cert)

    def set_timeouts(
        self, connect_timeout: Optional[float] = None, read_timeout: Optional[float] = None
    ) -> None:
        """Change the connect and/or read timeout from the next request on (None: unchanged)."""
        changes = {}
        if connect_timeout is not None:
            changes["connect_timeout"] = connect_timeout
        if read_timeout is not None:
            changes["read_timeout"] = read_timeout
        if changes:
            self._engine.settings.update_policy(**changes)

    def set_ssl_context(self, ssl_context: Optional[ssl.SSLContext]) -> None:
        """Use ``ssl_context`` for new HTTPS connections from the next request (None: default)."""
        self._engine.settings.update_policy(ssl_context=ssl_context)

    # ---------------------------------------------------------------------------- hooks
    @property
    def plugin_manager(self) -> PluginManager:
        """The manager's hooks."""
        return self._engine.plugins

    def register_pre_request_hook(self, hook_func: Hook) -> None:
        """Run ``hook_func(RequestContext)`` before each request is prepared."""
        self._engine.plugins.register_hook(HookType.PRE_REQUEST, hook_func)

    def register_post_response_hook(self, hook_func: Hook) -> None:
        """Run ``hook_func(ResponseContext)`` after each response."""
        self._engine.plugins.register_hook(HookType.POST_RESPONSE, hook_func)

    def register_error_hook(self, hook_func: Hook) -> None:
        """Run ``hook_func(ErrorContext)`` when a call fails; it may set a fallback response."""
        self._engine.plugins.register_hook(HookType.ERROR_HANDLER, hook_func)

    def unregister_hook(self, hook_type: Union[HookType, str], hook_func: Hook) -> None:
        """Remove a hook; one that is not registered is ignored."""
        self._engine.plugins.unregister_hook(hook_type, hook_func)

    def list_hooks(self) -> dict[str, list[str]]:
        """Return the registered hooks' names by type, e.g. ``{"pre_request": [...], ...}``."""
        return self._engine.plugins.list_hooks()

    # --------------------------------------------------------- 1.0.0 attributes (views)
    @property
    def circuit_breaker(self) -> BreakerSummary:
        """The breakers at a glance, where 1.0.0 had one ``pybreaker.CircuitBreaker``.

        1.0.0 shared one breaker between every host; this manager keeps one per host (see
        ``get_stats()["hosts"]``). This read-only summary keeps the attributes 1.0.0's
        users read: ``current_state`` (``"open"`` if any host's breaker is open, else
        ``"half-open"`` if any is half-open, else ``"closed"``; ``"disabled"`` when off),
        ``fail_counter`` (the sum), ``fail_max`` and ``reset_timeout`` (the settings).
        """
        breaker = self._engine.settings.policy.breaker
        states = {
            s.key: s.breaker.state for s in self._engine.hosts.states() if s.breaker is not None
        }
        counter = sum(
            s.breaker.failure_count for s in self._engine.hosts.states() if s.breaker is not None
        )
        names = set(states.values())
        current = next(
            (name for name in ("open", "half-open") if name in names),
            "closed" if breaker is not None or states else "disabled",
        )
        return BreakerSummary(
            current,
            counter,
            None if breaker is None else breaker.failure_threshold,
            None if breaker is None else breaker.recovery_timeout,
            MappingProxyType(states),
        )

    @property
    def timeout(self) -> Any:
        """The ``timeout`` given to the constructor."""
        return self._engine.settings.kwargs["timeout"]

    @property
    def rate_limit_requests(self) -> Optional[int]:
        """Requests per period per host, or None when rate limiting is off."""
        limit = self._engine.settings.policy.rate_limit
        return None if limit is None else limit.requests

    @property
    def rate_limit_period(self) -> Any:
        """The rate-limit period in seconds."""
        return self._engine.settings.kwargs["rate_limit_period"]

    @property
    def connect_timeout(self) -> Optional[float]:
        """The connect timeout in effect (see :meth:`set_timeouts`)."""
        return self._engine.settings.policy.timeouts.connect

    @property
    def read_timeout(self) -> Optional[float]:
        """The read timeout in effect (see :meth:`set_timeouts`)."""
        return self._engine.settings.policy.timeouts.read

    @property
    def verify(self) -> VerifyType:
        """TLS verification (see :meth:`set_ssl_verification`)."""
        verify = self._session.verify
        return True if verify is None else verify

    @property
    def cert(self) -> Optional[CertType]:
        """The client certificate (see :meth:`set_client_certificate`)."""
        return self._session.cert

    @property
    def api_key(self) -> Optional[str]:
        """The global API key (see :meth:`set_api_key`)."""
        return self._engine.settings.credentials.api_key

    @property
    def api_key_header(self) -> str:
        """The global API key's header name."""
        return self._engine.settings.credentials.api_key_header

    @property
    def bearer_token(self) -> Optional[str]:
        """The global bearer token (see :meth:`set_bearer_token`)."""
        return self._engine.settings.credentials.bearer_token

    @property
    def oauth2_token(self) -> Optional[str]:
        """The global OAuth2 token (see :meth:`set_oauth2_token`)."""
        return self._engine.settings.credentials.oauth2_token

    @property
    def basic_auth(self) -> Optional[tuple[str, str]]:
        """The global basic-auth pair (see :meth:`set_basic_auth`)."""
        return self._engine.settings.credentials.basic_auth

    @property
    def ssl_context(self) -> Optional[ssl.SSLContext]:
        """The SSL context (see :meth:`set_ssl_context`)."""
        return self._engine.settings.policy.tls.ssl_context
