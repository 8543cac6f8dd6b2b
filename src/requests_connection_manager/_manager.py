"""``ConnectionManager``: a ``requests.Session`` with the resilient pipeline mounted.

The manager validates its configuration once, owns one :class:`~._session.ManagedSession`
with a :class:`~._adapter.ResilientAdapter` mounted for ``http://`` and ``https://``, and
offers the ``requests`` verbs plus the whole API of requests-connection-manager 1.0.0:
endpoint configs, credentials, TLS and timeout setters, hooks, ``batch_request`` and
``get_stats``. Every protection lives in the adapter, so ``cm.session`` can be handed to
third-party code and still gets all of them.
"""

from __future__ import annotations

import logging
import threading
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Optional, Union

from urllib3.util import Timeout as TimeoutSauce

from ._adapter import ResilientAdapter
from ._auth import DEFAULT_API_KEY_HEADER
from ._batch import ProgressCallback, run_batch
from ._clock import Clock, SystemClock
from ._hosts import HostRegistry
from ._session import ManagedSession
from ._settings import Settings
from ._shared import SharedLink
from .config import (
    MAX_POOL_SIZE,
    CertType,
    Policy,
    VerifyType,
    check_cert,
    check_int,
    check_verify,
)
from .plugins import HookType, PluginManager

if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping, Sequence
    from types import TracebackType

    import requests
    from requests import Response
    from urllib3.util.retry import Retry

    from .plugins import Hook

__all__ = ["ConnectionManager"]

logger = logging.getLogger("requests_connection_manager")

_AUTH_TYPES = {
    "api_key": ({"api_key"}, {"header_name"}),
    "bearer": ({"token"}, set()),
    "oauth2": ({"token"}, set()),
    "basic": ({"username", "password"}, set()),
}


