"""``ManagedSession``: the ``requests.Session`` a manager owns, and what one call does in it.

One call, top to bottom (the per-attempt pipeline is in :mod:`._adapter`)::

    request(method, url, **kwargs)
        refuse if the manager is closed
        pre-request hooks            may change method, URL, headers, payload
        CallScope                    one total_timeout deadline for the call and its redirects
        Session.request              requests: prepare (+ credentials), merge settings, send
            prepare_request          credential headers for the URL asked for
            send                     the adapter's pipeline, once per redirect hop
            rebuild_auth             on a redirect: credentials only where they belong
        post-response hooks          may replace the response
        error hooks                  on failure; a fallback response is returned instead

Credentials: the global ones go only to the origin the caller asked for; an endpoint's go
to the hosts its pattern matches. On a redirect to another origin, every credential header
this session added is removed (requests itself strips only ``Authorization``).
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.request
from typing import TYPE_CHECKING, Any, Callable, Optional, Union, cast
from urllib.parse import urlsplit

import requests
import requests.exceptions as rex
from requests.sessions import merge_setting

from . import utils
from ._adapter import CALL, CallScope
from .exceptions import ConnectionManagerError, to_contract
from .plugins import ErrorContext, PluginManager, RequestContext, ResponseContext

if TYPE_CHECKING:
    from requests import PreparedRequest, Request, Response

__all__ = ["CLOSED_MESSAGE", "ManagedSession"]

CLOSED_MESSAGE = "ConnectionManager is closed; create a new one"

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

# requests' own merge of a call setting with the session's (untyped in the stubs).
_merge_setting = cast("Callable[[Any, Any], Any]", merge_setting)

#: ``(url, include_global) -> headers``: the credential headers for a request to ``url``.
CredentialsFor = Callable[..., "dict[str, str]"]


class ManagedSession(requests.Session):
    """The ``requests.Session`` a manager owns.

    It is a plain ``requests.Session`` (``isinstance`` holds and every API works); in
    addition it refuses calls once its manager is closed, runs the manager's hooks, adds
    the manager's credentials where they belong, starts one ``total_timeout`` deadline per
    call (shared by redirect hops), counts calls, and maps every error raised outside the
    adapter (URL preparation, too many redirects) into the exception contract.

    Args:
        clock: The manager's clock.
        closed: Set when the manager closes.
        plugins: The manager's hooks.
        credentials_for: Returns the credential headers for a URL.
        refuse_early: Raises ``CircuitBreakerOpen`` for a URL whose host's breaker is
            open, before anything is prepared (the adapter's ``refuse_if_open``).
    """

    def __init__(
        self,
        clock: Any,
        closed: threading.Event,
        plugins: PluginManager,
        credentials_for: CredentialsFor,
        refuse_early: Optional[Callable[[str], None]] = None,
    ) -> None:
        super().__init__()
        self._rcm_refuse_early = refuse_early
        self._rcm_environment = _ProxyFreeEnvironment()
        self._rcm_clock = clock
        self._rcm_closed = closed
        self._rcm_plugins = plugins
        self._rcm_credentials_for = credentials_for
        self._rcm_calls = 0
        self._rcm_lock = threading.Lock()

    @property
    def calls(self) -> int:
        """Calls made through this session (redirect hops are part of their call)."""
        return self._rcm_calls

    # ----------------------------------------------------------------------------- a call
    def request(
        self, method: Union[str, bytes], url: Union[str, bytes], *args: Any, **kwargs: Any
    ) -> Response:
        """Run one call: hooks around ``requests.Session.request``, failures in the contract."""
        if self._rcm_closed.is_set():
            raise ConnectionManagerError(CLOSED_MESSAGE)
        if args:
            if len(args) > len(_REQUEST_PARAMS):
                raise TypeError("too many positional arguments for request()")
            for name, value in zip(_REQUEST_PARAMS, args):
                if name in kwargs:
                    raise TypeError(f"request() got multiple values for argument {name!r}")
                kwargs[name] = value
        plugins = self._rcm_plugins
        context = None
        if plugins.has_hooks():
            context = RequestContext(_text(method), _text(url), **kwargs)
            plugins.execute_pre_request_hooks(context)
            method, url, kwargs = context.method, context.url, context.kwargs
        if isinstance(url, (str, bytes)):
            try:
                urlsplit(_text(url))
            except ValueError as exc:  # requests lets this out for non-HTTP schemes
                invalid = rex.InvalidURL(f"Invalid URL {_text(url)!r}: {exc}")
                return self._failed(invalid, context, method, url, kwargs)
        scope = CallScope(
            start=self._rcm_clock.monotonic(),
            verify_explicit=kwargs.get("verify") is not None,
            cert_explicit=kwargs.get("cert") is not None,
        )
        if kwargs.get("verify") is None and self.verify is not True:
            # requests lets REQUESTS_CA_BUNDLE override a session's verify=False or CA path
            # (psf/requests#3829); a setting made on this session wins here.
            kwargs["verify"] = self.verify
        if utils.logger.isEnabledFor(logging.DEBUG):
            utils.safe_log_request(
                _text(method),
                _text(url),
                kwargs.get("headers"),
                kwargs.get("json") if kwargs.get("json") is not None else kwargs.get("data"),
            )
        token = CALL.set(scope)
        try:
            if self._rcm_refuse_early is not None:
                try:
                    self._rcm_refuse_early(_text(url))
                except ConnectionManagerError:
                    with self._rcm_lock:
                        self._rcm_calls += 1
                    raise
            response = super().request(method, url, **kwargs)
        except Exception as exc:  # noqa: BLE001 - mapped, offered to error hooks, re-raised
            return self._failed(exc, context, method, url, kwargs)
        finally:
            CALL.reset(token)
        if plugins.has_hooks():
            if context is None:
                context = RequestContext(_text(method), _text(url), **kwargs)
            response_context = ResponseContext(response, context)
            plugins.execute_post_response_hooks(response_context)
            response = response_context.response
        if utils.logger.isEnabledFor(logging.DEBUG):
            utils.safe_log_response(response)
        return response

    def _failed(
        self,
        exc: Exception,
        context: RequestContext | None,
        method: Union[str, bytes],
        url: Union[str, bytes],
        kwargs: dict[str, Any],
    ) -> Response:
        error: Exception = exc
        if not isinstance(exc, ConnectionManagerError):
            translated = to_contract(exc)
            if translated is not None:
                error = translated
        plugins = self._rcm_plugins
        if plugins.has_hooks():
            if context is None:
                context = RequestContext(_text(method), _text(url), **kwargs)
            error_context = ErrorContext(error, context)
            plugins.execute_error_hooks(error_context)
            if error_context.handled and error_context.fallback_response is not None:
                return error_context.fallback_response
        if utils.logger.isEnabledFor(logging.DEBUG):
            utils.safe_log_error(error, _text(method), _text(url), level=logging.DEBUG)
        if error is exc:
            raise exc
        raise error from exc

    def merge_environment_settings(
        self,
        url: Any,
        proxies: Any,
        stream: Any,
        verify: Any,
        cert: Any,
    ) -> Any:
        """Merge settings with the environment exactly as requests does, only cheaper.

        requests looks up proxy variables in ``os.environ`` on every call, a pure-Python
        scan that costs about as much as the rest of its per-call work. When the
        environment names no proxy at all (checked again whenever ``os.environ`` changes),
        that lookup can only find nothing, so it is skipped; everything else — the CA
        bundle variables, the merge with the session's settings — is what requests does.
        With a proxy variable set, requests' own method runs unchanged.
        """
        if self.trust_env and self._rcm_environment.has_no_proxies():
            if verify is True or verify is None:
                verify = (
                    os.environ.get("REQUESTS_CA_BUNDLE")
                    or os.environ.get("CURL_CA_BUNDLE")
                    or verify
                )
            return {
                "proxies": _merge_setting(proxies, self.proxies),
                "stream": _merge_setting(stream, self.stream),
                "verify": _merge_setting(verify, self.verify),
                "cert": _merge_setting(cert, self.cert),
            }
        return super().merge_environment_settings(url, proxies, stream, verify, cert)

    def prepare_request(self, request: Request) -> PreparedRequest:
        """Prepare as requests does, then add the credential headers for the URL."""
        prepared = super().prepare_request(request)
        headers = self._rcm_credentials_for(prepared.url or "", include_global=True)
        applied: dict[str, str] = {}
        if headers:
            explicit_auth = request.auth is not None or self.auth is not None
            for name, value in headers.items():
                if name in request.headers or name in self.headers:
                    continue  # the caller's own header wins
                if name == "Authorization" and explicit_auth:
                    continue  # so does the caller's own auth=
                prepared.headers[name] = value
                applied[name] = value
        prepared._rcm_credentials = applied  # type: ignore[attr-defined]
        return prepared

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        """Run ``requests.Session.send`` with one deadline for the call and its redirects."""
        if self._rcm_closed.is_set():
            raise ConnectionManagerError(CLOSED_MESSAGE)
        scope = CALL.get()
        token = None
        if scope is None:
            scope = CallScope(start=self._rcm_clock.monotonic())
            token = CALL.set(scope)
        if scope.origin is None:  # the first hop of the call
            scope.origin = request.url
            scope.credentials = dict(getattr(request, "_rcm_credentials", {}))
            with self._rcm_lock:
                self._rcm_calls += 1
        try:
            return super().send(request, **kwargs)
        except ConnectionManagerError:
            raise
        except Exception as exc:
            translated = to_contract(exc, request=request)
            if translated is None:
                raise
            raise translated from exc
        finally:
            if token is not None:
                CALL.reset(token)

    def rebuild_auth(self, prepared_request: PreparedRequest, response: Response) -> None:
        """On a redirect: remove the credentials this session added, then add those due here.

        requests strips ``Authorization`` when the host changes; this also removes an API
        key header, and adds back only what belongs to the new URL: the global credentials
        if it is the origin the caller asked for, an endpoint's if its pattern matches.
        """
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]
        scope = CALL.get()
        previous = response.request
        if scope is not None and scope.origin is not None:
            origin, applied = scope.origin, scope.credentials
        else:  # resolve_redirects called by hand: judge by the previous hop
            origin = previous.url or ""
            applied = dict(getattr(previous, "_rcm_credentials", {}))
        headers = prepared_request.headers
        for name, value in applied.items():
            if headers.get(name) == value:
                del headers[name]
        url = prepared_request.url or ""
        same_origin = not self.should_strip_auth(origin, url)  # type: ignore[no-untyped-call]
        due = self._rcm_credentials_for(url, include_global=same_origin)
        added: dict[str, str] = {}
        for name, value in due.items():
            if name not in headers:
                headers[name] = value
                added[name] = value
        if scope is not None:
            scope.credentials = added


class _ProxyFreeEnvironment:
    """Tells whether ``os.environ`` names no proxy, recomputing only when it changes.

    Only where ``urllib.request.getproxies`` reads the environment alone (not macOS or
    Windows, which also read system settings) and ``os.environ`` keeps its data in a dict;
    elsewhere it always answers False, and requests does its usual lookup.
    """

    def __init__(self) -> None:
        self._snapshot: tuple[Optional[dict[Any, Any]], bool] = (None, False)
        data = getattr(os.environ, "_data", None)
        self._usable = (
            isinstance(data, dict)
            and urllib.request.getproxies is urllib.request.getproxies_environment
        )

    def has_no_proxies(self) -> bool:
        """True when no proxy variable (nor ``no_proxy``) is set."""
        if not self._usable:
            return False
        data = os.environ._data  # type: ignore[attr-defined]
        seen, answer = self._snapshot
        if seen is not None and data == seen:
            return answer
        snapshot = dict(data)
        answer = not urllib.request.getproxies_environment()
        self._snapshot = (snapshot, answer)
        return answer


def _text(value: Union[str, bytes]) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value
