"""The session side of a call: what happens around the requests of one call.

:class:`ConnectionManagerMixin` gives a ``requests.Session`` (or any subclass of it) the
whole behaviour of ``cm.session``; :class:`ManagedSession` is that mixin on a plain
``requests.Session``. One call, top to bottom (each request, one per redirect hop, runs
the pipeline of :mod:`._pipeline`)::

    request(method, url, **kwargs)
        refuse if the manager is closed
        pre-request hooks            may change method, URL, headers, payload
        early refusal                the host's breaker is open: refused before anything
                                     is prepared (unless another class of the session
                                     overrides send: a cache may answer without the host)
        CallScope                    one total_timeout deadline for the call and its redirects;
                                     the call's secrets, for redaction
        Session.request              requests: prepare (+ credentials), merge settings, send
            prepare_request          credential headers for the URL asked for
            send                     the adapter's pipeline, once per redirect hop
            rebuild_auth             on a redirect: credentials only where they belong
        post-response hooks          may replace the response
        error hooks                  on failure; a fallback response is returned instead

Credentials: the global ones go only to the origin the caller asked for; an endpoint's go
to the hosts its pattern matches. The caller's own header wins in any spelling. On a
redirect to another origin, every credential header this session added is removed
(requests itself strips only ``Authorization``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional, Union, cast
from urllib.parse import urlsplit

import requests
import requests.exceptions as rex

from . import _engine, _forksafe, _prepare, utils
from ._admission import closed_error
from ._boundary import contract_error, contract_errors
from ._engine import build_engine
from ._environment import Environment
from ._exchange import CALL, CallScope
from ._pipeline import ResilientAdapter
from ._prepare import PrepareMemo, prepare_request
from ._redaction import AllValues, Secrets
from .exceptions import ConnectionManagerError
from .plugins import ErrorContext, RequestContext, ResponseContext

if TYPE_CHECKING:
    from requests import PreparedRequest, Request, Response

    from ._engine import Engine
    from .plugins import PluginManager

__all__ = ["ConnectionManagerMixin", "ManagedSession"]

# requests' own prepare_request, as imported (one patched on the class is run instead).
_REQUESTS_PREPARE = requests.Session.prepare_request

# The positional parameters of requests.Session.request after method and url.
_REQUEST_PARAMS = (
    "params",
    "data",
    "headers",
    "cookies",
    "files",
    "auth",
    "timeout",
    "allow_redirects",
    "proxies",
    "hooks",
    "stream",
    "verify",
    "cert",
    "json",
)


class _CallErrors:
    """The error scope of what a session does outside the pipeline (prepare, redirects)."""

    __slots__ = ("_scope", "attempts", "gave_up", "key", "reason", "request")

    def __init__(self, request: Any, scope: CallScope) -> None:
        self.request = request
        self._scope = scope
        self.attempts = 0
        self.key: Optional[str] = None
        self.gave_up = False
        self.reason: Optional[str] = None

    @property
    def secrets(self) -> Secrets:
        """The call's secrets (collected now: an error is being translated)."""
        return self._scope.secrets()


def _text(value: Union[str, bytes]) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _manager_keywords(kwargs: dict[str, Any], pools: dict[str, Any]) -> dict[str, Any]:
    """Take the keywords of ``ConnectionManager`` out of ``kwargs``, defaults filled in."""
    given: dict[str, Any] = dict(pools)
    for name, parameter in _engine.MANAGER_SIGNATURE.parameters.items():
        if name in ("self", *pools):
            continue
        given[name] = kwargs.pop(name, parameter.default)
    return given


def _overridden_elsewhere(cls: type, name: str) -> bool:
    """Tell whether a class of ``cls``'s MRO other than the mixin and requests defines ``name``.

    For ``send``: such a class (requests-cache's ``CacheMixin``, an SDK's session) may answer
    a request without the network, so the session must not refuse the call before it had
    the chance. For ``prepare_request``: the session runs that class's method, not its own
    copy of requests' steps.
    """
    own = {ConnectionManagerMixin, requests.Session, *requests.Session.__mro__}
    return any(name in vars(base) for base in cls.__mro__ if base not in own)