class ConnectionManager:
    """Connection pooling, retries, rate limiting and circuit breaking for ``requests``.

    Use it like a ``requests.Session``::

        with ConnectionManager(rate_limit_requests=100, rate_limit_period=60) as cm:
            r = cm.get("https://api.example.com/items", params={"page": 1})

    Every keyword is validated here; a bad value raises ``ValueError`` or ``TypeError``
    naming the parameter. The first twenty may be passed by position, in the order of
    requests-connection-manager 1.0.0.

    Args:
        pool_connections: Host pools to keep (``HTTPAdapter``), 1 to 10,000.
        pool_maxsize: Connections kept per host pool, 1 to 10,000 (urllib3 allocates a
            pool's slots when the pool is created).
        max_retries: Retries after the first attempt, >= 0. Ignored when ``retry`` is given.
        backoff_factor: Backoff base in seconds, >= 0: retry ``n`` waits a random time in
            ``[0, backoff_factor * 2 ** (n - 1)]`` (full jitter), capped at the policy's
            ``backoff_max``.
        rate_limit_requests: Requests allowed per ``rate_limit_period`` per host; None
            (the default) turns rate limiting off.
        rate_limit_period: The rate-limit window in seconds, > 0.
        circuit_breaker_failure_threshold: Consecutive failed attempts that open a host's
            breaker, >= 1; None turns the breaker off.
        circuit_breaker_recovery_timeout: Seconds a breaker stays open before probing, > 0.
        timeout: Connect and read timeout in seconds (a number, a ``(connect, read)``
            pair, or None for none).
        endpoint_configs: Pattern to config dict. A pattern matches a request's host
            (``api.example.com``, ``*.example.com``), optionally with a scheme, port and
            path prefix (``https://api.example.com:8443/v2``); the most specific one wins.
            A config may set any policy, TLS or credential keyword of this constructor.
        api_key: Sent in the ``api_key_header`` header to the origin each call asks for.
        api_key_header: The API key's header name.
        bearer_token: Sent as ``Authorization: Bearer <token>``.
        oauth2_token: Sent as ``Authorization: Bearer <token>``.
        basic_auth: ``(username, password)`` for HTTP basic auth.
        verify: TLS verification: True, False, or the path of a CA bundle.
        cert: Client certificate: a PEM path or a ``(cert, key)`` pair of paths.
        connect_timeout: Overrides the connect part of ``timeout``.
        read_timeout: Overrides the read part of ``timeout``.
        ssl_context: An ``ssl.SSLContext`` used for HTTPS connections.
        pool_block: Wait for a free pooled connection instead of opening an extra one.
        retry: A ``urllib3.util.Retry`` used as the retry policy instead of
            ``max_retries``/``backoff_factor``.
        rate_limit_max_wait: Longest wait for a rate-limit permit: None waits as long as
            needed (still bounded by ``total_timeout``), 0 fails fast.
        rate_limit_strategy: ``"fixed-window"`` (``ratelimit``) or ``"sliding-window"``
            (``limits``' moving window; needs the ``redis`` extra or ``limits``).
        circuit_breaker_half_open_max_calls: Concurrent probes admitted while half-open.
        total_timeout: Deadline in seconds for a whole call: attempts, waits, backoff and
            (unless streaming) the body. None: no deadline.
        retry_after_max: Longest ``Retry-After`` honoured, in seconds; a longer one raises
            ``RateLimitExceeded`` at once.
        retry_budget: Per host, the share of first attempts that may be retried in the
            long run, in ``[0, 1]`` (a token bucket: each first attempt adds this much, each
            retry takes one); None: retries are limited only by ``max_retries``.
        retry_budget_burst: Per host, retries allowed back to back after a healthy
            period (the bucket size), >= 0.
        redis_url: ``redis://...``: share rate limits and breaker state with every
            process using the same Redis and ``redis_prefix`` (needs the ``redis`` extra).
            Redis unreachable: calls go on with local state, one warning per outage.
        redis_client: A ``redis.Redis`` client to use instead of ``redis_url`` (its own
            timeouts then bound how long a dead Redis can hold a call).
        redis_prefix: Namespace of every Redis key this manager uses.
        clock: A clock for waits and deadlines (tests); the system clock by default.

    Raises:
        TypeError: A keyword has the wrong type.
        ValueError: A keyword is out of range.
    """

    def __init__(
        self,
        pool_connections: int = 10,
        pool_maxsize: int = 10,
        max_retries: int = 3,
        backoff_factor: float = 0.3,
        rate_limit_requests: Optional[int] = None,
        rate_limit_period: float = 60,
        circuit_breaker_failure_threshold: Optional[int] = 5,
        circuit_breaker_recovery_timeout: float = 60,
        timeout: Union[float, tuple[Optional[float], Optional[float]], None] = 30,
        endpoint_configs: Optional[dict[str, dict[str, Any]]] = None,
        api_key: Optional[str] = None,
        api_key_header: str = DEFAULT_API_KEY_HEADER,
        bearer_token: Optional[str] = None,
        oauth2_token: Optional[str] = None,
        basic_auth: Optional[tuple[str, str]] = None,
        verify: VerifyType = True,
        cert: Optional[CertType] = None,
        connect_timeout: Optional[float] = None,
        read_timeout: Optional[float] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        *,
        pool_block: bool = False,
        retry: Optional[Retry] = None,
        rate_limit_max_wait: Optional[float] = None,
        rate_limit_strategy: str = "fixed-window",
        circuit_breaker_half_open_max_calls: int = 1,
        total_timeout: Optional[float] = None,
        retry_after_max: float = 120,
        retry_budget: Optional[float] = 0.2,
        retry_budget_burst: int = 10,
        redis_url: Optional[str] = None,
        redis_client: Optional[Any] = None,
        redis_prefix: str = "rcm",
        clock: Optional[Clock] = None,
    ) -> None:
        check_int("pool_connections", pool_connections, 1, MAX_POOL_SIZE)
        check_int("pool_maxsize", pool_maxsize, 1, MAX_POOL_SIZE)
        if not isinstance(pool_block, bool):
            raise TypeError(f"pool_block must be a bool, got {type(pool_block).__name__}")
        verify = check_verify("verify", verify)
        cert = check_cert("cert", cert)
        if clock is not None and (
            isinstance(clock, type)
            or not all(
                callable(getattr(clock, name, None)) for name in ("monotonic", "time", "sleep")
            )
        ):
            raise TypeError(
                "clock must have monotonic(), time() and sleep(seconds, wake=None), got "
                f"{type(clock).__name__}"
            )
        self._settings = Settings(
            {
                "max_retries": max_retries,
                "backoff_factor": backoff_factor,
                "retry": retry,
                "rate_limit_requests": rate_limit_requests,
                "rate_limit_period": rate_limit_period,
                "rate_limit_max_wait": rate_limit_max_wait,
                "rate_limit_strategy": rate_limit_strategy,
                "circuit_breaker_failure_threshold": circuit_breaker_failure_threshold,
                "circuit_breaker_recovery_timeout": circuit_breaker_recovery_timeout,
                "circuit_breaker_half_open_max_calls": circuit_breaker_half_open_max_calls,
                "timeout": timeout,
                "connect_timeout": connect_timeout,
                "read_timeout": read_timeout,
                "total_timeout": total_timeout,
                "retry_after_max": retry_after_max,
                "retry_budget": retry_budget,
                "retry_budget_burst": retry_budget_burst,
                "ssl_context": ssl_context,
            },
            {
                "api_key": api_key,
                "api_key_header": api_key_header,
                "bearer_token": bearer_token,
                "oauth2_token": oauth2_token,
                "basic_auth": basic_auth,
            },
            endpoint_configs,
            wall_clock_only=clock is not None and not isinstance(clock, SystemClock),
            shared=redis_url is not None or redis_client is not None,
        )
        self._shared = _shared_link(redis_url, redis_client, redis_prefix, self._settings.policy)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._closed = threading.Event()
        self._plugins = PluginManager()
        self._hosts = HostRegistry(self._clock, on_transition=_log_transition, shared=self._shared)
        self._adapter = ResilientAdapter(
            self._settings.policy_for_url,
            self._hosts,
            self._clock,
            self._closed,
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            pool_block=pool_block,
        )
        self._session = ManagedSession(
            self._clock,
            self._closed,
            self._plugins,
            self._settings.credential_headers,
            refuse_early=self._adapter.refuse_if_open,
        )
        self._session.verify = verify
        self._session.cert = cert
        self._session.mount("http://", self._adapter)
        self._session.mount("https://", self._adapter)

    # ------------------------------------------------------------------ session surface
    @property
    def session(self) -> requests.Session:
        """The ``requests.Session`` this manager owns; calls through it are protected too."""
        return self._session

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed.is_set()

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        """Send a request through the pipeline; the arguments are those of ``requests``.

        ``timeout=`` overrides the manager's timeouts for this call; ``timeout=None``
        explicitly means no connect/read timeout (``total_timeout`` still applies).

        Returns:
            The response (or an error hook's fallback response).

        Raises:
            ConnectionManagerError: Every failure, also an instance of the matching
                requests exception.
        """
        if "timeout" in kwargs and kwargs["timeout"] is None:
            kwargs["timeout"] = TimeoutSauce(connect=None, read=None)
        return self._session.request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Response:
        """Send a GET request. See :meth:`request`."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Response:
        """Send a POST request. See :meth:`request`."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Response:
        """Send a PUT request. See :meth:`request`."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Response:
        """Send a PATCH request. See :meth:`request`."""
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Response:
        """Send a DELETE request. See :meth:`request`."""
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Response:
        """Send a HEAD request (redirects not followed unless asked, as in requests)."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Response:
        """Send an OPTIONS request. See :meth:`request`."""
        return self.request("OPTIONS", url, **kwargs)

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
        self._settings.set_endpoint(pattern, config)

    def remove_endpoint_config(self, pattern: str) -> None:
        """Remove the config of an endpoint pattern; an unknown pattern is ignored."""
        self._settings.remove_endpoint(pattern)

    def get_endpoint_configs(self) -> dict[str, dict[str, Any]]:
        """Return a copy of the endpoint configs, pattern to config."""
        return self._settings.endpoint_configs()

    @property
    def endpoint_configs(self) -> Mapping[str, Mapping[str, Any]]:
        """A read-only view of the endpoint configs (change them with the methods)."""
        return MappingProxyType(
            {k: MappingProxyType(v) for k, v in self._settings.endpoint_configs().items()}
        )

    # ----------------------------------------------------------------------- credentials
    def set_api_key(self, api_key: str, header_name: str = DEFAULT_API_KEY_HEADER) -> None:
        """Send ``api_key`` in the ``header_name`` header from the next request on."""
        self._settings.update_credentials(api_key=api_key, api_key_header=header_name)

    def set_bearer_token(self, token: str) -> None:
        """Send ``Authorization: Bearer <token>`` from the next request on."""
        self._settings.update_credentials(bearer_token=token)

    def set_oauth2_token(self, token: str) -> None:
        """Send the OAuth2 access token as a bearer token from the next request on."""
        self._settings.update_credentials(oauth2_token=token)

    def set_basic_auth(self, username: str, password: str) -> None:
        """Use HTTP basic auth from the next request on."""
        self._settings.update_credentials(basic_auth=(username, password))

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
        config = self._settings.endpoint_config(pattern) or {}
        config.update(fields)
        self._settings.set_endpoint(pattern, config)

    def clear_auth(self, pattern: Optional[str] = None) -> None:
        """Forget the credentials of one endpoint pattern, or the global ones (None)."""
        if pattern is None:
            self._settings.clear_credentials()
            return
        config = self._settings.endpoint_config(pattern)
        if config is None:
            return
        for name in ("api_key", "api_key_header", "bearer_token", "oauth2_token", "basic_auth"):
            config.pop(name, None)
        self._settings.set_endpoint(pattern, config)

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
            self._settings.update_policy(**changes)

    def set_ssl_context(self, ssl_context: Optional[ssl.SSLContext]) -> None:
        """Use ``ssl_context`` for new HTTPS connections from the next request (None: default)."""
        self._settings.update_policy(ssl_context=ssl_context)

    # ---------------------------------------------------------------------------- hooks
    @property
    def plugin_manager(self) -> PluginManager:
        """The manager's hooks."""
        return self._plugins

    def register_pre_request_hook(self, hook_func: Hook) -> None:
        """Run ``hook_func(RequestContext)`` before each request is prepared."""
        self._plugins.register_hook(HookType.PRE_REQUEST, hook_func)

    def register_post_response_hook(self, hook_func: Hook) -> None:
        """Run ``hook_func(ResponseContext)`` after each response."""
        self._plugins.register_hook(HookType.POST_RESPONSE, hook_func)

    def register_error_hook(self, hook_func: Hook) -> None:
        """Run ``hook_func(ErrorContext)`` when a call fails; it may set a fallback response."""
        self._plugins.register_hook(HookType.ERROR_HANDLER, hook_func)

    def unregister_hook(self, hook_type: Union[HookType, str], hook_func: Hook) -> None:
        """Remove a hook; one that is not registered is ignored."""
        self._plugins.unregister_hook(hook_type, hook_func)

    def list_hooks(self) -> dict[str, list[str]]:
        """Return the registered hooks' names by type, e.g. ``{"pre_request": [...], ...}``."""
        return self._plugins.list_hooks()

    # --------------------------------------------------------- 1.0.0 attributes (views)
    @property
    def timeout(self) -> Any:
        """The ``timeout`` given to the constructor."""
        return self._settings.kwargs["timeout"]

    @property
    def rate_limit_requests(self) -> Optional[int]:
        """Requests per period per host, or None when rate limiting is off."""
        limit = self._settings.policy.rate_limit
        return None if limit is None else limit.requests

    @property
    def rate_limit_period(self) -> Any:
        """The rate-limit period in seconds."""
        return self._settings.kwargs["rate_limit_period"]

    @property
    def connect_timeout(self) -> Optional[float]:
        """The connect timeout in effect (see :meth:`set_timeouts`)."""
        return self._settings.policy.connect_timeout

    @property
    def read_timeout(self) -> Optional[float]:
        """The read timeout in effect (see :meth:`set_timeouts`)."""
        return self._settings.policy.read_timeout

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
        return self._settings.credentials.api_key

    @property
    def api_key_header(self) -> str:
        """The global API key's header name."""
        return self._settings.credentials.api_key_header

    @property
    def bearer_token(self) -> Optional[str]:
        """The global bearer token (see :meth:`set_bearer_token`)."""
        return self._settings.credentials.bearer_token

    @property
    def oauth2_token(self) -> Optional[str]:
        """The global OAuth2 token (see :meth:`set_oauth2_token`)."""
        return self._settings.credentials.oauth2_token

    @property
    def basic_auth(self) -> Optional[tuple[str, str]]:
        """The global basic-auth pair (see :meth:`set_basic_auth`)."""
        return self._settings.credentials.basic_auth

    @property
    def ssl_context(self) -> Optional[ssl.SSLContext]:
        """The SSL context (see :meth:`set_ssl_context`)."""
        return self._settings.policy.ssl_context

    # ------------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close pooled connections, wake waiting calls and refuse new ones. Idempotent."""
        self._closed.set()
        self._session.close()
        self._hosts.clear()
        if self._shared is not None:
            self._shared.close()

    def __enter__(self) -> ConnectionManager:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<ConnectionManager {state} hosts={len(self._hosts.states())}>"

    # ---------------------------------------------------------------------------- stats
    def get_stats(self) -> dict[str, Any]:
        """Return a snapshot of the manager's counters and settings.

        The keys of requests-connection-manager 1.0.0 are kept, with true values, and
        ``hosts`` maps each tracked host key to its counters: ``requests``, ``attempts``,
        ``retries``, ``failures``, ``rejected_open``, ``throttled``,
        ``throttle_wait_seconds``, ``breaker_opened``, ``retries_denied`` (by the retry
        budget), ``breaker_state``, ``paused_for``.
        A host whose endpoint config has its own limiter and breaker is listed as
        ``"<host key> [<pattern>]"``.

        Returns:
            A new dict; changing it changes nothing.
        """
        now = self._clock.monotonic()
        states = self._hosts.states()
        breakers = [s.breaker for s in states if s.breaker is not None]
        names = {b.state for b in breakers}
        policy = self._settings.policy
        if policy.breaker is None and not breakers:
            overall = "disabled"
        elif "open" in names:
            overall = "open"
        elif "half-open" in names:
            overall = "half-open"
        else:
            overall = "closed"
        return {
            "circuit_breaker_state": overall,
            "circuit_breaker_failure_count": sum(b.failure_count for b in breakers),
            "rate_limit_requests": self.rate_limit_requests,
            "rate_limit_period": self.rate_limit_period,
            "timeout": self.timeout,
            "requests_made": self._session.calls,
            "ssl_verification": self._session.verify,
            "client_certificate_configured": self._session.cert is not None,
            "connect_timeout": policy.connect_timeout,
            "read_timeout": policy.read_timeout,
            "total_timeout": policy.total_timeout,
            "ssl_context_configured": policy.ssl_context is not None,
            "registered_hooks": self._plugins.list_hooks(),
            "shared_state": {"enabled": False} if self._shared is None else self._shared.status(),
            "hosts": {s.key: s.snapshot(now) for s in states},
        }


