"""Admission: the only place a request waits or is refused.

:meth:`Admission.acquire` lets one attempt through, or raises, in this order:

1. the manager is closed                   -> ``ConnectionManagerError``
2. the host is paused (a ``Retry-After``, a spent server quota, a slow-down after bare
   429s; seen by any caller)               -> wait, re-checking after waking; spread
                                              waiters with jitter; or ``RateLimitExceeded``
3. the host's breaker is open              -> ``CircuitBreakerOpen``, no wire traffic
4. adaptive throttling rejects it locally  -> ``RateLimitExceeded`` (it says: local)
5. the server's advertised quota is spent  -> wait for its reset (as 2)
6. the client rate limiter                 -> wait for a permit, or ``RateLimitExceeded``
7. breaker admission (bounded half-open probes) -> ``CircuitBreakerOpen``

and returns a :class:`Permit`. The permit is settled once the attempt ends
(:meth:`Permit.settle`): what the response says about the host (``Retry-After``,
rate-limit headers, a bare 429) is taken in, then the breaker hears
:meth:`~Permit.success`, :meth:`~Permit.failure` or :meth:`~Permit.release` (no verdict).
Between attempts, :meth:`Admission.allow_retry` applies the retry budget and
:meth:`Admission.backoff` waits. Every wait and refusal is published as an event.

**Pauses.** When a pause ends, waiters wake spread over ``min(1 s, pause / 4)`` (uniform
jitter), so a host is not hit by every waiter at the same instant; each re-checks the
pause after waking, so a pause lengthened meanwhile (a later, longer ``Retry-After``) is
honoured. A pause longer than ``retry_after_max`` (or the call's deadline, or a configured
``rate_limit_max_wait``) is refused at once with ``RateLimitExceeded(retry_after=...)``.

No lock is held while anything waits or is on the wire.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
import time
from typing import TYPE_CHECKING, Optional

from . import events
from ._boundary import made_clean
from ._decision import PAUSE_STATUSES, retry_after_of, verdict_of
from ._quota_headers import parse_quota
from ._redaction import redact_url
from .exceptions import CircuitBreakerOpen, ConnectionManagerError, RateLimitExceeded

if TYPE_CHECKING:
    from ._clock import Clock
    from ._exchange import Exchange, Outcome
    from ._hosts import HostState
    from .config import Policy

__all__ = ["CLOSED_MESSAGE", "Admission", "Permit", "closed_error", "wait_bound"]

#: The message of every call refused because its manager is closed.
CLOSED_MESSAGE = "ConnectionManager is closed; create a new one"
# Waiters of a pause wake spread over min(_MAX_SPREAD, pause * _SPREAD_SHARE) seconds.
_MAX_SPREAD = 1.0
_SPREAD_SHARE = 0.25
# A pause re-checked more often than this per attempt is refused (bounds the loop).
_MAX_PAUSE_ROUNDS = 64
# The longest an attempt waits (real seconds) for answers in flight to say what remains
# of a spent quota before it goes anyway.
_MAX_QUOTA_WAIT = 2.0


def closed_error(waiting: bool = False) -> ConnectionManagerError:
    """The error of a call refused (or woken) because its manager is closed."""
    if waiting:
        return ConnectionManagerError("ConnectionManager was closed while a call was waiting")
    return ConnectionManagerError(CLOSED_MESSAGE)


def wait_bound(policy: Policy) -> tuple[float, str]:
    """Return the longest a caller waits for a pause the server asked for, and its keyword.

    ``retry_after_max``, shortened by ``rate_limit_max_wait`` when that is set: a caller
    who will not wait for the client's own limiter does not wait for the server's either.
    """
    bound, why = policy.retries.retry_after_max, "retry_after_max"
    waits = [policy.signals.max_wait]
    if policy.rate_limit is not None:
        waits.append(policy.rate_limit.max_wait)
    for max_wait in waits:
        if max_wait is not None and max_wait < bound:
            bound, why = max_wait, "rate_limit_max_wait"
    return bound, why


class Permit:
    """One admitted attempt; settle it exactly once.

    Attributes:
        probe: The attempt is a half-open breaker probe.
        sent_at: Monotonic time it was admitted.
    """

    __slots__ = ("_admission", "_ex", "probe", "sent_at")

    def __init__(self, admission: Admission, ex: Exchange, probe: bool, sent_at: float) -> None:
        self._admission = admission
        self._ex = ex
        self.probe = probe
        self.sent_at = sent_at

    def settle(self, outcome: Outcome) -> None:
        """Take in what the attempt showed, and give the breaker its verdict."""
        admission, ex = self._admission, self._ex
        host = ex.host
        now = admission.clock.monotonic()
        self._off_the_wire()
        if outcome.response is not None:
            admission.observe(ex, outcome, self.sent_at, now)
        verdict = outcome.verdict = verdict_of(outcome)
        if verdict == "failure":
            outcome.tripped = self.failure(outcome, now)
        elif verdict == "success":
            outcome.tripped = self.success(outcome, now)
        else:
            self.release()
        throttle = host.throttle
        if throttle is not None and not outcome.deadline_hit and not outcome.local:
            status = outcome.status
            throttle.record_outcome(now, status is not None and status < 500 and status != 429)
        admission.bus.publish(
            events.AttemptFinished(
                ex.request_id,
                host.key,
                ex.attempts,
                outcome.status,
                None if outcome.error is None else outcome.describe(),
                verdict,
                outcome.duration,
                now,
            )
        )

    def _slow(self, outcome: Outcome) -> bool:
        breaker = self._ex.policy.breaker
        limit = None if breaker is None else breaker.slow_call_duration
        return limit is not None and outcome.duration > limit

    def success(self, outcome: Outcome, now: float) -> bool:
        """The host did its part; returns True if a slow attempt tipped the breaker open."""
        breaker = self._ex.host.breaker
        if breaker is None:
            return False
        return breaker.record_success(self.probe, now, self._slow(outcome))

    def failure(self, outcome: Outcome, now: float) -> bool:
        """The host failed; returns True if this opened its breaker."""
        breaker = self._ex.host.breaker
        if breaker is None:
            return False
        return breaker.record_failure(self.probe, now, self._slow(outcome))

    def release(self) -> None:
        """No verdict on the host (client-side error, the caller's deadline, a local error)."""
        breaker = self._ex.host.breaker
        if breaker is not None:
            breaker.release(self.probe)

    def abandon(self) -> None:
        """The attempt ended in an error that is no transport failure: give everything back."""
        self._off_the_wire()
        self.release()

    def _off_the_wire(self) -> None:
        """Count the attempt out of its host's attempts in flight (and its quota's)."""
        host = self._ex.host
        with host._lock:
            host.in_flight -= 1
        if host.quota is not None:
            host.quota.settled()


class Admission:
    """Decides when each attempt may go (see the module docstring).

    Args:
        clock: The manager's clock.
        closed: Set when the manager closes.
        bus: Where events are published.
        rng: The random source of the jitter.
    """

    def __init__(
        self, clock: Clock, closed: threading.Event, bus: events.EventBus, rng: random.Random
    ) -> None:
        self.clock = clock
        self.closed = closed
        self.bus = bus
        self.rng = rng
        self.ids = itertools.count(1)

    # ------------------------------------------------------------------------- refusals
    def refuse_early(self, host: HostState, method: str, url: str) -> None:
        """Refuse a call to a host whose breaker is open, before requests prepares it.

        A refused call is still a request of the host (``RequestStarted``, ``Refused``,
        ``RequestFinished``), with no attempt.

        Raises:
            CircuitBreakerOpen: The host's breaker is open.
        """
        breaker = host.breaker
        if breaker is None or breaker.state != "open":
            return
        try:
            breaker.check()
        except CircuitBreakerOpen as refusal:
            request_id = next(self.ids)
            now = self.clock.monotonic()
            bus = self.bus
            bus.publish(events.RequestStarted(request_id, host.key, method, redact_url(url), now))
            bus.publish(events.Refused(request_id, host.key, "breaker", refusal.retry_after, now))
            bus.publish(
                events.RequestFinished(
                    request_id, host.key, 0, None, "CircuitBreakerOpen", 0.0, now
                )
            )
            raise

    def _refused(
        self, request_id: int, key: str, reason: str, retry_after: Optional[float]
    ) -> None:
        self.bus.publish(
            events.Refused(request_id, key, reason, retry_after, self.clock.monotonic())
        )

    def _sleep(self, ex: Exchange, seconds: float, reason: str) -> None:
        if seconds > 0:
            self.clock.sleep(seconds, self.closed)
            if self.closed.is_set():
                raise closed_error(waiting=True)
            self.bus.publish(
                events.Waited(ex.request_id, ex.key, reason, seconds, self.clock.monotonic())
            )

    # ------------------------------------------------------------------------ admission
    def acquire(self, ex: Exchange) -> Permit:
        """Admit one attempt of ``ex`` (wait as needed), or raise a contract error."""
        if self.closed.is_set():
            raise closed_error()
        host = ex.host
        policy = ex.policy
        self._wait_for_pause(ex)
        breaker = host.breaker
        try:
            if breaker is not None:
                breaker.check()  # no point waiting for a permit to be refused
            self._throttle(ex)
            if policy.signals.respect_rate_limit_headers:
                self._take_quota(ex)
            self._take_permit(ex)
            probe = breaker.admit() if breaker is not None else False
        except CircuitBreakerOpen as exc:
            self._refused(ex.request_id, host.key, "breaker", exc.retry_after)
            raise
        now = self.clock.monotonic()
        with host._lock:
            host.in_flight += 1
        ex.attempts += 1
        if ex.attempts == 1 and host.budget is not None:
            host.budget.deposit()
        self.bus.publish(
            events.AttemptStarted(
                ex.request_id,
                host.key,
                ex.attempts,
                probe,
                ex.idempotency_key,
                now,
                ex.request.headers,
            )
        )
        return Permit(self, ex, probe, now)

    def _wait_for_pause(self, ex: Exchange) -> None:
        host = ex.host
        if host.fleet is not None:
            host.fleet.current()  # shared state: a host first seen learns its pause (fleet2)
        for _ in range(_MAX_PAUSE_ROUNDS):
            now = self.clock.monotonic()
            pause = host.paused_for(now)
            if pause <= 0:
                return
            bound, why = self._pause_bound(ex, now)
            if pause > bound:
                self._refused(ex.request_id, host.key, "pause", pause)
                raise made_clean(
                    RateLimitExceeded(
                        f"{host.key} asked callers to wait {pause:.3f} s, longer than {why} allows",
                        retry_after=pause,
                        host=host.key,
                    )
                )
            spread = min(_MAX_SPREAD, pause * _SPREAD_SHARE, bound - pause)
            self._sleep(ex, pause + self.rng.uniform(0.0, max(0.0, spread)), "pause")
        raise made_clean(
            RateLimitExceeded(
                f"{host.key} kept extending its pause",
                retry_after=host.paused_for(now),
                host=host.key,
            )
        )

    def _pause_bound(self, ex: Exchange, now: float) -> tuple[float, str]:
        bound, why = wait_bound(ex.policy)
        remaining = ex.remaining(now)
        if remaining < bound:
            bound, why = remaining, "the deadline"
        return bound, why

    def _throttle(self, ex: Exchange) -> None:
        throttle = ex.host.throttle
        if throttle is None:
            return
        now = self.clock.monotonic()
        if throttle.should_reject(now):
            self._refused(ex.request_id, ex.key, "throttle", None)
            raise made_clean(
                RateLimitExceeded(
                    f"{ex.key} refuses many requests; this one was rejected locally by adaptive "
                    f"throttling (probability {throttle.probability(now):.2f}), nothing was sent",
                    host=ex.key,
                )
            )

    def _take_quota(self, ex: Exchange) -> None:
        host = ex.host
        quota = host.quota
        if quota is None:
            return  # the server has advertised no quota
        news_until = math.inf
        for _ in range(_MAX_PAUSE_ROUNDS):
            now = self.clock.monotonic()
            wait, until_reset = quota.take(now, host.in_flight)
            if wait == 0:
                return
            if until_reset:
                # Nothing left: the host waits for the reset, every caller alike.
                self._pause(ex, wait, "quota", now)
                self._wait_for_pause(ex)
                continue
            # Spent, with answers on their way that will say what remains: wait for the
            # next one, but not for ever (a slow answer must not stall every caller).
            started = time.monotonic()
            news_until = min(news_until, started + _MAX_QUOTA_WAIT)
            budget = min(news_until - started, ex.remaining(now))
            if budget <= 0:
                return
            quota.wait_for_news(budget)
            if self.closed.is_set():
                raise closed_error(waiting=True)
            self.bus.publish(
                events.Waited(ex.request_id, ex.key, "quota", time.monotonic() - started, now)
            )
        raise made_clean(
            RateLimitExceeded(
                f"{host.key}: its advertised quota stayed spent", retry_after=None, host=host.key
            )
        )

    def _take_permit(self, ex: Exchange) -> None:
        limit = ex.policy.rate_limit
        limiter = ex.host.limiter
        if limiter is None or limit is None:
            return
        wait = limiter.try_acquire()
        if wait == 0.0:
            return
        max_wait = math.inf if limit.max_wait is None else limit.max_wait
        budget = min(max_wait, ex.remaining(self.clock.monotonic()))
        waited = 0.0
        while wait > 0.0:
            if waited + wait > budget:
                self._refused(ex.request_id, ex.key, "rate_limit", wait)
                raise made_clean(
                    RateLimitExceeded(
                        f"rate limit of {limit.requests} per {limit.period:g} s for {ex.key} "
                        f"reached; next permit in {wait:.3f} s",
                        retry_after=wait,
                        host=ex.key,
                    )
                )
            self._sleep(ex, wait, "rate_limit")
            waited += wait
            wait = limiter.try_acquire()

    # ------------------------------------------------------------------ what the host said
    def _pause(self, ex: Exchange, seconds: float, source: str, now: float) -> float:
        paused = ex.host.pause_until(now + seconds, now)
        fleet = ex.host.fleet
        if fleet is not None and source != "slow-down":
            fleet.share_pause(seconds)  # shared state: every process pauses (fleet2)
        self.bus.publish(events.HostPaused(ex.key, paused, source, now))
        return paused

    def observe(self, ex: Exchange, outcome: Outcome, sent_at: float, now: float) -> None:
        """Take in what a response says about its host: pauses, quota, slow-down.

        Fills ``outcome.retry_after`` and ``outcome.pause`` for the decision.
        """
        response = outcome.response
        assert response is not None
        host = ex.host
        status = response.status_code
        retry_after = retry_after_of(ex.retry, response)
        if retry_after is not None:
            outcome.retry_after = retry_after
            outcome.pause = self._pause(ex, retry_after, "retry-after", now)
        if ex.policy.signals.respect_rate_limit_headers:
            signal = parse_quota(response.headers, self.clock.time())
            if signal is not None and signal.remaining is not None:
                current = host.quota_state().update(
                    now, signal.remaining, signal.reset_after, host.in_flight, signal.limit, sent_at
                )
                if current and signal.remaining == 0 and signal.reset_after:
                    outcome.pause = max(
                        outcome.pause, self._pause(ex, signal.reset_after, "quota", now)
                    )
                    if status in PAUSE_STATUSES and outcome.retry_after is None:
                        outcome.retry_after = signal.reset_after
        if status == 429 and outcome.pause <= 0:
            slowdown = host.slowdown_for(self.rng)
            seconds = 0.0 if slowdown is None else slowdown.on_throttled(now, sent_at)
            if seconds > 0:
                outcome.pause = self._pause(ex, seconds, "slow-down", now)
        elif status < 400 and host.slowdown is not None:
            host.slowdown.on_success(now, sent_at)

    # --------------------------------------------------------------------- between tries
    def allow_retry(self, ex: Exchange, outcome: Outcome) -> bool:
        """Apply the host's retry budget to a retry after a failure (not after a 429)."""
        budget = ex.host.budget
        if budget is None or outcome.verdict != "failure" or budget.try_spend():
            return True
        self.bus.publish(
            events.RetryDenied(ex.request_id, ex.key, ex.attempts, self.clock.monotonic())
        )
        return False

    def backoff(self, ex: Exchange, seconds: float, outcome: Outcome) -> None:
        """Announce the retry, then wait ``seconds`` (a host pause is waited in acquire)."""
        self.bus.publish(
            events.RetryScheduled(
                ex.request_id,
                ex.key,
                ex.method,
                ex.url,
                ex.attempts,
                outcome.describe(),
                seconds,
                self.clock.monotonic(),
            )
        )
        self._sleep(ex, seconds, "backoff")
