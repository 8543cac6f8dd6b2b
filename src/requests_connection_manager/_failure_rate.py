"""A sliding time window of attempt outcomes, for a failure-ratio circuit breaker.

A streak rule ("open after N consecutive failures") changes meaning with load: at high rate a
blip of well under 1 % failures can make a streak, while at low rate a host failing half its
calls may never produce one. A ratio over a time window does not depend on load. This is the
time-based window of Polly v8 (``FailureRatio`` over ``SamplingDuration`` with a
``MinimumThroughput``) and Resilience4j's ``TIME_BASED`` sliding window: the breaker opens
when, over the last ``window`` seconds, at least ``minimum_calls`` attempts were made and the
share that went bad reaches ``failure_rate``. Below ``minimum_calls`` the ratio never trips
(Resilience4j #1443), so the breaker keeps its consecutive-failure trigger beside it.

What the breaker records here (its decision, restated so the window can be read alone):

- one :meth:`FailureRateWindow.record` per attempt that gave a verdict on the host: a
  failure (connection error, timeout, truncated body, status >= 500) or a success (any
  other response; 4xx, 429 included, says the host is alive). An attempt cut short by the
  caller's own deadline, or never sent, is not recorded at all.
- ``slow=True`` when the attempt took longer than the configured slow-call duration,
  whether it failed or not; only then.

Slow calls have two readings, chosen per :meth:`FailureRateWindow.should_trip` call:

- ``slow_rate=None`` (the default; the *signals* issue's rule): a slow attempt counts as a
  failure for the ratio. An attempt both failed and slow counts once.
- ``slow_rate=x`` (Resilience4j's rule): failures and slow calls have separate thresholds;
  the failure ratio counts failed attempts only, the slow ratio counts slow attempts
  whether they failed or not, and either one reaching its threshold trips.

The window is emptied with :meth:`FailureRateWindow.reset` when the breaker opens (the
outcomes that opened it must not open it again the moment it closes) and when it closes.
Nothing is recorded while it is open or half-open: half-open probes are judged by the
breaker's own probe rule.

Bucket granularity and error bound: see :mod:`._buckets`. With the default 10 buckets the
window spans between 90 % and 100 % of ``window``.

For a fleet (shared state later), :meth:`FailureRateWindow.export` gives the window's
buckets and :meth:`FailureRateWindow.merge` adds counts from elsewhere into the current
bucket.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional

from ._buckets import BucketRing
from ._validate import check_int

__all__ = ["FailureRateWindow", "WindowCounts"]

# Resilience4j's default slow-call-rate threshold is 100 % and failure rate 50 %; Polly's
# failure ratio is 0.1. Callers pass their own: these bounds only reject nonsense.
_RATE_RANGE = "a number in (0, 1]"


@dataclass(frozen=True)
class WindowCounts:
    """Attempt outcomes over a window (or one bucket of it).

    Attributes:
        calls: Attempts recorded.
        failures: Attempts that failed.
        slow: Attempts slower than the slow-call duration, failed or not.
        failed_or_slow: Attempts that failed, were slow, or both (each counted once).

    Raises:
        ValueError: The counts contradict each other (for example more failures than
            calls).
    """

    calls: int
    failures: int
    slow: int
    failed_or_slow: int

    def __post_init__(self) -> None:
        if not (
            0 <= self.failures <= self.failed_or_slow <= self.calls
            and 0 <= self.slow <= self.failed_or_slow <= self.failures + self.slow
        ):
            raise ValueError(
                "WindowCounts needs 0 <= failures, slow <= failed_or_slow <= "
                f"min(calls, failures + slow), got {self!r}"
            )


def _check_rate(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {_RATE_RANGE}, got {type(value).__name__}")
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be {_RATE_RANGE}, got {value!r}")
    return float(value)


class FailureRateWindow:
    """Counts of calls, failures and slow calls over the last ``window`` seconds.

    Thread-safe: every method takes one short lock and does O(``buckets``) work at most.
    Memory is fixed: ``buckets`` rows of four counters.

    Args:
        window: The sampling duration in seconds, > 0 (Polly's default is 30).
        buckets: How many buckets the window is cut into, >= 1. The window's length is
            exact to within one bucket (``window / buckets``).

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument is out of range.
    """

    __slots__ = ("_lock", "_ring")

    def __init__(self, window: float, buckets: int = 10) -> None:
        # Fields: calls, failures, slow, failed_or_slow.
        self._ring = BucketRing(window, buckets, 4)
        self._lock = threading.Lock()

    @property
    def window(self) -> float:
        """The window's length in seconds."""
        return self._ring.window

    @property
    def buckets(self) -> int:
        """The number of buckets."""
        return self._ring.buckets

    def record(self, now: float, failed: bool, slow: bool = False) -> None:
        """Record one attempt's outcome.

        Args:
            now: When the attempt ended, monotonic seconds.
            failed: The attempt failed (by the breaker's definition).
            slow: The attempt took longer than the slow-call duration.
        """
        deltas = (1, int(failed), int(slow), int(failed or slow))
        with self._lock:
            self._ring.add(now, deltas)

    def merge(self, now: float, counts: WindowCounts) -> None:
        """Add counts observed elsewhere (another process) to the bucket of ``now``.

        Args:
            now: The time to file them under, monotonic seconds.
            counts: The counts to add.
        """
        deltas = (counts.calls, counts.failures, counts.slow, counts.failed_or_slow)
        with self._lock:
            self._ring.add(now, deltas)

    def snapshot(self, now: float) -> WindowCounts:
        """Return the counts over the window ending at ``now``."""
        with self._lock:
            calls, failures, slow, failed_or_slow = self._ring.totals(now)
        return WindowCounts(calls, failures, slow, failed_or_slow)

    def export(self, now: float) -> list[WindowCounts]:
        """Return the window's buckets, oldest first, ``buckets`` of them.

        The last one is the bucket of ``now``; a bucket with nothing recorded is all zeros.
        """
        with self._lock:
            rows = self._ring.rows(now)
        return [WindowCounts(*row) for row in rows]

    def reset(self) -> None:
        """Forget every outcome (the breaker opened or closed)."""
        with self._lock:
            self._ring.clear()

    def should_trip(
        self,
        now: float,
        failure_rate: float,
        minimum_calls: int,
        slow_rate: Optional[float] = None,
    ) -> bool:
        """Tell whether the window's outcomes call for opening the breaker.

        Args:
            now: The current time, monotonic seconds.
            failure_rate: The share of bad attempts that trips, in ``(0, 1]``; it trips at
                equality (``1.0`` with ``minimum_calls=n`` means "every one of at least
                n calls failed").
            minimum_calls: Fewer attempts in the window never trip, >= 1.
            slow_rate: None to count slow attempts as failures in ``failure_rate``; or a
                threshold in ``(0, 1]`` for the share of slow attempts, judged apart from
                failures.

        Returns:
            True when at least ``minimum_calls`` attempts are in the window and a ratio
            reaches its threshold.

        Raises:
            TypeError: A threshold has the wrong type.
            ValueError: A threshold is out of range.
        """
        failure_rate = _check_rate("failure_rate", failure_rate)
        check_int("minimum_calls", minimum_calls, 1)
        if slow_rate is not None:
            slow_rate = _check_rate("slow_rate", slow_rate)
        counts = self.snapshot(now)
        if counts.calls < minimum_calls:
            return False
        if slow_rate is None:
            return counts.failed_or_slow / counts.calls >= failure_rate
        return (
            counts.failures / counts.calls >= failure_rate
            or counts.slow / counts.calls >= slow_rate
        )
