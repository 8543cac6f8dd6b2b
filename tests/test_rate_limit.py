"""The client-side rate limiter in the pipeline: per host, blocking, bounded, every attempt."""

from __future__ import annotations

import pytest

from requests_connection_manager import ConnectionManager, RateLimitExceeded
from tests.fakes import FakeClock
from tests.servers import AppServer

pytestmark = pytest.mark.timeout(30)


def test_rate_limiting_is_off_by_default(app: AppServer, clock: FakeClock) -> None:
    """Without rate_limit_requests nothing is throttled (1.0.0 capped everyone at 100/min)."""
    app.ok("/x")
    with ConnectionManager(clock=clock) as cm:
        for _ in range(150):
            cm.get(app.url("/x"))
        stats = cm.get_stats()["hosts"]
    assert clock.sleeps == []
    assert next(iter(stats.values()))["throttled"] == 0


def test_blocking_wait_for_the_next_window(app: AppServer, clock: FakeClock) -> None:
    """Over the limit, a call waits for the window to end, then proceeds."""
    app.ok("/x")
    with ConnectionManager(rate_limit_requests=2, rate_limit_period=10, clock=clock) as cm:
        for _ in range(3):
            assert cm.get(app.url("/x")).status_code == 200
        host = next(iter(cm.get_stats()["hosts"].values()))
    assert clock.sleeps == [pytest.approx(10.0)]
    assert host["throttled"] == 1
    assert host["throttle_wait_seconds"] == pytest.approx(10.0)
    assert app.hits("/x") == 3


def test_fail_fast_with_zero_max_wait(app: AppServer, clock: FakeClock) -> None:
    """rate_limit_max_wait=0 raises RateLimitExceeded with the time to the next permit."""
    app.ok("/x")
    with ConnectionManager(
        rate_limit_requests=1, rate_limit_period=30, rate_limit_max_wait=0, clock=clock
    ) as cm:
        cm.get(app.url("/x"))
        clock.advance(5)
        with pytest.raises(RateLimitExceeded) as info:
            cm.get(app.url("/x"))
    assert info.value.retry_after == pytest.approx(25.0)
    assert info.value.host is not None
    assert app.hits("/x") == 1
    assert clock.sleeps == []


def test_max_wait_bounds_the_wait(app: AppServer, clock: FakeClock) -> None:
    """A wait longer than rate_limit_max_wait is refused; a shorter one is waited."""
    app.ok("/x")
    with ConnectionManager(
        rate_limit_requests=1, rate_limit_period=10, rate_limit_max_wait=4, clock=clock
    ) as cm:
        cm.get(app.url("/x"))
        with pytest.raises(RateLimitExceeded):
            cm.get(app.url("/x"))
        clock.advance(7)
        assert cm.get(app.url("/x")).status_code == 200
    assert clock.sleeps == [pytest.approx(3.0)]


def test_total_timeout_bounds_the_wait(app: AppServer, clock: FakeClock) -> None:
    """With max_wait None the wait is still bounded by total_timeout."""
    app.ok("/x")
    with ConnectionManager(
        rate_limit_requests=1, rate_limit_period=60, total_timeout=5, clock=clock
    ) as cm:
        cm.get(app.url("/x"))
        with pytest.raises(RateLimitExceeded):
            cm.get(app.url("/x"))
    assert clock.sleeps == []


def test_each_host_has_its_own_limit(clock: FakeClock) -> None:
    """Two hosts (two ports) each get the full limit."""
    with AppServer() as a, AppServer() as b:
        a.ok("/x")
        b.ok("/x")
        with ConnectionManager(
            rate_limit_requests=2, rate_limit_period=60, rate_limit_max_wait=0, clock=clock
        ) as cm:
            for _ in range(2):
                cm.get(a.url("/x"))
                cm.get(b.url("/x"))
            with pytest.raises(RateLimitExceeded):
                cm.get(a.url("/x"))
            with pytest.raises(RateLimitExceeded):
                cm.get(b.url("/x"))
    assert (a.hits("/x"), b.hits("/x")) == (2, 2)


def test_retries_take_permits(app: AppServer, clock: FakeClock) -> None:
    """Every attempt, retries included, takes one permit."""
    app.fail_then_ok("/x", failures=2, status=503)
    with ConnectionManager(
        rate_limit_requests=3,
        rate_limit_period=60,
        rate_limit_max_wait=0,
        backoff_factor=0,
        clock=clock,
    ) as cm:
        assert cm.get(app.url("/x")).status_code == 200  # three attempts, three permits
        with pytest.raises(RateLimitExceeded):
            cm.get(app.url("/x"))
    assert app.hits("/x") == 3


def test_sliding_window_strategy_limits_and_fails_fast(app: AppServer) -> None:
    """The limits moving window admits N per period, then refuses with a retry_after."""
    app.ok("/x")
    with ConnectionManager(
        rate_limit_requests=3,
        rate_limit_period=60,
        rate_limit_max_wait=0,
        rate_limit_strategy="sliding-window",
    ) as cm:
        for _ in range(3):
            cm.get(app.url("/x"))
        with pytest.raises(RateLimitExceeded) as info:
            cm.get(app.url("/x"))
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 60
    assert app.hits("/x") == 3
