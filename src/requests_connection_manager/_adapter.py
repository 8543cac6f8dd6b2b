"""The pipeline of one request: the only place a request waits, is refused, or is retried.

:class:`ResilientAdapter` is a ``requests`` ``HTTPAdapter``. ``requests`` calls
:meth:`ResilientAdapter.send` once per redirect hop; each call runs, top to bottom::

    deadline = start of the call + total_timeout
    for each attempt:
        host pause        a Retry-After seen by any caller: wait, or RateLimitExceeded
        breaker check     open and not yet recovered: CircuitBreakerOpen, no wire traffic
        rate limiter      one permit per attempt, retries included: wait, or RateLimitExceeded
        breaker admit     closed, or one of the bounded half-open probes
        send              HTTPAdapter.send, timeouts clamped to the deadline; the body is
                          read here (unless stream=True) and a short body is a failure
        classify          success, or failure (the breaker counts it)
        retry decision    urllib3 Retry as the policy; the host's retry budget (retries
                          may not exceed a share of first attempts); full-jitter backoff
                          or Retry-After, never past the deadline
    any failure leaves through exceptions.to_contract (one mapping point)

No lock is held while a request is on the wire: the limiter, breaker and counters take
their locks only for bookkeeping.
"""

from __future__ import annotations

import contextvars
import logging
import math
import random
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional, Union

import requests.exceptions as rex
import urllib3.exceptions as uex
from requests.adapters import HTTPAdapter
from urllib3.util import Timeout as TimeoutSauce
from urllib3.util.retry import Retry

from ._clock import Clock
from ._hosts import HostRegistry, HostState
from ._redaction import redact_url
from .config import Policy, host_key
from .exceptions import (
    CircuitBreakerOpen,
    ConnectionManagerError,
    MaxRetriesExceeded,
    RateLimitExceeded,
    flavoured,
    requests_class_for,
    to_contract,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from requests import PreparedRequest, Response

__all__ = ["CALL", "CallScope", "ResilientAdapter"]

logger = logging.getLogger("requests_connection_manager")


@dataclass
class CallScope:
    """What the redirect hops of one call share; set by the managed session.

    Attributes:
        start: Monotonic start of the call: its ``total_timeout`` deadline runs from here.
        verify_explicit: The caller passed ``verify=`` (an endpoint's must not override it).
        cert_explicit: The caller passed ``cert=``.
        origin: The URL of the first hop, once sent.
        credentials: The credential headers the current hop carries (name to value).
    """

    start: float
    verify_explicit: bool = False
    cert_explicit: bool = False
    origin: Optional[str] = None
    credentials: dict[str, str] = field(default_factory=dict)


#: The current call. Unset (a bare ``send``): each ``send`` is a call of its own.
CALL: contextvars.ContextVar[Optional[CallScope]] = contextvars.ContextVar("rcm_call", default=None)
# The SSL context of the attempt in progress, for the connection pool key.
_ATTEMPT_SSL_CONTEXT: contextvars.ContextVar[Optional[ssl.SSLContext]] = contextvars.ContextVar(
    "rcm_attempt_ssl_context", default=None
)

# Statuses whose Retry-After pauses the host for every caller.
_PAUSE_STATUSES = frozenset({429, 503})
# The longest Retry-After reported (about 31 years); longer ones are reported as this.
_RETRY_AFTER_CEILING = 1e9
# Body read size, and the granularity at which the deadline is checked while reading.
_CHUNK = 64 * 1024
# Errors on which retrying cannot help.
_PERMANENT_DNS = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)

TimeoutParam = Union[None, float, "tuple[Optional[float], Optional[float]]", TimeoutSauce]


@dataclass
class _Attempt:
    """The outcome of one attempt: a response, or an error (never both)."""

    response: Optional[Response] = None
    error: Optional[rex.RequestException] = None


class _DeadlineBeforeAttempt(rex.Timeout):
    """The call's deadline passed before an attempt could start (nothing was sent)."""


