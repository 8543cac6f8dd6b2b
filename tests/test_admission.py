"""Admission without sockets: the only place a request waits or is refused.

An :class:`Admission` is driven directly with a fake clock, a bare host table and prepared
requests that never go on the wire; its events are recorded and checked.
"""

from __future__ import annotations

import random
import threading
from typing import Any, Optional

import pytest
import requests
from urllib3.response import HTTPResponse

from requests_connection_manager import CircuitBreakerOpen, ConnectionManagerError
from requests_connection_manager._admission import Admission
from requests_connection_manager._exchange import Exchange, Outcome
from requests_connection_manager._hosts import HostRegistry
from requests_connection_manager._url import target_of
from requests_connection_manager.config import build_policy
from requests_connection_manager.events import (
    AttemptFinished,
    AttemptStarted,
    EventBus,
    HostPaused,
    Refused,
    RetryDenied,
    RetryScheduled,
    Waited,
)
from requests_connection_manager.exceptions import RateLimitExceeded
from tests.fakes import FakeClock

pytestmark = pytest.mark.timeout(10)

URL = "http://127.0.0.1:9/x"


class Setup:
    """An admission, its host table and the events it published."""

    def __init__(self, clock: Optional[FakeClock] = None, **policy: Any) -> None:
        self.clock = clock or FakeClock()
        self.events: list[Any] = []
        bus = EventBus()
        bus.subscribe(self.events.append)
        self.closed = threading.Event()
        self.admission = Admission(self.clock, self.closed, bus, random.Random(3))
        self.hosts = HostRegistry(self.clock)
        self.policy = build_policy(**policy)

    def exchange(self, method: str = "GET") -> Exchange:
        request = requests.Request(method, URL).prepare()
        target = target_of(URL)
        assert target is not None
        host = self.hosts.acquire(target.key, self.policy)
        return Exchange(request, target, self.policy, host, 1, self.clock.monotonic())

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def _response(status: int, headers: Optional[dict[str, str]] = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.raw = HTTPResponse(
        body=b"", headers=headers or {}, status=status, preload_content=False
    )
    response.headers = requests.structures.CaseInsensitiveDict(headers or {})
    return response


def test_a_clean_host_admits_at_once() -> None:
    """No pause, no limit, a closed breaker: a permit, an event, nothing waited."""
    setup = Setup()
    ex = setup.exchange()
    permit = setup.admission.acquire(ex)
    assert (ex.attempts, permit.probe, ex.host.in_flight) == (1, False, 1)
    (started,) = setup.of(AttemptStarted)
    assert (started.attempt, started.headers) == (1, ex.request.headers)
    assert setup.clock.sleeps == []


def test_a_paused_host_is_waited_out_with_a_spread() -> None:
    """A 10 s pause: the attempt waits 10 s plus at most 1 s of jitter, then goes."""
    setup = Setup()
    ex = setup.exchange()
    ex.host.pause_until(setup.clock.monotonic() + 10, setup.clock.monotonic())
    setup.admission.acquire(ex)
    (slept,) = setup.clock.sleeps
    assert 10.0 <= slept <= 11.0
    (waited,) = setup.of(Waited)
    assert (waited.reason, waited.seconds) == ("pause", slept)


def test_a_pause_lengthened_during_the_wait_is_waited_again() -> None:
    """Another caller extends the pause while this one sleeps: it sleeps again."""

    class Extending(FakeClock):
        def __init__(self) -> None:
            super().__init__()
            self.host: Any = None

        def sleep(self, seconds: float, wake: Optional[threading.Event] = None) -> None:
            super().sleep(seconds, wake)
            if len(self.sleeps) == 1:  # a later 429 asks for 20 s more
                self.host.pause_until(self.monotonic() + 20, self.monotonic())

    clock = Extending()
    setup = Setup(clock)
    ex = setup.exchange()
    clock.host = ex.host
    ex.host.pause_until(clock.monotonic() + 5, clock.monotonic())
    setup.admission.acquire(ex)
    assert len(clock.sleeps) == 2
    assert 20.0 <= clock.sleeps[1] <= 21.0


def test_a_pause_longer_than_allowed_is_refused() -> None:
    """Paused for 500 s, retry_after_max 100: RateLimitExceeded with the pause, no wait."""
    setup = Setup(retry_after_max=100)
    ex = setup.exchange()
    ex.host.pause_until(setup.clock.monotonic() + 500, setup.clock.monotonic())
    with pytest.raises(RateLimitExceeded) as info:
        setup.admission.acquire(ex)
    assert info.value.retry_after == 500
    assert [r.reason for r in setup.of(Refused)] == ["pause"]
    assert setup.clock.sleeps == []


def test_a_closed_manager_refuses() -> None:
    """Closed: refused, and a wait in progress ends with the closed error."""
    setup = Setup()
    setup.closed.set()
    with pytest.raises(ConnectionManagerError, match="closed"):
        setup.admission.acquire(setup.exchange())


def test_an_open_breaker_refuses_without_an_attempt() -> None:
    """An open breaker: CircuitBreakerOpen, a Refused event, no attempt."""
    setup = Setup(circuit_breaker_failure_threshold=1)
    ex = setup.exchange()
    breaker = ex.host.breaker
    assert breaker is not None
    assert breaker.record_failure(breaker.admit())
    with pytest.raises(CircuitBreakerOpen):
        setup.admission.acquire(ex)
    assert [r.reason for r in setup.of(Refused)] == ["breaker"]
    assert setup.of(AttemptStarted) == []


def test_the_rate_limiter_waits_or_refuses() -> None:
    """1 per 10 s: the second attempt waits the window out; with max_wait 0 it is refused."""
    setup = Setup(rate_limit_requests=1, rate_limit_period=10)
    setup.admission.acquire(setup.exchange())
    setup.admission.acquire(setup.exchange())
    assert [w.reason for w in setup.of(Waited)] == ["rate_limit"]
    strict = Setup(rate_limit_requests=1, rate_limit_period=10, rate_limit_max_wait=0)
    strict.admission.acquire(strict.exchange())
    with pytest.raises(RateLimitExceeded):
        strict.admission.acquire(strict.exchange())


def test_settling_a_5xx_counts_a_failure_and_can_open_the_breaker() -> None:
    """Two 503s with a threshold of 2: the second opens the breaker (outcome.tripped)."""
    setup = Setup(circuit_breaker_failure_threshold=2)
    outcomes = []
    for _ in range(2):
        ex = setup.exchange()
        permit = setup.admission.acquire(ex)
        outcome = Outcome(_response(503))
        permit.settle(outcome)
        outcomes.append(outcome)
    assert [o.verdict for o in outcomes] == ["failure", "failure"]
    assert [o.tripped for o in outcomes] == [False, True]
    assert [e.verdict for e in setup.of(AttemptFinished)] == ["failure", "failure"]


def test_settling_the_callers_deadline_gives_no_verdict() -> None:
    """An attempt cut by the caller's deadline leaves the breaker as it was."""
    setup = Setup(circuit_breaker_failure_threshold=1)
    ex = setup.exchange()
    permit = setup.admission.acquire(ex)
    outcome = Outcome(error=requests.ReadTimeout("late"), deadline_hit=True)
    permit.settle(outcome)
    assert outcome.verdict == "neutral"
    assert ex.host.breaker is not None
    assert ex.host.breaker.state == "closed"


def test_a_retry_after_pauses_the_host() -> None:
    """A 429 with Retry-After 4: the host is paused 4 s for everyone, and it is published."""
    setup = Setup()
    ex = setup.exchange()
    outcome = Outcome(_response(429, {"Retry-After": "4"}))
    setup.admission.acquire(ex).settle(outcome)
    assert (outcome.retry_after, outcome.pause) == (4.0, 4.0)
    (paused,) = setup.of(HostPaused)
    assert (paused.source, paused.seconds) == ("retry-after", 4.0)


def test_a_spent_quota_pauses_the_host_until_its_reset() -> None:
    """0 remaining, reset in 30 s: the host pauses 30 s; a 429 takes the reset as its wait."""
    setup = Setup()
    ex = setup.exchange()
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"}
    outcome = Outcome(_response(429, headers))
    setup.admission.acquire(ex).settle(outcome)
    assert (outcome.retry_after, outcome.pause) == (30.0, 30.0)
    assert [p.source for p in setup.of(HostPaused)] == ["quota"]


def test_a_quota_with_some_left_is_counted_down() -> None:
    """2 left: two attempts go at once, the third waits for the reset."""
    setup = Setup()
    ex = setup.exchange()
    headers = {"X-RateLimit-Remaining": "2", "X-RateLimit-Reset": "30"}
    setup.admission.acquire(ex).settle(Outcome(_response(200, headers)))
    setup.admission.acquire(setup.exchange())
    setup.admission.acquire(setup.exchange())
    assert setup.clock.sleeps == []
    setup.admission.acquire(setup.exchange())
    (slept,) = setup.clock.sleeps
    assert 30.0 <= slept <= 31.0


def test_a_bare_429_slows_the_host_down() -> None:
    """A 429 with no hint pauses the host (slow-down), within retry_after_max."""
    setup = Setup()
    ex = setup.exchange()
    outcome = Outcome(_response(429))
    setup.admission.acquire(ex).settle(outcome)
    assert 0.0 < outcome.pause <= 0.5
    assert [p.source for p in setup.of(HostPaused)] == ["slow-down"]


def test_the_retry_budget_is_spent_on_failures_only() -> None:
    """An empty budget denies a retry after a 503, not after a 429."""
    setup = Setup(retry_budget=0.0, retry_budget_burst=0)
    ex = setup.exchange()
    failed = Outcome(_response(503))
    failed.verdict = "failure"
    throttled = Outcome(_response(429))
    throttled.verdict = "success"
    assert setup.admission.allow_retry(ex, throttled)
    assert not setup.admission.allow_retry(ex, failed)
    assert len(setup.of(RetryDenied)) == 1


def test_backoff_announces_then_waits() -> None:
    """A retry is published with its outcome and wait, then waited."""
    setup = Setup()
    ex = setup.exchange()
    setup.admission.backoff(ex, 0.25, Outcome(_response(503)))
    (scheduled,) = setup.of(RetryScheduled)
    assert (scheduled.outcome, scheduled.wait) == ("status 503", 0.25)
    assert setup.clock.sleeps == [0.25]
    assert [w.reason for w in setup.of(Waited)] == ["backoff"]


def test_closing_during_a_wait_ends_it_with_the_closed_error() -> None:
    """close() while a caller sleeps on a pause: it wakes with 'closed while waiting'."""

    class Closing(FakeClock):
        def __init__(self, closed: threading.Event) -> None:
            super().__init__()
            self.closed = closed

        def sleep(self, seconds: float, wake: Optional[threading.Event] = None) -> None:
            self.closed.set()

    setup = Setup()
    setup.admission.clock = Closing(setup.closed)
    ex = setup.exchange()
    ex.host.pause_until(setup.clock.monotonic() + 5, setup.clock.monotonic())
    with pytest.raises(ConnectionManagerError, match="closed while a call was waiting"):
        setup.admission.acquire(ex)


def test_an_abandoned_permit_gives_everything_back() -> None:
    """An attempt ended by a programming error releases its in-flight count and probe."""
    setup = Setup()
    ex = setup.exchange()
    setup.admission.acquire(ex).abandon()
    assert ex.host.in_flight == 0