def _shared_link(
    redis_url: Any, redis_client: Any, prefix: Any, policy: Policy
) -> Optional[SharedLink]:
    """Validate the shared-state keywords and connect (lazily: nothing is sent yet)."""
    if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
        raise ValueError(f"redis_prefix must be a non-empty str without spaces, got {prefix!r}")
    if redis_url is not None and redis_client is not None:
        raise ValueError("give redis_url or redis_client, not both")
    if redis_url is None and redis_client is None:
        return None
    limit = policy.rate_limit
    if limit is not None and not float(limit.period).is_integer():
        raise ValueError(
            "rate_limit_period must be a whole number of seconds with shared state, "
            f"got {limit.period!r}"
        )
    if redis_client is not None:
        if not callable(getattr(redis_client, "ping", None)):
            raise TypeError(
                f"redis_client must be a redis.Redis client, got {type(redis_client).__name__}"
            )
        return SharedLink(redis_client, prefix)
    if not isinstance(redis_url, str):
        raise TypeError(f"redis_url must be a str, got {type(redis_url).__name__}")
    return SharedLink.connect(redis_url, prefix)


def _log_transition(host: str, old: str, new: str) -> None:
    if logger.isEnabledFor(logging.WARNING) and new == "open":
        logger.warning("circuit breaker for %s opened (was %s)", host, old or "new")
    elif logger.isEnabledFor(logging.INFO):
        logger.info("circuit breaker for %s: %s -> %s", host, old or "new", new)