def _header_names(*mappings: Any) -> set[str]:
    names: set[str] = set()
    for mapping in mappings:
        if mapping:
            names.update(_text(name).lower() for name in mapping)
    return names


def _bind_positional(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Move the positional arguments of ``request()`` after method and url into ``kwargs``.

    Raises:
        TypeError: Too many of them, or one also given by keyword (as Python would say).
    """
    if len(args) > len(_REQUEST_PARAMS):
        raise TypeError("too many positional arguments for request()")
    for name, value in zip(_REQUEST_PARAMS, args):
        if name in kwargs:
            raise TypeError(f"request() got multiple values for argument {name!r}")
        kwargs[name] = value


def _call_scope(session: Any, engine: Engine, kwargs: dict[str, Any]) -> CallScope:
    """The scope of a call made with ``kwargs`` through ``session``: its deadline, its secrets."""
    return CallScope(
        start=engine.clock.monotonic(),
        verify_explicit=kwargs.get("verify") is not None,
        cert_explicit=kwargs.get("cert") is not None,
        follows_redirects=bool(kwargs.get("allow_redirects", True)),
        secret_sources=(
            engine.secrets(),
            session.headers,
            kwargs.get("headers"),
            kwargs.get("auth"),
            AllValues(kwargs.get("cookies")),
            AllValues(session.cookies),
        ),
        secret_names=engine.settings.secret_headers,
    )


def _check_splittable(url: str) -> None:
    """Refuse a URL ``urlsplit`` cannot split (requests lets that out for non-HTTP schemes).

    Raises:
        requests.exceptions.InvalidURL: It cannot be split.
    """
    try:
        urlsplit(url)
    except ValueError as exc:
        raise rex.InvalidURL(f"Invalid URL {url!r}: {exc}") from None


def _hook_context(
    context: Optional[RequestContext],
    method: Union[str, bytes],
    url: Union[str, bytes],
    kwargs: dict[str, Any],
) -> RequestContext:
    """The context the hooks of a call share: the pre-request hooks' own, or a new one."""
    if context is None:
        context = RequestContext(_text(method), _text(url), **kwargs)
    return context


def _failed(
    plugins: PluginManager,
    exc: Exception,
    context: Optional[RequestContext],
    method: Union[str, bytes],
    url: Union[str, bytes],
    kwargs: dict[str, Any],
    secrets: Callable[[], Secrets],
) -> Response:
    """Offer a failed call to the error hooks: their fallback response, or ``exc`` raised.

    Raises:
        Exception: ``exc``, when no error hook handled it with a fallback response.
    """
    if plugins.has_hooks():
        error_context = ErrorContext(exc, _hook_context(context, method, url, kwargs))
        plugins.execute_error_hooks(error_context)
        if error_context.handled and error_context.fallback_response is not None:
            return error_context.fallback_response
    if utils.logger.isEnabledFor(logging.DEBUG):
        utils.safe_log_error(exc, _text(method), _text(url), level=logging.DEBUG, secrets=secrets())
    raise exc


def _add_credentials(
    headers: MutableMapping[str, str], due: dict[str, str], refused: Callable[[str], bool]
) -> dict[str, str]:
    """Set each credential header of ``due`` but those whose name is ``refused``.

    Returns:
        The headers set (name to value): the ones to take off again on a redirect.
    """
    added: dict[str, str] = {}
    for name, value in due.items():
        if not refused(name):
            headers[name] = value
            added[name] = value
    return added


class ConnectionManagerMixin:
    """Gives any ``requests.Session`` subclass everything ``cm.session`` does.

    Put it first among the bases of a session class (before ``requests.Session`` and any
    other session mixin)::

        class ResilientCachedSession(ConnectionManagerMixin, CacheMixin, requests.Session):
            pass

        session = ResilientCachedSession(cache_name="http", rate_limit_requests=10)

    The keywords of :class:`~requests_connection_manager.ConnectionManager` are taken by
    the mixin; every other keyword goes on to the next class of the MRO (requests-cache's
    ``CacheMixin`` placed first would pass on only the keywords it knows by name, and the
    manager's would be lost). When another class of the session overrides ``send`` (a
    cache), a host whose breaker is open is refused by the adapter, when the request
    reaches it, rather than before the call is prepared: a cached answer is still served.
    Closing the session closes what the mixin built. See ``docs/compose.md``.

    Args:
        *args: For the next class in the MRO.
        engine: A manager's shared state, to share its hosts and settings (the manager's
            own session passes it); without one, the mixin builds its own from the
            manager keywords in ``kwargs``.
        owns_engine: Close the engine when the session closes.
        pool_connections: Host pools to keep (with ``engine=``).
        pool_maxsize: Connections kept per host pool (with ``engine=``).
        pool_block: Wait for a free pooled connection (with ``engine=``).
        **kwargs: Manager keywords, and keywords for the next class in the MRO.
    """

    __attrs__: ClassVar[list[str]] = [*requests.Session.__attrs__, "_rcm_engine"]
    _rcm_engine: Engine
    #: Refuse a call to a host whose breaker is open before preparing it; False when
    #: another class of the session overrides ``send`` (set for each subclass).
    _rcm_refuse_early: ClassVar[bool] = True
    #: requests' own ``prepare_request`` is the one the session runs after its own (no other
    #: class of the session overrides it): :mod:`._prepare` runs the same steps, cheaper.
    _rcm_requests_prepare: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._rcm_refuse_early = not _overridden_elsewhere(cls, "send")
        cls._rcm_requests_prepare = not _overridden_elsewhere(cls, "prepare_request")

    def __init__(
        self,
        *args: Any,
        engine: Optional[Engine] = None,
        owns_engine: bool = False,
        pool_connections: int = 10,
        pool_maxsize: int = 10,
        pool_block: bool = False,
        **kwargs: Any,
    ) -> None:
        pools: dict[str, Any] = {
            "pool_connections": pool_connections,
            "pool_maxsize": pool_maxsize,
            "pool_block": pool_block,
        }
        tls: Optional[tuple[Any, Any]] = None
        if engine is None:
            given = _manager_keywords(kwargs, pools)
            engine, pools, tls = build_engine(given)
            owns_engine = True
        super().__init__(*args, **kwargs)
        self._rcm_engine = engine
        self._rcm_owns_engine = owns_engine
        adapter = ResilientAdapter(engine, **pools)
        self._rcm_adapter: Optional[ResilientAdapter] = adapter
        self._rcm_setup()
        self.mount("http://", adapter)  # type: ignore[attr-defined]
        self.mount("https://", adapter)  # type: ignore[attr-defined]
        if tls is not None:
            session: Any = self  # a requests.Session: verify and cert are its own
            session.verify, session.cert = tls

    def close(self) -> None:
        """Close the session's adapters, and the engine the mixin built; forget the memo."""
        super().close()  # type: ignore[misc]
        self._rcm_prepare_memo.clear()  # URLs with user-info do not outlive the session
        if getattr(self, "_rcm_owns_engine", False):
            self._rcm_engine.close()

    @property
    def calls(self) -> int:
        """Calls made through this session (redirect hops are part of their call)."""
        return self._rcm_calls

    def _rcm_setup(self) -> None:
        self._rcm_environment = Environment()
        self._rcm_prepare_memo = PrepareMemo()
        self._rcm_calls = 0
        self._rcm_lock = threading.Lock()
        _forksafe.register(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        self._rcm_adapter = next(
            (a for a in state["adapters"].values() if isinstance(a, ResilientAdapter)), None
        )
        self._rcm_setup()

    def reinit_after_fork(self) -> None:
        """A fresh lock in a forked child."""
        self._rcm_lock = threading.Lock()

    def _rcm_count(self) -> None:
        with self._rcm_lock:
            self._rcm_calls += 1

    # ----------------------------------------------------------------------------- a call
    def request(
        self, method: Union[str, bytes], url: Union[str, bytes], *args: Any, **kwargs: Any
    ) -> Response:
        """Run one call: hooks around ``requests.Session.request``, failures in the contract."""
        engine = self._rcm_engine
        if engine.closed.is_set():
            raise closed_error()
        if args:
            _bind_positional(args, kwargs)
        plugins = engine.plugins
        context = None
        if plugins.has_hooks():
            context = RequestContext(_text(method), _text(url), **kwargs)
            plugins.execute_pre_request_hooks(context)
            method, url, kwargs = context.method, context.url, context.kwargs
        if kwargs.get("verify") is None and self.verify is not True:  # type: ignore[attr-defined]
            # requests lets REQUESTS_CA_BUNDLE override a session's verify=False or CA path
            # (psf/requests#3829); a setting made on this session wins here.
            kwargs["verify"] = self.verify  # type: ignore[attr-defined]
        scope: Optional[CallScope] = None
        if utils.logger.isEnabledFor(logging.DEBUG):
            scope = _call_scope(self, engine, kwargs)
            body = kwargs.get("json") if kwargs.get("json") is not None else kwargs.get("data")
            utils.safe_log_request(
                _text(method), _text(url), kwargs.get("headers"), body, secrets=scope.secrets()
            )
        if isinstance(url, (str, bytes)):
            try:
                self._rcm_refuse_if_open(_text(method), _text(url))
            except ConnectionManagerError as exc:
                # Refused before the call's scope is made: a refusal costs microseconds.
                def secrets() -> Secrets:
                    return (scope or _call_scope(self, engine, kwargs)).secrets()

                if not getattr(exc, "_rcm_clean", False):
                    contract_error(exc, secrets=secrets())  # scrubbed in place
                return _failed(plugins, exc, context, method, url, kwargs, secrets)
        if scope is None:
            scope = _call_scope(self, engine, kwargs)
        token = CALL.set(scope)
        try:
            with contract_errors(_CallErrors(None, scope)):
                if isinstance(url, (str, bytes)):
                    _check_splittable(_text(url))
                response: Response = super().request(  # type: ignore[misc]
                    method=method, url=url, **kwargs
                )
        except Exception as exc:  # noqa: BLE001 - offered to error hooks, then re-raised
            return _failed(plugins, exc, context, method, url, kwargs, scope.secrets)
        finally:
            CALL.reset(token)
        if plugins.has_hooks():
            context = _hook_context(context, method, url, kwargs)
            response_context = ResponseContext(response, context)
            plugins.execute_post_response_hooks(response_context)
            response = response_context.response
        if utils.logger.isEnabledFor(logging.DEBUG):
            utils.safe_log_response(response, secrets=scope.secrets())
        return response

    def _rcm_refuse_if_open(self, method: str, url: str) -> None:
        """Refuse a call to a host whose breaker is open, before anything is prepared.

        Only when no other class of the session overrides ``send``: a cache there may
        answer the call without the host, and a call it cannot answer is still refused by
        the adapter, with no traffic.
        """
        adapter = self._rcm_adapter
        if adapter is not None and self._rcm_refuse_early:
            try:
                adapter.refuse_if_open(method, url)
            except ConnectionManagerError:
                self._rcm_count()
                raise

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        """Merge settings with the environment exactly as requests does, only cheaper.

        The same steps as ``requests.Session.merge_environment_settings``, with the
        environment's answers (proxies per host, CA bundle) computed once per change of
        the environment (:mod:`._environment`).
        """
        environment = self._rcm_environment
        if not environment.usable or not _prepare.usable():
            return super().merge_environment_settings(  # type: ignore[misc]
                url, proxies, stream, verify, cert
            )
        return environment.merge_settings(self, url, proxies, stream, verify, cert)

    def prepare_request(self, request: Request) -> PreparedRequest:
        """Prepare as requests does, then add the credential headers for the URL.

        The caller's own header wins, in any spelling (in ``headers=``, in the session's
        headers, or set to None to send none), and so does the caller's own ``auth=``.
        """
        session: Any = self
        explicit_auth = request.auth is not None or session.auth is not None
        environment = self._rcm_environment
        if (
            environment.usable
            and self._rcm_requests_prepare
            and requests.Session.prepare_request is _REQUESTS_PREPARE
            and _prepare.usable()
        ):
            if session.trust_env and not request.auth and not session.auth:
                # requests looks .netrc up on disk for every request; the environment
                # keeps the answer until the file or the environment changes.
                environment.refresh()
            prepared = prepare_request(
                session,
                request,
                environment.netrc_auth,
                self._rcm_prepare_memo,
                self._rcm_engine.settings.secret_header_names,
            )
        else:
            prepared = super().prepare_request(request)  # type: ignore[misc]
        headers = self._rcm_engine.settings.credential_headers(
            prepared.url or "", include_global=True
        )
        applied: dict[str, str] = {}
        if headers:
            own = _header_names(request.headers, session.headers)

            def callers_own(name: str) -> bool:
                """The caller's own header wins, and so does the caller's own ``auth=``."""
                lowered = name.lower()
                return lowered in own or (lowered == "authorization" and explicit_auth)

            applied = _add_credentials(prepared.headers, headers, callers_own)
        prepared._rcm_credentials = applied  # type: ignore[attr-defined]
        return prepared

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        """Run ``requests.Session.send`` with one deadline for the call and its redirects."""
        engine = self._rcm_engine
        if engine.closed.is_set():
            raise closed_error()
        scope = CALL.get()
        token = None
        if scope is None:
            scope = CallScope(
                start=engine.clock.monotonic(),
                follows_redirects=bool(kwargs.get("allow_redirects", True)),
                secret_sources=(engine.secrets(), request.headers),
                secret_names=engine.settings.secret_headers,
            )
            token = CALL.set(scope)
        if scope.origin is None:  # the first hop of the call
            scope.origin = request.url
            scope.credentials = dict(getattr(request, "_rcm_credentials", {}))
            self._rcm_count()
        try:
            with contract_errors(_CallErrors(request, scope)):
                return cast("Response", super().send(request, **kwargs))  # type: ignore[misc]
        finally:
            if token is not None:
                CALL.reset(token)

    def rebuild_auth(self, prepared_request: PreparedRequest, response: Response) -> None:
        """On a redirect: remove the credentials this session added, then add those due here.

        requests strips ``Authorization`` when the host changes; this also removes an API
        key header, and adds back only what belongs to the new URL: the global credentials
        if it is the origin the caller asked for, an endpoint's if its pattern matches.
        """
        super().rebuild_auth(prepared_request, response)  # type: ignore[misc]
        scope = CALL.get()
        previous = response.request
        url = prepared_request.url or ""
        headers = prepared_request.headers
        if self.should_strip_auth(previous.url or "", url):  # type: ignore[attr-defined]
            # An API-key header is a credential whoever set it, as Authorization is to
            # requests: it does not follow the caller to another origin.
            for name in self._rcm_engine.settings.secret_headers:
                headers.pop(name, None)
        if scope is not None and scope.origin is not None:
            origin, applied = scope.origin, scope.credentials
        else:  # resolve_redirects called by hand: judge by the previous hop
            origin = previous.url or ""
            applied = dict(getattr(previous, "_rcm_credentials", {}))
        for name, value in applied.items():
            if headers.get(name) == value:
                del headers[name]
        same_origin = not self.should_strip_auth(origin, url)  # type: ignore[attr-defined]
        due = self._rcm_engine.settings.credential_headers(url, include_global=same_origin)
        added = _add_credentials(headers, due, lambda name: name in headers)
        if scope is not None:
            scope.credentials = added


class ManagedSession(ConnectionManagerMixin, requests.Session):
    """The ``requests.Session`` a manager owns: a plain session with the mixin applied.

    ``isinstance(cm.session, requests.Session)`` holds and every requests API works.
    """
