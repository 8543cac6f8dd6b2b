"""Unit tests of the per-host limiters."""

from __future__ import annotations

import pytest

from requests_connection_manager._limiter import FixedWindowLimiter, LimiterFactory
from requests_connection_manager.config import RateLimitConfig
from tests.fakes import FakeClock

pytestmark = pytest.mark.timeout(10)


def test_fixed_window_admits_calls_then_reports_the_wait() -> None:
    """N permits per window; the next caller learns how long the window has left."""
    clock = FakeClock()
    limiter = FixedWindowLimiter(3, 10.0, clock.monotonic)
    assert [limiter.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.advance(4.0)
    assert limiter.try_acquire() == pytest.approx(6.0)
    clock.advance(6.0)
    assert limiter.try_acquire() == 0.0


def test_fixed_window_never_exceeds_the_limit_within_a_window() -> None:
    """Across many tries in one window exactly N are admitted."""
    clock = FakeClock()
    limiter = FixedWindowLimiter(5, 1.0, clock.monotonic)
    admitted = sum(1 for _ in range(50) if limiter.try_acquire() == 0.0)
    assert admitted == 5


def test_factory_builds_each_strategy() -> None:
    """The factory builds a fixed window or a limits moving window, per the settings."""
    clock = FakeClock()
    factory = LimiterFactory(clock.monotonic)
    fixed = factory.build(RateLimitConfig(2, 60.0, None, "fixed-window"), "k")
    sliding = factory.build(RateLimitConfig(2, 60.0, None, "sliding-window"), "k")
    assert isinstance(fixed, FixedWindowLimiter)
    assert [sliding.try_acquire() for _ in range(2)] == [0.0, 0.0]
    wait = sliding.try_acquire()
    assert 59.0 < wait <= 60.0


def test_sliding_window_keys_are_independent() -> None:
    """Two host keys in one moving-window storage do not share permits."""
    factory = LimiterFactory(FakeClock().monotonic)
    settings = RateLimitConfig(1, 60.0, None, "sliding-window")
    a = factory.build(settings, "http://a:80")
    b = factory.build(settings, "http://b:80")
    assert a.try_acquire() == 0.0
    assert b.try_acquire() == 0.0
    assert a.try_acquire() > 0
