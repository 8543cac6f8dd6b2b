"""The exception contract, and the one place lower-level errors are mapped into it.

::

    requests.exceptions.RequestException
     └─ ConnectionManagerError                 every failure that leaves the manager
         ├─ RateLimitExceeded                  the client limiter could not admit in time, or
         │                                     the server asked to wait longer than allowed
         ├─ CircuitBreakerOpen                 the host's breaker is open (also a
         │                                     requests.ConnectionError)
         └─ MaxRetriesExceeded                 retries exhausted (.attempts, .last_response)

Every exception that leaves the manager (or ``cm.session``) is a
:class:`ConnectionManagerError` **and** an instance of the ``requests`` exception plain
``requests`` would raise in the same situation: a read timeout is both a
``ConnectionManagerError`` and a ``requests.ReadTimeout``; exhausted status retries are
both a :class:`MaxRetriesExceeded` and a ``requests.exceptions.RetryError``. Existing
``except requests.RequestException`` clauses keep working. The original error is always
chained as ``__cause__``.

Those combined classes are made on first use by :func:`flavoured` and cached; their names
are the ``requests`` names (``ReadTimeout``, ``ConnectionError``, ...).
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import threading
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import requests.exceptions as rex
import urllib3.exceptions as uex

from ._redaction import redact_text, redact_url

if TYPE_CHECKING:
    from requests import PreparedRequest, Response

__all__ = [
    "CircuitBreakerOpen",
    "ConnectionManagerError",
    "MaxRetriesExceeded",
    "RateLimitExceeded",
    "flavoured",
    "to_contract",
]


class ConnectionManagerError(rex.RequestException):
    """Base class of every error that leaves a :class:`ConnectionManager`.

    It subclasses ``requests.exceptions.RequestException``, so code that already catches
    requests' errors catches these too. ``request`` and ``response`` are set as on any
    requests exception when they are known.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # The combined classes are made at run time; rebuild them by their parts so
        # these exceptions survive pickling (multiprocessing, concurrent.futures).
        bases = type(self).__bases__
        if getattr(type(self), "_rcm_combined", False):
            return (_rebuild, (bases[0], bases[1], self.args, self.__dict__))
        return (_rebuild, (type(self), None, self.args, self.__dict__))


class _WaitAdvice(ConnectionManagerError):
    """A refusal that tells the caller how long to wait, and for which host."""

    default_message = "try again later"

    def __init__(
        self,
        message: Optional[str] = None,
        *args: Any,
        retry_after: Optional[float] = None,
        host: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message or self.default_message, *args, **kwargs)
        self.retry_after = retry_after
        self.host = host


class RateLimitExceeded(_WaitAdvice):
    """A call could not be admitted in time.

    Raised when the client-side limiter has no permit within ``rate_limit_max_wait`` (or
    the call's deadline), or when a server asked to wait (``Retry-After``) longer than
    ``retry_after_max`` or the remaining deadline allows.

    Attributes:
        retry_after: Seconds after which a new attempt may be admitted, if known.
        host: The host key (``scheme://host:port``) the limit applies to, if known.
    """

    default_message = "rate limit exceeded"


class CircuitBreakerOpen(_WaitAdvice, rex.ConnectionError):
    """The host's circuit breaker is open; the call was refused without network traffic.

    It is also a ``requests.ConnectionError``: for code written against requests, an open
    breaker means the same as an unreachable host.

    Attributes:
        retry_after: Seconds until the breaker lets a probe through.
        host: The host key (``scheme://host:port``) whose breaker is open.
    """

    default_message = "circuit breaker is open"


class MaxRetriesExceeded(ConnectionManagerError):
    """Retries ran out: the policy was exhausted, the deadline or the breaker cut them short.

    Instances raised by the manager are also the ``requests`` exception of the last
    failure: ``requests.exceptions.RetryError`` when the last attempt got a retryable
    status, ``requests.ConnectionError``/``ReadTimeout``/... when it failed on the wire.

    Attributes:
        attempts: How many attempts were made on the wire.
        last_response: The last response received (a retryable status), or None.
    """

    def __init__(
        self,
        message: str = "maximum retries exceeded",
        *args: Any,
        attempts: int = 0,
        last_response: Optional[Response] = None,
        **kwargs: Any,
    ) -> None:
        if last_response is not None:
            kwargs.setdefault("response", last_response)
        super().__init__(message, *args, **kwargs)
        self.attempts = attempts
        self.last_response = last_response


