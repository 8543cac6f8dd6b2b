"""The error boundary: the one place lower-level errors become contract errors.

Every exception that leaves the manager passes through :func:`contract_errors` (the
pipeline wraps each request in it; the managed session wraps what happens before and
between requests: URL preparation, redirects). Inside, :func:`contract_error` decides:

- an error already in the contract stays as it is (its text redacted);
- a ``requests`` exception becomes the contract class that is *also* that requests class,
  with the **same** ``args`` (``args[0]`` is still the urllib3 ``MaxRetryError`` or
  ``ReadTimeoutError`` requests put there), ``request`` and ``response``: code that reads
  them sees what plain requests gives;
- a urllib3, ``ssl``, ``socket`` or ``http.client`` error becomes the requests class
  requests' own adapter maps it to (:data:`ERROR_TABLE`), wrapping it as requests does;
- anything else (a ``TypeError``, a ``ValueError`` for a bad argument, ``KeyboardInterrupt``)
  is not a transport failure and passes unchanged.

A request that was retried and still failed is a :class:`~.exceptions.MaxRetriesExceeded`
flavoured with the requests class of its last failure; context lives in attributes
(``attempts``, ``host``), never in a changed message. Secrets are redacted in place, in the
new exception and through the whole chain of causes: by name (URL user-info, sensitive
query values) and by value (the credentials of the call, :class:`~._redaction.Secrets`).
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
from typing import TYPE_CHECKING, Any, Literal, Optional, Protocol, TypeVar

import requests.exceptions as rex
import urllib3.exceptions as uex

from ._redaction import Secrets, redact_text
from .exceptions import ConnectionManagerError, MaxRetriesExceeded, flavoured

if TYPE_CHECKING:
    from requests import PreparedRequest

__all__ = [
    "ERROR_TABLE",
    "ErrorScope",
    "contract_error",
    "contract_errors",
    "made_clean",
    "requests_class_for",
]


def _by_name(module: Any, *names: str) -> list[type[BaseException]]:
    return [getattr(module, n) for n in names if hasattr(module, n)]


def _table() -> dict[type[BaseException], type[rex.RequestException]]:
    table: dict[type[BaseException], type[rex.RequestException]] = {}

    def put(requests_class: type[rex.RequestException], *urllib3_names: str) -> None:
        for cls in _by_name(uex, *urllib3_names):
            table[cls] = requests_class

    # requests' own classes map to themselves.
    for name in dir(rex):
        obj = getattr(rex, name)
        if isinstance(obj, type) and issubclass(obj, rex.RequestException):
            table[obj] = obj
    # urllib3's classes map to what requests' adapter turns them into.
    put(rex.ConnectionError, "HTTPError", "PoolError", "EmptyPoolError", "ClosedPoolError")
    put(rex.ConnectionError, "FullPoolError", "HostChangedError", "RequestError", "MaxRetryError")
    put(rex.ConnectionError, "ProtocolError", "ConnectionError", "NewConnectionError")
    put(rex.ConnectionError, "NameResolutionError", "HeaderParsingError")
    put(rex.ConnectionError, "BodyNotHttplibCompatible")
    put(rex.ConnectTimeout, "ConnectTimeoutError")
    put(rex.Timeout, "TimeoutError", "TimeoutStateError")
    put(rex.ReadTimeout, "ReadTimeoutError")
    put(rex.SSLError, "SSLError")
    put(rex.ProxyError, "ProxyError")
    put(rex.ChunkedEncodingError, "IncompleteRead", "InvalidChunkLength", "ResponseNotChunked")
    put(rex.ContentDecodingError, "DecodeError")
    put(rex.RetryError, "ResponseError")
    put(rex.InvalidURL, "LocationValueError", "LocationParseError")
    put(rex.InvalidSchema, "URLSchemeUnknown")
    put(rex.InvalidProxyURL, "ProxySchemeUnknown", "ProxySchemeUnsupported")
    put(rex.InvalidHeader, "InvalidHeader")
    put(rex.UnrewindableBodyError, "UnrewindableBodyError")
    # Errors from below urllib3 that can surface while a body is read.
    table[ssl.SSLError] = rex.SSLError
    table[ssl.CertificateError] = rex.SSLError
    table[TimeoutError] = rex.ReadTimeout
    table[http.client.HTTPException] = rex.ConnectionError
    table[OSError] = rex.ConnectionError
    # A value that cannot be encoded for HTTP (plain requests lets UnicodeEncodeError out):
    # while preparing, it is in the URL, params or credentials; met while sending (headers,
    # cookies) it is an InvalidHeader (the pipeline says so). Both are ValueErrors too.
    table[UnicodeError] = rex.InvalidURL
    return table


#: Every lower-level exception class the library knows, and the requests class it maps to.
#: Lookup walks the MRO, so subclasses map like their nearest listed ancestor.
ERROR_TABLE: dict[type[BaseException], type[rex.RequestException]] = _table()


def requests_class_for(exc: BaseException) -> Optional[type[rex.RequestException]]:
    """Return the requests exception class that plain requests would raise for ``exc``.

    Args:
        exc: An exception from requests, urllib3, ``ssl``, ``http.client`` or ``socket``.

    Returns:
        The requests class, or None when ``exc`` is not a transport error (a programming
        error such as ``TypeError`` is not part of the contract and is left alone).
    """
    if isinstance(exc, uex.MaxRetryError) and exc.reason is not None:
        # requests' adapter decides by the reason; so do we.
        reason = exc.reason
        if isinstance(reason, uex.ConnectTimeoutError) and not isinstance(
            reason, uex.NewConnectionError
        ):
            return rex.ConnectTimeout
        if isinstance(reason, uex.ResponseError):
            return rex.RetryError
        return requests_class_for(reason) or rex.ConnectionError
    for cls in type(exc).__mro__:
        found = ERROR_TABLE.get(cls)
        if found is not None:
            return found
    return None


def _clean(text: str, secrets: Optional[Secrets]) -> str:
    return secrets.scrub(text) if secrets else redact_text(text)


def _scrub(exc: BaseException, secrets: Optional[Secrets], depth: int = 0) -> None:
    """Redact secrets inside an exception, its arguments and its causes, in place."""
    if depth > 8:
        return
    new_args: list[Any] = []
    changed = False
    for arg in exc.args:
        if isinstance(arg, str):
            cleaned = _clean(arg, secrets)
            changed = changed or cleaned is not arg
            arg = cleaned
        elif isinstance(arg, BaseException) and arg is not exc:
            _scrub(arg, secrets, depth + 1)
        new_args.append(arg)
    if changed:
        with contextlib.suppress(AttributeError, TypeError):  # exotic exception types
            exc.args = tuple(new_args)
    url = getattr(exc, "url", None)
    if isinstance(url, str):
        with contextlib.suppress(AttributeError, TypeError):
            exc.url = _clean(url, secrets)  # type: ignore[attr-defined]
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException) and reason is not exc:
        _scrub(reason, secrets, depth + 1)
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None and linked is not exc:
            _scrub(linked, secrets, depth + 1)


def contract_error(
    exc: BaseException,
    *,
    request: Optional[PreparedRequest] = None,
    secrets: Optional[Secrets] = None,
    attempts: int = 1,
    host: Optional[str] = None,
    gave_up: bool = False,
) -> Optional[ConnectionManagerError]:
    """Return ``exc`` as a contract error (see the module docstring); None if it is not one.

    The result is not raised here: :func:`contract_errors` raises it ``from exc``.

    Args:
        exc: The caught exception.
        request: The request being sent, when ``exc`` does not carry one.
        secrets: Secret values to redact from every message in the chain.
        attempts: Attempts made on the wire, kept as the ``attempts`` attribute.
        host: The host key, kept as the ``host`` attribute.
        gave_up: The request could have been retried and was not (retries exhausted,
            budget, deadline, breaker): the error is a
            :class:`~.exceptions.MaxRetriesExceeded`.

    Returns:
        The contract error (``exc`` itself when it already is one), or None.
    """
    if isinstance(exc, ConnectionManagerError):
        _scrub(exc, secrets)
        return exc
    if type(exc) is OSError:
        # requests' own check of a CA bundle or certificate path, before any I/O: plain
        # requests raises this OSError as it is; a contract error is an OSError too.
        _scrub(exc, secrets)
        local = ConnectionManagerError(*exc.args, request=request)
        local.attempts, local.host = attempts, host  # type: ignore[attr-defined]
        return local
    requests_class = requests_class_for(exc)
    if requests_class is None:
        return None
    _scrub(exc, secrets)
    carried: Any = request
    if isinstance(exc, rex.RequestException):
        args: tuple[Any, ...] = exc.args
        if exc.request is not None:
            carried = exc.request
        response = exc.response
    else:
        args = (exc,)  # what requests' adapter does: ConnectionError(e, request=request)
        response = None
    if gave_up:
        error: ConnectionManagerError = flavoured(MaxRetriesExceeded, requests_class)(
            *args, attempts=attempts, last_response=response, request=carried
        )
    else:
        error = flavoured(ConnectionManagerError, requests_class)(
            *args, request=carried, response=response
        )
        error.attempts = attempts  # type: ignore[attr-defined]
    error.host = host  # type: ignore[attr-defined]
    return error


class ErrorScope(Protocol):
    """What :func:`contract_errors` needs to know about the request it guards."""

    @property
    def request(self) -> Optional[PreparedRequest]:
        """The request being sent."""

    @property
    def secrets(self) -> Optional[Secrets]:
        """Secret values of the call."""

    @property
    def attempts(self) -> int:
        """Attempts made so far (a retried request fails as MaxRetriesExceeded)."""

    @property
    def key(self) -> Optional[str]:
        """The host key."""

    @property
    def gave_up(self) -> bool:
        """The request could have been retried and was not."""

    @property
    def reason(self) -> Optional[str]:
        """Why the pipeline stopped, if it did."""


_E = TypeVar("_E", bound=ConnectionManagerError)


def made_clean(error: _E) -> _E:
    """Mark ``error`` as a refusal this library made from text that holds no secret.

    Refusals (breaker open, rate limit, pause, throttle) are worded from the host key
    (``scheme://host:port``, never user-info) and numbers: the boundary does not collect
    the call's secrets to look for them there, unless the error carries a cause or a
    context (which may quote anything).
    """
    error._rcm_clean = True  # type: ignore[attr-defined]
    return error


class contract_errors:  # used as a function: ``with contract_errors(scope):``
    """Translate every exception leaving the block into the contract (see the module).

    A context manager class rather than a generator: three blocks run per call, and a
    class enters and leaves without a generator's frame.

    Args:
        scope: The request the block works on.

    Raises:
        ConnectionManagerError: For every transport failure, chained to the original.
    """

    __slots__ = ("_scope",)

    def __init__(self, scope: ErrorScope) -> None:
        self._scope = scope

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Optional[BaseException], traceback: Any) -> Literal[False]:
        """Translate ``exc`` (raise the contract's error), or let it go on as it is."""
        if not isinstance(exc, Exception):
            return False  # no exception, or KeyboardInterrupt, SystemExit, ...
        scope = self._scope
        if getattr(exc, "_rcm_clean", False) and exc.__cause__ is None and exc.__context__ is None:
            if getattr(exc, "reason", None) is None:
                exc.reason = scope.reason  # type: ignore[attr-defined]
            return False
        error = contract_error(
            exc,
            request=scope.request,
            secrets=scope.secrets,
            attempts=scope.attempts,
            host=scope.key,
            gave_up=scope.gave_up,
        )
        if error is None:
            return False
        if getattr(error, "reason", None) is None:
            error.reason = scope.reason  # type: ignore[attr-defined]
        if error is exc:
            return False
        raise error from exc
