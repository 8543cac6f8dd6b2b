"""Unit tests of the per-host breaker state machine, on a fake clock."""

from __future__ import annotations

import pytest

from requests_connection_manager import CircuitBreakerOpen
from requests_connection_manager._breaker import HostBreaker
from requests_connection_manager.config import BreakerConfig
from tests.fakes import FakeClock

pytestmark = pytest.mark.timeout(10)


def make(
    threshold: int = 3, recovery: float = 10.0, probes: int = 1
) -> tuple[HostBreaker, FakeClock, list[tuple[str, str]]]:
    clock = FakeClock()
    seen: list[tuple[str, str]] = []
    breaker = HostBreaker(
        "http://h:80",
        BreakerConfig(threshold, recovery, probes, failure_rate=None),
        clock,
        on_transition=lambda old, new: seen.append((old, new)),
    )
    return breaker, clock, seen


def fail(breaker: HostBreaker) -> bool:
    return breaker.record_failure(breaker.admit())


def test_opens_after_threshold_consecutive_failures() -> None:
    """The threshold-th consecutive failure opens the breaker and says it tripped."""
    breaker, _, seen = make(threshold=3)
    assert [fail(breaker) for _ in range(3)] == [False, False, True]
    assert breaker.state == "open"
    assert seen == [("closed", "open")]


def test_success_resets_the_consecutive_count() -> None:
    """A success between failures starts the count again."""
    breaker, _, _ = make(threshold=3)
    fail(breaker)
    fail(breaker)
    breaker.record_success(breaker.admit())
    assert breaker.failure_count == 0
    assert not fail(breaker)
    assert breaker.state == "closed"


def test_open_refuses_with_retry_after_until_recovery() -> None:
    """While open, admission raises CircuitBreakerOpen with the time left."""
    breaker, clock, _ = make(threshold=1, recovery=10.0)
    fail(breaker)
    clock.advance(4.0)
    with pytest.raises(CircuitBreakerOpen) as info:
        breaker.admit()
    assert info.value.retry_after == pytest.approx(6.0)
    assert info.value.host == "http://h:80"
    with pytest.raises(CircuitBreakerOpen):
        breaker.check()


def test_half_open_admits_bounded_probes() -> None:
    """After recovery, at most half_open_max_calls probes are in flight at once."""
    breaker, clock, _ = make(threshold=1, recovery=10.0, probes=2)
    fail(breaker)
    clock.advance(10.0)
    assert breaker.admit() is True
    assert breaker.admit() is True
    assert breaker.state == "half-open"
    with pytest.raises(CircuitBreakerOpen) as info:
        breaker.admit()
    assert info.value.retry_after is not None
    assert info.value.retry_after > 0
    assert breaker.probes_in_flight == 2


def test_probe_success_closes() -> None:
    """A successful probe closes the breaker and clears the count."""
    breaker, clock, seen = make(threshold=1, recovery=5.0)
    fail(breaker)
    clock.advance(5.0)
    breaker.record_success(breaker.admit())
    assert breaker.state == "closed"
    assert breaker.failure_count == 0
    assert seen == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]


def test_probe_failure_reopens_for_a_full_recovery_timeout() -> None:
    """A failed probe reopens the breaker, stamped with the fake clock."""
    breaker, clock, _ = make(threshold=1, recovery=5.0)
    fail(breaker)
    clock.advance(5.0)
    assert breaker.record_failure(breaker.admit()) is True
    assert breaker.state == "open"
    clock.advance(4.9)
    with pytest.raises(CircuitBreakerOpen):
        breaker.admit()
    clock.advance(0.1)
    assert breaker.admit() is True


def test_release_frees_a_probe_slot_without_a_verdict() -> None:
    """An attempt with no verdict on the host gives its probe slot back."""
    breaker, clock, _ = make(threshold=1, recovery=1.0)
    fail(breaker)
    clock.advance(1.0)
    probe = breaker.admit()
    breaker.release(probe)
    assert breaker.state == "half-open"
    assert breaker.admit() is True


def test_late_failure_while_open_is_ignored() -> None:
    """A failure reported after the breaker opened neither counts nor re-stamps it."""
    breaker, clock, _ = make(threshold=2, recovery=10.0)
    first, second, third = breaker.admit(), breaker.admit(), breaker.admit()
    breaker.record_failure(first)
    assert breaker.record_failure(second) is True
    clock.advance(3.0)
    assert breaker.record_failure(third) is False
    with pytest.raises(CircuitBreakerOpen) as info:
        breaker.admit()
    assert info.value.retry_after == pytest.approx(7.0)


def test_is_idle_only_when_closed_and_clean() -> None:
    """Only a closed breaker with no count and no probe may be forgotten."""
    breaker, _, _ = make(threshold=3)
    assert breaker.is_idle()
    fail(breaker)
    assert not breaker.is_idle()