_E = TypeVar("_E", bound="ConnectionManagerError")

_combined: dict[tuple[type[ConnectionManagerError], type[rex.RequestException]], type[Any]] = {}
_combined_lock = threading.Lock()


def flavoured(base: type[_E], requests_class: type[rex.RequestException]) -> type[_E]:
    """Return the class that is both ``base`` and ``requests_class``.

    Args:
        base: One of the classes of the contract.
        requests_class: The requests exception the situation maps to.

    Returns:
        ``base`` itself when it already subclasses ``requests_class``, else a cached class
        named like ``requests_class`` that subclasses both.
    """
    if issubclass(base, requests_class):
        return base
    key = (base, requests_class)
    cls = _combined.get(key)
    if cls is None:
        with _combined_lock:
            cls = _combined.get(key)
            if cls is None:
                cls = type(
                    requests_class.__name__,
                    (base, requests_class),
                    {
                        "__module__": __name__,
                        "__doc__": f"{base.__name__} that is also requests' "
                        f"{requests_class.__name__}.",
                        "_rcm_combined": True,
                    },
                )
                _combined[key] = cls
    return cls


def _rebuild(
    base: type[ConnectionManagerError],
    requests_class: Optional[type[rex.RequestException]],
    args: tuple[Any, ...],
    state: dict[str, Any],
) -> ConnectionManagerError:
    cls = base if requests_class is None else flavoured(base, requests_class)
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


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
    # while preparing, it is in the URL, params or credentials; the adapter maps the ones
    # met while sending (headers, cookies) to InvalidHeader. Both are ValueErrors too.
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


def _scrub(exc: BaseException, depth: int = 0) -> None:
    """Redact URLs inside an exception, its arguments and its causes, in place."""
    if depth > 8:
        return
    new_args: list[Any] = []
    for arg in exc.args:
        if isinstance(arg, str):
            arg = redact_text(arg)
        elif isinstance(arg, BaseException):
            _scrub(arg, depth + 1)
        new_args.append(arg)
    with contextlib.suppress(AttributeError, TypeError):  # exotic exception types
        exc.args = tuple(new_args)
    url = getattr(exc, "url", None)
    if isinstance(url, str):
        exc.url = redact_text(url)  # type: ignore[attr-defined]
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        _scrub(reason, depth + 1)
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None and linked is not exc:
            _scrub(linked, depth + 1)


def to_contract(
    exc: BaseException,
    *,
    request: Optional[PreparedRequest] = None,
    base: type[ConnectionManagerError] = ConnectionManagerError,
    message: Optional[str] = None,
    **attrs: Any,
) -> Optional[ConnectionManagerError]:
    """Map any transport error into the exception contract.

    This is the single mapping point of the library. The result is not raised here: the
    caller raises it ``from exc`` so the original error stays chained.

    Args:
        exc: The caught exception.
        request: The request being sent, for the message and the ``request`` attribute.
        base: The contract class (``ConnectionManagerError`` or ``MaxRetriesExceeded``).
        message: A message to use instead of the one derived from ``exc``.
        **attrs: Keyword arguments for ``base`` (``attempts``, ``last_response``, ...).

    Returns:
        A new exception that is ``base`` and the matching requests class, with secrets
        redacted from its text and from ``exc``'s; ``exc`` itself when it already belongs
        to the contract; None when ``exc`` is not a transport error.
    """
    if isinstance(exc, ConnectionManagerError):
        return exc
    requests_class = requests_class_for(exc)
    if requests_class is None:
        return None
    _scrub(exc)
    if message is None:
        where = ""
        if request is not None and request.url:
            where = f"{request.method} {redact_url(request.url)}: "
        message = f"{where}{redact_text(str(exc)) or type(exc).__name__}"
    response = getattr(exc, "response", None)
    if response is not None and "response" not in attrs and "last_response" not in attrs:
        attrs["response"] = response
    cls = flavoured(base, requests_class)
    return cls(message, request=request, **attrs)
