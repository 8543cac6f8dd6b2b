"""The exception contract: the four classes every failure that leaves the manager belongs to.

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

import threading
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import requests.exceptions as rex

if TYPE_CHECKING:
    from requests import Response

__all__ = [
    "CircuitBreakerOpen",
    "ConnectionManagerError",
    "MaxRetriesExceeded",
    "RateLimitExceeded",
    "flavoured",
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
