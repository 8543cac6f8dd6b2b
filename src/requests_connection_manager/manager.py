"""``ConnectionManager``: a ``requests.Session`` with the resilient pipeline mounted.

The manager validates its configuration once, owns one :class:`ManagedSession` with a
:class:`~.adapter.ResilientAdapter` mounted for ``http://`` and ``https://``, and offers
the ``requests`` verbs. Every protection lives in the adapter, so ``cm.session`` can be
handed to third-party code and still gets all of them.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Optional, Union

import requests
from urllib3.util import Timeout as TimeoutSauce

from .adapter import CALL_START, ResilientAdapter
from .clock import Clock, SystemClock
from .config import Policy, build_policy, check_int
from .exceptions import ConnectionManagerError, to_contract
from .hosts import HostRegistry

if TYPE_CHECKING:
    from types import TracebackType

    from requests import PreparedRequest, Response
    from urllib3.util.retry import Retry

__all__ = ["ConnectionManager", "ManagedSession"]

logger = logging.getLogger("requests_connection_manager")

_CLOSED_MESSAGE = "ConnectionManager is closed; create a new one"


class ManagedSession(requests.Session):
    """The ``requests.Session`` a manager owns.

    It is a plain ``requests.Session`` (``isinstance`` holds and every API works); in
    addition it refuses calls once its manager is closed, starts one ``total_timeout``
    deadline per call (shared by redirect hops), counts calls, and maps every error raised
    outside the adapter (URL preparation, too many redirects) into the exception contract.
    """

    def __init__(self, clock: Clock, closed: threading.Event) -> None:
        super().__init__()
        self._rcm_clock = clock
        self._rcm_closed = closed
        self._rcm_calls = 0
        self._rcm_lock = threading.Lock()

    @property
    def calls(self) -> int:
        """Calls made through this session (redirect hops are part of their call)."""
        return self._rcm_calls

    def request(
        self, method: Union[str, bytes], url: Union[str, bytes], *args: Any, **kwargs: Any
    ) -> Response:
        """Run ``requests.Session.request``, mapping any failure into the contract."""
        if self._rcm_closed.is_set():
            raise ConnectionManagerError(_CLOSED_MESSAGE)
        try:
            return super().request(method, url, *args, **kwargs)
        except ConnectionManagerError:
            raise
        except Exception as exc:
            translated = to_contract(exc)
            if translated is None:
                raise
            raise translated from exc

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        """Run ``requests.Session.send`` with one deadline for the call and its redirects."""
        if self._rcm_closed.is_set():
            raise ConnectionManagerError(_CLOSED_MESSAGE)
        token = None
        if CALL_START.get() is None:
            token = CALL_START.set(self._rcm_clock.monotonic())
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
                CALL_START.reset(token)


class ConnectionManager:
    """Connection pooling, retries, rate limiting and circuit breaking for ``requests``.

    Use it like a ``requests.Session``::

        with ConnectionManager(rate_limit_requests=100, rate_limit_period=60) as cm:
            r = cm.get("https://api.example.com/items", params={"page": 1})

    Every keyword is validated here; a bad value raises ``ValueError`` or ``TypeError``
    naming the parameter. The first nine may be passed by position, in the order of
    requests-connection-manager 1.0.0.

    Args:
        pool_connections: Host pools to keep (``HTTPAdapter``), >= 1.
        pool_maxsize: Connections kept per host pool, >= 1.
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
        pool_block: Wait for a free pooled connection instead of opening an extra one.
        retry: A ``urllib3.util.Retry`` used as the retry policy instead of
            ``max_retries``/``backoff_factor``.
        rate_limit_max_wait: Longest wait for a rate-limit permit: None waits as long as
            needed (still bounded by ``total_timeout``), 0 fails fast.
        rate_limit_strategy: ``"fixed-window"`` (``ratelimit``) or ``"sliding-window"``
            (``limits``' moving window; needs the ``redis`` extra or ``limits``).
        circuit_breaker_half_open_max_calls: Concurrent probes admitted while half-open.
        connect_timeout: Overrides the connect part of ``timeout``.
        read_timeout: Overrides the read part of ``timeout``.
        total_timeout: Deadline in seconds for a whole call: attempts, waits, backoff and
            (unless streaming) the body. None: no deadline.
        retry_after_max: Longest ``Retry-After`` honoured, in seconds; a longer one raises
            ``RateLimitExceeded`` at once.
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
        *,
        pool_block: bool = False,
        retry: Optional[Retry] = None,
        rate_limit_max_wait: Optional[float] = None,
        rate_limit_strategy: str = "fixed-window",
        circuit_breaker_half_open_max_calls: int = 1,
        connect_timeout: Optional[float] = None,
        read_timeout: Optional[float] = None,
        total_timeout: Optional[float] = None,
        retry_after_max: float = 120,
        clock: Optional[Clock] = None,
    ) -> None:
        check_int("pool_connections", pool_connections, 1)
        check_int("pool_maxsize", pool_maxsize, 1)
        if not isinstance(pool_block, bool):
            raise TypeError(f"pool_block must be a bool, got {type(pool_block).__name__}")
        self._policy: Policy = build_policy(
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            retry=retry,
            rate_limit_requests=rate_limit_requests,
            rate_limit_period=rate_limit_period,
            rate_limit_max_wait=rate_limit_max_wait,
            rate_limit_strategy=rate_limit_strategy,
            circuit_breaker_failure_threshold=circuit_breaker_failure_threshold,
            circuit_breaker_recovery_timeout=circuit_breaker_recovery_timeout,
            circuit_breaker_half_open_max_calls=circuit_breaker_half_open_max_calls,
            timeout=timeout,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            total_timeout=total_timeout,
            retry_after_max=retry_after_max,
        )
        if rate_limit_strategy == "sliding-window" and rate_limit_requests is not None:
            try:
                import limits  # noqa: F401
            except ImportError as exc:
                raise ValueError(
                    "rate_limit_strategy='sliding-window' needs the 'limits' package: "
                    "pip install 'requests-connection-manager[redis]'"
                ) from exc
        self.timeout = timeout
        self.rate_limit_requests = rate_limit_requests
        self.rate_limit_period = rate_limit_period
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._closed = threading.Event()
        self._hosts = HostRegistry(self._clock, on_transition=_log_transition)
        self._adapter = ResilientAdapter(
            self._policy_for,
            self._hosts,
            self._clock,
            self._closed,
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            pool_block=pool_block,
        )
        self._session = ManagedSession(self._clock, self._closed)
        self._session.mount("http://", self._adapter)
        self._session.mount("https://", self._adapter)

    def _policy_for(self, request: PreparedRequest) -> Policy:
        return self._policy

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
            The response.

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

    # ------------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close pooled connections, wake waiting calls and refuse new ones. Idempotent."""
        self._closed.set()
        self._session.close()
        self._hosts.clear()

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
        ``throttle_wait_seconds``, ``breaker_opened``, ``breaker_state``, ``paused_for``.

        Returns:
            A new dict; changing it changes nothing.
        """
        now = self._clock.monotonic()
        states = self._hosts.states()
        breakers = [s.breaker for s in states if s.breaker is not None]
        names = {b.state for b in breakers}
        if self._policy.breaker is None:
            overall = "disabled"
        elif "open" in names:
            overall = "open"
        elif "half-open" in names:
            overall = "half-open"
        else:
            overall = "closed"
        policy = self._policy
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
            "ssl_context_configured": False,
            "registered_hooks": {},
            "hosts": {s.key: s.snapshot(now) for s in states},
        }


def _log_transition(host: str, old: str, new: str) -> None:
    if logger.isEnabledFor(logging.WARNING) and new == "open":
        logger.warning("circuit breaker for %s opened (was %s)", host, old or "new")
    elif logger.isEnabledFor(logging.INFO):
        logger.info("circuit breaker for %s: %s -> %s", host, old or "new", new)
