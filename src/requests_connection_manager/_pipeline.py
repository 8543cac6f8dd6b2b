"""The pipeline of one request, read top to bottom in :meth:`ResilientAdapter.send`.

``requests`` calls ``send`` once per redirect hop. Four questions, four answers:

- Where does a request **wait or get refused**?  :meth:`._admission.Admission.acquire`
  (host pause, breaker, adaptive throttling, server quota, rate limiter), plus
  :meth:`~._admission.Admission.allow_retry` (retry budget) between attempts.
- Where is the **I/O** of an attempt?  :func:`._attempt.attempt` (send, read the body,
  all under the deadline).
- Where is it decided to **retry**?  :func:`._decision.decide` (pure: the urllib3 ``Retry``
  policy, the outcome, the time and the deadline).
- Where is an **exception translated**?  :func:`._boundary.contract_errors` (the only
  translation site).

The request's URL is parsed and normalised once (:func:`._url.target_of`); that identity
picks the policy (endpoint configs) and the host state. Everything that happens is
published as an event (:mod:`.events`): logging, stats, the CLI and the demo listen.
No lock is held while a request is on the wire.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Optional, Union

import requests.exceptions as rex
import urllib3.exceptions as uex
from urllib3.util import Timeout as TimeoutSauce

from . import _forksafe
from ._admission import closed_error, wait_bound
from ._attempt import attempt
from ._boundary import contract_errors
from ._clock import SystemClock
from ._decision import RETURN, GiveUp, Retry_, Step, decide
from ._exchange import CALL, Exchange, Outcome
from ._redaction import redact_url
from ._transport import Transport
from ._url import target_of
from ._watchdog import Watch
from .events import Refused, RequestFinished, RequestStarted

if TYPE_CHECKING:
    from collections.abc import Mapping

    from requests import PreparedRequest, Response

    from ._engine import Engine

__all__ = ["ResilientAdapter"]

TimeoutParam = Union[None, float, "tuple[Optional[float], Optional[float]]", TimeoutSauce]

_IDEMPOTENT_TOO = frozenset({"POST", "PATCH"})
# A timeout longer than this many seconds (about 31 years) is no limit at all.
_CENTURIES = 1e9


class _PoolName:
    """Stands for the pool in a ``MaxRetryError`` message, as urllib3 prints it."""

    def __init__(self, request: PreparedRequest) -> None:
        target = target_of(request.url or "")
        self._text = (
            "HTTPConnectionPool(host=None, port=None)"
            if target is None
            else f"{'HTTPS' if target.scheme == 'https' else 'HTTP'}ConnectionPool("
            f"host={target.host!r}, port={target.port})"
        )

    def __str__(self) -> str:
        return self._text


def _resolve_timeout(
    timeout: TimeoutParam, ex: Exchange
) -> tuple[Optional[float], Optional[float]]:
    """Turn what requests passes to ``send`` into ``(connect, read)``; None: the policy's.

    A tuple or value requests would refuse is refused with requests' own ``ValueError``.
    """
    if timeout is None:
        return ex.connect, ex.read
    timeout = _no_limit_if_huge(timeout)
    if isinstance(timeout, tuple):
        try:
            connect, read = timeout
            sauce = TimeoutSauce(connect=connect, read=read)
        except ValueError:
            raise ValueError(
                f"Invalid timeout {timeout}. Pass a (connect, read) timeout tuple, "
                "or a single float to set both timeouts to the same value."
            ) from None
    elif isinstance(timeout, TimeoutSauce):
        sauce = timeout
    else:
        sauce = TimeoutSauce(connect=timeout, read=timeout)
    parts: tuple[Any, Any] = (sauce.connect_timeout, sauce.read_timeout)
    return (
        parts[0] if isinstance(parts[0], (int, float)) else None,
        parts[1] if isinstance(parts[1], (int, float)) else None,
    )


def _no_limit_if_huge(timeout: Any) -> Any:
    """A timeout of centuries (``1e300``, ``10**400``, ``inf``) means no limit: None.

    urllib3 refuses what does not fit a float (``OverflowError``) and sockets what does not
    fit their clock; the call's ``total_timeout``, if any, still bounds it.
    """

    def part(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value > _CENTURIES:
            return None
        if isinstance(value, float) and value > _CENTURIES:
            return None  # inf included; NaN and negatives are left for urllib3 to refuse
        return value

    if isinstance(timeout, tuple):
        return tuple(part(value) for value in timeout)
    return part(timeout)


class ResilientAdapter(Transport):
    """A ``requests`` transport adapter that runs every request through the pipeline.

    :class:`~requests_connection_manager.ConnectionManager` mounts one for ``http://`` and
    ``https://`` on the session it owns (``cm.adapter``); mount it on a session of your own
    with ``session.mount("https://", cm.adapter)``. On its own, the adapter gives each
    request the manager's retries, rate limits, breaker, pauses, timeouts and
    ``total_timeout`` (from the first byte of that request, per redirect hop), its
    endpoint TLS settings and its events; the manager's *session* adds what happens
    around requests (credentials, hooks, one deadline across redirects, the early
    refusal of a host whose breaker is open): see ``ConnectionManagerMixin``.

    Args:
        engine: The manager's shared state.
        pool_connections: Host pools to cache (``HTTPAdapter``).
        pool_maxsize: Connections kept per host pool (``HTTPAdapter``).
        pool_block: Wait for a free pooled connection (``HTTPAdapter``), never past the
            call's deadline or the manager's close.
    """

    __attrs__ = [*Transport.__attrs__, "_rcm_engine"]  # noqa: RUF012 - requests' own name

    def __init__(
        self,
        engine: Engine,
        *,
        pool_connections: int = 10,
        pool_maxsize: int = 10,
        pool_block: bool = False,
    ) -> None:
        self._rcm_engine = engine
        super().__init__(pool_connections, pool_maxsize, pool_block, engine.clock.monotonic)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        self._rcm_clock = self._rcm_engine.clock.monotonic
        self.reinit_after_fork()
        _forksafe.register(self)

    # ----------------------------------------------------------------------- the pipeline
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
        ex = self._exchange(request, stream, timeout, verify, cert, proxies)
        try:
            with contract_errors(ex):
                response = self._run(ex)
        except BaseException as exc:
            self._finished(ex, None, exc)
            raise
        self._finished(ex, response, None)
        return response

    def _run(self, ex: Exchange) -> Response:
        admission = self._rcm_engine.admission
        retry = ex.retry
        while True:
            permit = admission.acquire(ex)
            outcome = self._attempt(ex, permit)
            permit.settle(outcome)
            step = self._decide(ex, retry, outcome)
            if step is RETURN:
                assert outcome.response is not None
                return outcome.response
            if not isinstance(step, Retry_) or not admission.allow_retry(ex, outcome):
                return self._leave(ex, outcome, step)
            outcome.discard()
            admission.backoff(ex, step.wait, outcome)
            retry = step.retry

    # ------------------------------------------------------------------------- the steps
    def _exchange(
        self,
        request: PreparedRequest,
        stream: bool,
        timeout: TimeoutParam,
        verify: Any,
        cert: Any,
        proxies: Optional[Mapping[str, str]],
    ) -> Exchange:
        """One URL identity, policy, host state and deadline for the request."""
        engine = self._rcm_engine
        call = CALL.get()
        start = engine.clock.monotonic() if call is None else call.start
        target = target_of(request.url or "")
        policy, key = engine.settings.policy_and_key(target, request.url or "")
        host = engine.hosts.acquire(key, policy)
        ex = Exchange(request, target, policy, host, next(engine.admission.ids), start)
        try:
            ex.connect, ex.read = _resolve_timeout(timeout, ex)
        except BaseException:
            engine.hosts.release(host)
            raise
        tls = policy.tls
        ex.verify = (
            tls.verify if tls.verify is not None and not (call and call.verify_explicit) else verify
        )
        ex.cert = tls.cert if tls.cert is not None and not (call and call.cert_explicit) else cert
        ex.proxies, ex.stream = proxies, stream
        ex.follows_redirects = call is not None and call.follows_redirects
        ex.keep_secrets(engine.secrets, call, engine.settings.secret_headers)
        if policy.retries.idempotency_keys and ex.method in _IDEMPOTENT_TOO:
            self._idempotency_key(ex, call)
        engine.bus.publish(
            RequestStarted(ex.request_id, key, ex.method, ex.url, engine.clock.monotonic())
        )
        return ex

    @staticmethod
    def _idempotency_key(ex: Exchange, call: Any) -> None:
        """One key for every attempt and hop of a POST/PATCH; retried like PUT from now on."""
        name = ex.policy.retries.idempotency_header
        headers = ex.request.headers
        key = headers.get(name)  # the caller's own, in any spelling, wins
        if key is None:
            key = call.idempotency_key if call is not None and call.idempotency_key else None
            # A structured-field string, as draft-ietf-httpapi-idempotency-key-header
            # writes it; servers that take the key as an opaque string accept it too.
            key = key or f'"{uuid.uuid4()}"'
            headers[name] = key
        if call is not None:
            call.idempotency_key = key
        ex.idempotency_key = key
        allowed = ex.retry.allowed_methods
        if allowed is not None:
            ex.retry = ex.retry.new(allowed_methods=frozenset(allowed) | _IDEMPOTENT_TOO)

    def _attempt(self, ex: Exchange, permit: Any) -> Outcome:
        engine = self._rcm_engine
        ssl_context = ex.policy.tls.ssl_context
        if ex.deadline is not None and isinstance(engine.clock, SystemClock):
            watch = self.watchdog.watch(ex.deadline, engine.closed, ssl_context)
        else:
            watch = Watch(None, ex.deadline, engine.closed, engine.clock.monotonic, ssl_context)
        try:
            return attempt(super().send, ex, watch)
        except BaseException:
            # Not a transport failure (a programming error, KeyboardInterrupt): it says
            # nothing about the host, but the admission must be given back.
            permit.abandon()
            raise

    def _decide(self, ex: Exchange, retry: Any, outcome: Outcome) -> Step:
        engine = self._rcm_engine
        if engine.closed.is_set() and outcome.error is not None:
            return GiveUp("closed", closed_error(waiting=True))
        bound, name = wait_bound(ex.policy)
        return decide(
            retry,
            ex.method,
            ex.url,
            outcome,
            retry_after_max=bound,
            now=engine.clock.monotonic(),
            deadline=ex.deadline,
            rng=engine.rng,
            replayable=ex.replayable,
            retry_after_bound=name,
        )

    def _leave(self, ex: Exchange, outcome: Outcome, step: Step) -> Response:
        """Finish a request that will not be retried: return the response or raise."""
        reason = step.reason if isinstance(step, GiveUp) else "the host's retry budget is spent"
        ex.reason = reason
        if isinstance(step, GiveUp) and step.error is not None:
            outcome.discard()
            if reason == "retry_after":
                engine = self._rcm_engine
                wait = getattr(step.error, "retry_after", None)
                now = engine.clock.monotonic()
                engine.bus.publish(Refused(ex.request_id, ex.key, reason, wait, now))
            raise step.error
        response = outcome.response
        if response is None:
            assert outcome.error is not None
            ex.gave_up = ex.attempts > 1 and reason != "not retryable"
            raise outcome.error
        # A policy with nothing left to give returns the status as plain requests would;
        # retries cut short (breaker opened, deadline, budget) or used up raise.
        if not ex.retry.raise_on_status or (ex.attempts == 1 and reason == "retries exhausted"):
            return response
        ex.gave_up = True
        cause = uex.MaxRetryError(
            _PoolName(ex.request),  # type: ignore[arg-type]
            redact_url(ex.request.path_url),
            uex.ResponseError(f"too many {response.status_code} error responses"),
        )
        raise rex.RetryError(cause, request=ex.request, response=response)

    def _finished(
        self, ex: Exchange, response: Optional[Response], error: Optional[BaseException]
    ) -> None:
        engine = self._rcm_engine
        engine.hosts.release(ex.host)
        now = engine.clock.monotonic()
        engine.bus.publish(
            RequestFinished(
                ex.request_id,
                ex.key,
                ex.attempts,
                None if response is None else response.status_code,
                None if error is None else type(error).__name__,
                now - ex.start,
                now,
            )
        )

    # --------------------------------------------------------------- before any request
    def refuse_if_open(self, method: str, url: str) -> None:
        """Refuse a call at once when the breaker of ``url``'s host is open.

        The managed session asks this before requests prepares anything, so a call to a
        host known to be down costs microseconds and no wire traffic. A host not seen yet,
        or one whose breaker admits calls, goes on to the full pipeline (which checks again).

        Raises:
            CircuitBreakerOpen: The host's breaker is open.
        """
        engine = self._rcm_engine
        if not engine.unsettled and engine.shared is None:
            return  # every breaker of this process is closed (shared ones are read below)
        target = target_of(url)
        if target is None:
            return  # requests will say what is wrong with it
        policy, key = engine.settings.policy_and_key(target, url)
        if policy.breaker is None:
            return
        host = engine.hosts.peek(key)
        if host is not None:
            engine.admission.refuse_early(host, method, url)