class _DeadlineWhileReading(rex.ReadTimeout):
    """The call's deadline passed while the body was arriving."""


class _GiveUp(Exception):
    """Internal: stop retrying and leave with the current outcome."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _resolve_timeout(
    timeout: TimeoutParam, policy: Policy
) -> tuple[Optional[float], Optional[float]]:
    """Turn what requests passes to ``send`` into ``(connect, read)``; None means the policy."""
    if timeout is None:
        return policy.connect_timeout, policy.read_timeout
    if isinstance(timeout, TimeoutSauce):
        connect = timeout.connect_timeout
        read = timeout.read_timeout
        return (
            connect if isinstance(connect, (int, float)) else None,
            read if isinstance(read, (int, float)) else None,
        )
    if isinstance(timeout, tuple):
        connect, read = timeout
        return connect, read
    return timeout, timeout


def _low_level(error: rex.RequestException) -> Exception:
    """Return the urllib3 error behind a requests error, for the Retry policy to classify."""
    arg = error.args[0] if error.args else None
    if isinstance(arg, uex.MaxRetryError) and arg.reason is not None:
        arg = arg.reason
    if isinstance(arg, uex.HTTPError):
        return arg
    # No urllib3 error inside (requests wraps a bare OSError so): assume the worst, that
    # bytes may have reached the server, so only idempotent requests are replayed.
    return uex.ProtocolError(str(error), error)


def _as_requests_error(exc: Exception, request: PreparedRequest) -> rex.RequestException:
    """Return ``exc`` as the requests exception requests would have raised; re-raise others."""
    if isinstance(exc, rex.RequestException):
        return exc
    if isinstance(exc, UnicodeError):  # a header or cookie value HTTP cannot carry
        return rex.InvalidHeader(
            f"a header value cannot be encoded for HTTP: {exc}", request=request
        )
    requests_class = requests_class_for(exc)
    if requests_class is None:
        raise exc  # a programming error (TypeError, ...) is not a transport failure
    return requests_class(exc, request=request)


def _body_error(exc: Exception, response: Response) -> rex.RequestException:
    """Map an error met while reading a body as ``Response.iter_content`` does."""
    if isinstance(exc, uex.ProtocolError):
        return rex.ChunkedEncodingError(exc, response=response)
    if isinstance(exc, uex.DecodeError):
        return rex.ContentDecodingError(exc, response=response)
    if isinstance(exc, uex.ReadTimeoutError):
        return rex.ConnectionError(exc, response=response)
    if isinstance(exc, uex.SSLError):
        return rex.SSLError(exc, response=response)
    assert response.request is not None
    return _as_requests_error(exc, response.request)


def _is_wire_failure(error: rex.RequestException) -> bool:
    """Tell whether ``error`` says something about the host (the breaker counts it)."""
    if isinstance(error, _DeadlineBeforeAttempt):
        return False
    return isinstance(
        error,
        (rex.ConnectionError, rex.Timeout, rex.ChunkedEncodingError, rex.ContentDecodingError),
    )


def _retry_cannot_help(low: BaseException) -> bool:
    """Tell whether retrying ``low`` is pointless: TLS verification, unknown host name."""
    seen = 0
    current: Optional[BaseException] = low
    while current is not None and seen < 8:
        if isinstance(current, (ssl.SSLCertVerificationError, ssl.CertificateError)):
            return True
        if isinstance(current, socket.gaierror) and current.errno in _PERMANENT_DNS:
            return True
        reason = getattr(current, "reason", None)
        current = (
            reason
            if isinstance(reason, BaseException)
            else current.__cause__ or current.__context__
        )
        seen += 1
    return False


def _state_key(url: str, policy: Policy) -> str:
    """The key of the host state a request to ``url`` uses: the host key, plus the scope."""
    key = host_key(url)
    return f"{key} [{policy.scope}]" if policy.scope else key


def _socket_of(response: Response) -> Optional[socket.socket]:
    connection = getattr(response.raw, "connection", None) or getattr(
        response.raw, "_connection", None
    )
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


class ResilientAdapter(HTTPAdapter):
    """A ``requests`` transport adapter that runs every request through the pipeline.

    Mount it on any ``requests.Session``; :class:`ConnectionManager` mounts it for
    ``http://`` and ``https://`` on the session it owns.

    Args:
        policy_for: Returns the policy for a request URL (endpoint configs decide).
        hosts: The per-host state table.
        clock: The clock all waits and deadlines use.
        closed: Set when the owner closes; waits end early and new sends are refused.
        pool_connections: Number of host pools to cache (``HTTPAdapter``).
        pool_maxsize: Connections kept per host pool (``HTTPAdapter``).
        pool_block: Block when a pool has no free connection (``HTTPAdapter``).
        rng: The random source for backoff jitter.
    """

    def __init__(
        self,
        policy_for: Callable[[str], Policy],
        hosts: HostRegistry,
        clock: Clock,
        closed: threading.Event,
        *,
        pool_connections: int = 10,
        pool_maxsize: int = 10,
        pool_block: bool = False,
        rng: Optional[random.Random] = None,
    ) -> None:
        self._policy_for = policy_for
        self._hosts = hosts
        self._clock = clock
        self._closed = closed
        self._rng = rng or random.Random()
        # One attempt per inner send: retries are decided here, not inside urllib3.
        super().__init__(
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            max_retries=Retry(0, read=False, redirect=False, raise_on_status=False),
            pool_block=pool_block,
        )

    # ----------------------------------------------------------------------- the pipeline
    def refuse_if_open(self, url: str) -> None:
        """Refuse a call at once when the breaker of ``url``'s host is open.

        The managed session asks this before requests prepares anything, so a call to a
        host known to be down costs microseconds and no wire traffic. A host not seen yet,
        or one whose breaker admits calls, goes on to the full pipeline (which checks again).

        Raises:
            CircuitBreakerOpen: The host's breaker is open.
        """
        policy = self._policy_for(url)
        if policy.breaker is None:
            return
        try:
            key = _state_key(url, policy)
        except ValueError:
            return  # not a URL urllib can split: requests will say what is wrong with it
        host = self._hosts.peek(key)
        if host is None or host.breaker is None:
            return
        try:
            host.breaker.check()
        except CircuitBreakerOpen:
            host.stats.add("requests")
            host.stats.add("rejected_open")
            raise

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: TimeoutParam = None,
        verify: Union[bool, str] = True,
        cert: Any = None,
        proxies: Optional[Mapping[str, str]] = None,
    ) -> Response:
        """Send ``request`` through the pipeline (see the module docstring).

        Args:
            request: The prepared request.
            stream: Leave the body unread (requests' meaning).
            timeout: None for the policy's timeouts, a number, a ``(connect, read)`` pair
                or a urllib3 ``Timeout``.
            verify: TLS verification, as in requests.
            cert: Client certificate, as in requests.
            proxies: Proxies, as in requests.

        Returns:
            The response.

        Raises:
            ConnectionManagerError: Every failure, flavoured with the requests class.
        """
        if self._closed.is_set():
            raise ConnectionManagerError("ConnectionManager is closed; create a new one")
        url = request.url or ""
        policy = self._policy_for(url)
        call = CALL.get()
        if policy.verify is not None and not (call is not None and call.verify_explicit):
            verify = policy.verify
        if policy.cert is not None and not (call is not None and call.cert_explicit):
            cert = policy.cert
        host = self._hosts.acquire(_state_key(url, policy), policy)
        try:
            host.stats.add("requests")
            return self._run(request, policy, host, stream, timeout, verify, cert, proxies)
        finally:
            self._hosts.release(host)

    def _run(
        self,
        request: PreparedRequest,
        policy: Policy,
        host: HostState,
        stream: bool,
        timeout: TimeoutParam,
        verify: Union[bool, str],
        cert: Any,
        proxies: Optional[Mapping[str, str]],
    ) -> Response:
        clock = self._clock
        call = CALL.get()
        start = clock.monotonic() if call is None else call.start
        deadline = None if policy.total_timeout is None else start + policy.total_timeout
        connect, read = _resolve_timeout(timeout, policy)
        method = (request.method or "GET").upper()
        retry = policy.retry
        attempts = 0

        while True:
            self._wait_for_pause(host, policy, deadline)
            breaker = host.breaker
            try:
                if breaker is not None:
                    breaker.check()  # no point waiting for a permit to be refused
                self._take_permit(host, policy, deadline)
                probe = breaker.admit() if breaker is not None else False
            except CircuitBreakerOpen:
                host.stats.add("rejected_open")
                raise
            attempts += 1
            host.stats.add("attempts")
            if attempts > 1:
                host.stats.add("retries")
            elif host.budget is not None:
                host.budget.deposit()
            token = _ATTEMPT_SSL_CONTEXT.set(policy.ssl_context) if policy.ssl_context else None
            try:
                outcome = self._attempt(
                    request, stream, connect, read, deadline, verify, cert, proxies
                )
            except BaseException:
                # Not a transport failure (a programming error, KeyboardInterrupt): it says
                # nothing about the host, but the admission must be given back.
                if breaker is not None:
                    breaker.release(probe)
                raise
            finally:
                if token is not None:
                    _ATTEMPT_SSL_CONTEXT.reset(token)
            tripped = self._record(host, probe, outcome)

            try:
                retry, wait = self._next(retry, method, request, outcome, policy, host, deadline)
                if tripped and wait is not None:
                    raise _GiveUp("the circuit breaker opened")
                if wait is not None and host.budget is not None and not host.budget.try_spend():
                    host.stats.add("retries_denied")
                    raise _GiveUp("the host's retry budget is spent")
            except _GiveUp as stop:
                return self._leave(request, policy, outcome, attempts, stop.reason)
            if wait is None:  # success, or a response the policy does not retry
                assert outcome.response is not None
                return outcome.response
            if outcome.response is not None:
                outcome.response.close()
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "retrying %s %s (attempt %d failed: %s); waiting %.3f s",
                    method,
                    redact_url(request.url or ""),
                    attempts,
                    self._describe(outcome),
                    wait,
                )
            self._sleep(wait)

    def build_connection_pool_key_attributes(
        self, request: PreparedRequest, verify: Union[bool, str], cert: Any = None
    ) -> tuple[Any, Any]:
        """Add the policy's ``ssl_context`` (if any) to requests' pool key for HTTPS.

        The context is part of urllib3's pool key, so a new context (``set_ssl_context``,
        or an endpoint's own) gets new connections from the next request on.
        """
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        context = _ATTEMPT_SSL_CONTEXT.get()
        if context is not None and host_params.get("scheme") == "https":
            extended: dict[str, Any] = dict(pool_kwargs)
            extended["ssl_context"] = context
            return host_params, extended
        return host_params, pool_kwargs

    def close(self) -> None:
        """Close every pooled connection, then drop the pools.

        urllib3 2's ``PoolManager.clear()`` forgets its pools without closing them (they
        close when garbage-collected, which a held response delays), so they are closed
        here first. Connections still checked out close when they are released.
        """
        for manager in (self.poolmanager, *self.proxy_manager.values()):
            pools = manager.pools
            for key in list(pools.keys()):
                try:
                    pool = pools[key]
                except KeyError:
                    continue
                pool.close()
        super().close()

    # ------------------------------------------------------------------------- the steps
    def _sleep(self, seconds: float) -> None:
        self._clock.sleep(seconds, self._closed)
        if self._closed.is_set():
            raise ConnectionManagerError("ConnectionManager was closed while a call was waiting")

    def _remaining(self, deadline: Optional[float]) -> float:
        return float("inf") if deadline is None else deadline - self._clock.monotonic()

    def _wait_for_pause(self, host: HostState, policy: Policy, deadline: Optional[float]) -> None:
        pause = host.paused_for(self._clock.monotonic())
        if pause <= 0:
            return
        if pause > policy.retry_after_max or pause > self._remaining(deadline):
            host.stats.add("throttled")
            raise RateLimitExceeded(
                f"{host.key} asked callers to wait {pause:.3f} s (Retry-After), longer than "
                f"{'retry_after_max' if pause > policy.retry_after_max else 'the deadline'} allows",
                retry_after=pause,
                host=host.key,
            )
        host.stats.add("throttled")
        host.stats.add("throttle_wait_seconds", pause)
        self._sleep(pause)

    def _take_permit(self, host: HostState, policy: Policy, deadline: Optional[float]) -> None:
        limiter = host.limiter
        if limiter is None or policy.rate_limit is None:
            return
        wait = limiter.try_acquire()
        if wait == 0.0:
            return
        host.stats.add("throttled")
        max_wait = policy.rate_limit.max_wait
        budget = min(float("inf") if max_wait is None else max_wait, self._remaining(deadline))
        waited = 0.0
        while wait > 0.0:
            if waited + wait > budget:
                limit = policy.rate_limit
                raise RateLimitExceeded(
                    f"rate limit of {limit.requests} per {limit.period:g} s for {host.key} "
                    f"reached; next permit in {wait:.3f} s",
                    retry_after=wait,
                    host=host.key,
                )
            self._sleep(wait)
            waited += wait
            host.stats.add("throttle_wait_seconds", wait)
            wait = limiter.try_acquire()

    def _attempt(
        self,
        request: PreparedRequest,
        stream: bool,
        connect: Optional[float],
        read: Optional[float],
        deadline: Optional[float],
        verify: Union[bool, str],
        cert: Any,
        proxies: Optional[Mapping[str, str]],
    ) -> _Attempt:
        remaining = self._remaining(deadline)
        if remaining <= 0:
            return _Attempt(
                error=_DeadlineBeforeAttempt("total_timeout expired before the attempt")
            )
        if deadline is not None:
            connect = remaining if connect is None else min(connect, remaining)
            read = remaining if read is None else min(read, remaining)
        try:
            response = super().send(
                request,
                stream=True,
                timeout=(connect, read),  # type: ignore[arg-type]  # None parts are valid
                verify=verify,
                cert=cert,
                proxies=proxies,
            )
        except Exception as exc:  # noqa: BLE001 - sorted by _as_requests_error
            return _Attempt(error=_as_requests_error(exc, request))
        if stream:
            return _Attempt(response=response)
        try:
            self._read_body(response, read, deadline)
        except Exception as exc:  # noqa: BLE001 - sorted by _as_requests_error
            response.close()
            return _Attempt(error=_as_requests_error(exc, request))
        return _Attempt(response=response)

    def _read_body(
        self, response: Response, read: Optional[float], deadline: Optional[float]
    ) -> None:
        """Read the whole body inside the attempt; refuse a short one.

        Without a deadline this is ``response.content``, exactly as requests reads it.
        With one, the body is read with ``read1`` (one socket read at a time, each bounded
        by what is left of the deadline), so a server that drips bytes cannot hold the call.
        """
        if deadline is None:
            body = response.content
        else:
            body = self._read_until(response, read, deadline)
        missing = getattr(response.raw, "length_remaining", None)
        if missing:
            # Wrapped the way urllib3 reports a broken body, so that the Retry policy sees
            # a read error (not replayed for a non-idempotent method).
            raise rex.ChunkedEncodingError(
                uex.ProtocolError(
                    "Response ended prematurely", uex.IncompleteRead(len(body), missing)
                ),
                response=response,
            )

    def _read_until(self, response: Response, read: Optional[float], deadline: float) -> bytes:
        raw = response.raw
        chunks: list[bytes] = []
        while True:
            remaining = self._remaining(deadline)
            if remaining <= 0:
                raise _DeadlineWhileReading(
                    "total_timeout expired while reading the response body", response=response
                )
            # The socket is looked up each time: once the body is complete urllib3 returns
            # the connection to the pool and it is no longer ours (it resets the timeout).
            sock = _socket_of(response)
            if sock is not None:
                sock.settimeout(remaining if read is None else min(read, remaining))
            try:
                chunk = raw.read1(_CHUNK, decode_content=True)
            except Exception as exc:
                raise _body_error(exc, response) from exc
            if not chunk:
                break
            chunks.append(chunk)
        body = b"".join(chunks)
        # What Response.content does when it reads the body itself.
        response._content = body
        response._content_consumed = True  # type: ignore[attr-defined]
        return body

    def _record(self, host: HostState, probe: bool, outcome: _Attempt) -> bool:
        """Tell the breaker and the counters how the attempt went; True if it tripped."""
        failed = (outcome.error is not None and _is_wire_failure(outcome.error)) or (
            outcome.response is not None and outcome.response.status_code >= 500
        )
        if failed:
            host.stats.add("failures")
        breaker = host.breaker
        if breaker is None:
            return False
        if failed:
            return breaker.record_failure(probe)
        if outcome.error is not None:
            breaker.release(probe)  # a client-side error says nothing about the host
            return False
        breaker.record_success(probe)
        return False

    def _next(
        self,
        retry: Retry,
        method: str,
        request: PreparedRequest,
        outcome: _Attempt,
        policy: Policy,
        host: HostState,
        deadline: Optional[float],
    ) -> tuple[Retry, Optional[float]]:
        """Decide what follows an attempt.

        Returns:
            ``(retry, None)`` to return the response as it is, or ``(new_retry, wait)`` to
            retry after ``wait`` seconds.

        Raises:
            _GiveUp: No further attempt: the caller leaves with the current outcome.
        """
        response = outcome.response
        retry_after: Optional[float] = None
        if response is not None:
            if (
                retry.respect_retry_after_header
                and response.status_code in _PAUSE_STATUSES
                and "Retry-After" in response.headers
            ):
                retry_after = self._retry_after(retry, response)
                if retry_after is not None:
                    host.pause_until(self._clock.monotonic() + retry_after)
            has_retry_after = retry_after is not None
            if not retry.is_retry(method, response.status_code, has_retry_after):
                return retry, None
            try:
                new_retry = retry.increment(
                    method, redact_url(request.url or ""), response=response.raw
                )
            except uex.MaxRetryError:
                raise _GiveUp("retries exhausted") from None
            if retry_after is not None and (
                retry_after > policy.retry_after_max or retry_after > self._remaining(deadline)
            ):
                response.close()
                host.stats.add("throttled")
                bound = (
                    "retry_after_max" if retry_after > policy.retry_after_max else "the deadline"
                )
                where = redact_url(request.url or "")
                raise RateLimitExceeded(
                    f"{method} {where}: the server asked to wait {retry_after:.3f} s "
                    f"(Retry-After), longer than {bound} allows",
                    retry_after=retry_after,
                    host=host.key,
                    response=response,
                )
        else:
            error = outcome.error
            assert error is not None
            if isinstance(error, (_DeadlineBeforeAttempt, _DeadlineWhileReading)):
                raise _GiveUp("total_timeout expired")
            if not _is_wire_failure(error):
                raise _GiveUp("not retryable")
            low = _low_level(error)
            if _retry_cannot_help(low):
                raise _GiveUp("retrying cannot help")
            try:
                new_retry = retry.increment(method, redact_url(request.url or ""), error=low)
            except uex.MaxRetryError:
                raise _GiveUp("retries exhausted") from None
            except Exception:  # noqa: BLE001 - what urllib3 re-raises means "do not retry"
                # urllib3 re-raises errors it will not retry: a read error on a method
                # that is not idempotent, whose bytes may have reached the server.
                raise _GiveUp("not safe to replay") from None

        if retry_after is not None:
            wait = 0.0  # the host pause set above makes the next attempt wait
        else:
            wait = self._backoff(new_retry)
        if self._remaining(deadline) <= max(wait, retry_after or 0.0):
            raise _GiveUp("the deadline leaves no time for another attempt")
        return new_retry, wait

    def _retry_after(self, retry: Retry, response: Response) -> Optional[float]:
        """Return the response's Retry-After in seconds; None when absent, unusable or 0.

        urllib3 parses it (seconds or HTTP-date). Newer urllib3 caps the value at its own
        ``retry_after_max``; the pipeline needs the server's real value (to refuse a wait
        longer than ours), so it parses with that cap lifted. A value of 0 (or a date in
        the past) means "no wait asked for", and normal backoff applies, as in urllib3.
        """
        if getattr(retry, "retry_after_max", math.inf) < math.inf:
            retry = retry.new(retry_after_max=math.inf)
        try:
            value = retry.get_retry_after(response.raw)
        except (uex.InvalidHeader, ValueError, OverflowError):
            # Garbage, a negative number or an impossible date: ignored. A number with more
            # digits than Python parses is a wait longer than anyone allows.
            header = response.headers.get("Retry-After", "").strip()
            digits = header.isascii() and header.isdigit()
            return _RETRY_AFTER_CEILING if digits else None
        if value is None or value <= 0:
            return None
        try:
            return min(float(value), _RETRY_AFTER_CEILING)
        except OverflowError:
            return _RETRY_AFTER_CEILING

    def _backoff(self, retry: Retry) -> float:
        """Full jitter: uniform in ``[0, min(backoff_max, factor * 2 ** (retries - 1))]``."""
        retries = max(1, len(retry.history))
        ceiling = min(
            float(getattr(retry, "backoff_max", Retry.DEFAULT_BACKOFF_MAX)),
            retry.backoff_factor * (2 ** (retries - 1)),
        )
        return self._rng.uniform(0.0, ceiling) if ceiling > 0 else 0.0

    def _leave(
        self,
        request: PreparedRequest,
        policy: Policy,
        outcome: _Attempt,
        attempts: int,
        reason: str,
    ) -> Response:
        """Finish a call that will not be retried: return the response or raise the error."""
        response = outcome.response
        if response is not None:
            # A policy with nothing left to give returns the status as plain requests would;
            # retries cut short (breaker opened, deadline) or used up raise.
            if not policy.retry.raise_on_status or (
                attempts == 1 and reason == "retries exhausted"
            ):
                return response
            url = redact_url(request.url or "")
            cause = uex.MaxRetryError(
                None,  # type: ignore[arg-type]
                url,
                uex.ResponseError(f"too many {response.status_code} error responses"),
            )
            raise flavoured(MaxRetriesExceeded, rex.RetryError)(
                f"{request.method} {url}: {reason} after {attempts} attempts; "
                f"last status {response.status_code}",
                attempts=attempts,
                last_response=response,
                request=request,
            ) from cause
        error = outcome.error
        assert error is not None
        return self._raise(request, error, attempts, reason)

    def _raise(
        self, request: PreparedRequest, error: BaseException, attempts: int, reason: str
    ) -> NoReturn:
        if attempts > 1 and reason != "not retryable":
            translated = to_contract(
                error,
                request=request,
                base=MaxRetriesExceeded,
                attempts=attempts,
            )
            if translated is not None:
                translated.args = (f"{reason} after {attempts} attempts: {translated.args[0]}",)
        else:
            translated = to_contract(error, request=request)
        if translated is None:
            raise error
        raise translated from error

    @staticmethod
    def _describe(attempt: _Attempt) -> str:
        if attempt.response is not None:
            return f"status {attempt.response.status_code}"
        return type(attempt.error).__name__
