"""The failure-ratio window: what it counts, for how long, and when it says to trip."""

from __future__ import annotations

import threading
from typing import Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from requests_connection_manager._buckets import BucketRing
from requests_connection_manager._failure_rate import FailureRateWindow, WindowCounts

T0 = 1_000.0  # an arbitrary monotonic origin


# ------------------------------------------------------------------------- the ring
def test_ring_counts_the_last_window_only() -> None:
    """Events leave the total once their bucket is ``buckets`` buckets old."""
    ring = BucketRing(window=10.0, buckets=10, fields=1)
    ring.add(T0 + 0.5, (1,))
    ring.add(T0 + 5.5, (1,))
    assert ring.totals(T0 + 9.9) == [2]
    assert ring.totals(T0 + 10.0) == [1]  # the bucket [T0, T0+1) has left the window
    assert ring.totals(T0 + 14.9) == [1]
    assert ring.totals(T0 + 15.0) == [0]


def test_ring_error_bound_is_one_bucket() -> None:
    """An event is counted while younger than window - width, never once window old."""
    ring = BucketRing(window=10.0, buckets=5, fields=1)  # width 2 s
    ring.add(T0 + 1.0, (1,))  # bucket [T0, T0+2)
    assert ring.totals(T0 + 1.0 + 7.99) == [1]  # younger than 10 - 2: always counted
    assert ring.totals(T0 + 9.99) == [1]  # 8.99 s old, same bucket alignment: counted
    assert ring.totals(T0 + 10.0) == [0]  # 9 s old: its bucket just left the window
    assert ring.totals(T0 + 11.0) == [0]  # 10 s old: never counted


def test_ring_drops_an_event_older_than_its_slot() -> None:
    """A late report for a bucket already reused by a newer one is dropped, not mixed in."""
    ring = BucketRing(window=4.0, buckets=4, fields=1)
    ring.add(T0 + 4.5, (1,))  # slot of bucket T0+4 == slot of bucket T0
    ring.add(T0 + 0.5, (1,))  # late, and out of the window
    assert ring.totals(T0 + 4.5) == [1]
    assert ring.rows(T0 + 4.5) == [(0,), (0,), (0,), (1,)]


def test_ring_accepts_a_late_event_still_in_the_window() -> None:
    """A report stamped slightly in the past (a slow thread) still lands in its bucket."""
    ring = BucketRing(window=4.0, buckets=4, fields=1)
    ring.add(T0 + 3.5, (1,))
    ring.add(T0 + 1.5, (1,))
    assert ring.totals(T0 + 3.5) == [2]
    assert ring.rows(T0 + 3.5) == [(0,), (1,), (0,), (1,)]


def test_ring_rejects_bad_arguments() -> None:
    """Window, bucket and field counts are validated, naming the parameter."""
    with pytest.raises(ValueError, match="window"):
        BucketRing(window=0.0, buckets=1, fields=1)
    with pytest.raises(ValueError, match="window"):
        BucketRing(window=float("inf"), buckets=1, fields=1)
    with pytest.raises(ValueError, match="buckets"):
        BucketRing(window=1.0, buckets=0, fields=1)
    with pytest.raises(TypeError, match="buckets"):
        BucketRing(window=1.0, buckets=2.5, fields=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the window
def test_snapshot_counts_calls_failures_and_slow_calls() -> None:
    """Each attempt is a call; failures, slow calls and their union are counted apart."""
    window = FailureRateWindow(window=30.0)
    window.record(T0, failed=False)
    window.record(T0, failed=True)
    window.record(T0, failed=False, slow=True)
    window.record(T0, failed=True, slow=True)
    assert window.snapshot(T0) == WindowCounts(calls=4, failures=2, slow=2, failed_or_slow=3)


def test_window_forgets_old_outcomes() -> None:
    """Failures older than the window no longer count toward the ratio."""
    window = FailureRateWindow(window=30.0, buckets=10)
    assert (window.window, window.buckets) == (30.0, 10)
    for _ in range(10):
        window.record(T0, failed=True)
    assert window.should_trip(T0 + 26.9, failure_rate=0.5, minimum_calls=10)
    assert window.snapshot(T0 + 30.0).calls == 0
    assert not window.should_trip(T0 + 30.0, failure_rate=0.5, minimum_calls=10)


def test_no_trip_below_minimum_calls() -> None:
    """Every call failing is not enough while there are fewer than ``minimum_calls``."""
    window = FailureRateWindow(window=30.0)
    for _ in range(9):
        window.record(T0, failed=True)
    assert not window.should_trip(T0, failure_rate=0.1, minimum_calls=10)
    window.record(T0, failed=False)
    assert window.should_trip(T0, failure_rate=0.1, minimum_calls=10)


def test_trips_at_exactly_the_threshold() -> None:
    """A ratio equal to the threshold trips (Polly and Resilience4j compare with >=)."""
    window = FailureRateWindow(window=30.0)
    for i in range(10):
        window.record(T0, failed=i < 3)
    assert window.should_trip(T0, failure_rate=0.3, minimum_calls=10)
    assert not window.should_trip(T0, failure_rate=0.31, minimum_calls=10)


def test_ratio_one_with_minimum_is_a_consecutive_rule() -> None:
    """failure_rate 1.0 trips only when every call in the window failed."""
    window = FailureRateWindow(window=30.0)
    for _ in range(5):
        window.record(T0, failed=True)
    assert window.should_trip(T0, failure_rate=1.0, minimum_calls=5)
    window.record(T0, failed=False)
    assert not window.should_trip(T0, failure_rate=1.0, minimum_calls=5)


def test_slow_calls_count_as_failures_by_default() -> None:
    """With slow_rate None, slow successes add to the failure ratio; a slow failure once."""
    window = FailureRateWindow(window=30.0)
    window.record(T0, failed=False, slow=True)
    window.record(T0, failed=True, slow=True)
    window.record(T0, failed=False)
    window.record(T0, failed=False)
    assert window.should_trip(T0, failure_rate=0.5, minimum_calls=4)  # 2 of 4
    assert not window.should_trip(T0, failure_rate=0.75, minimum_calls=4)


def test_separate_slow_rate_judges_slow_calls_apart() -> None:
    """With a slow_rate, the failure ratio ignores slowness and slow calls have their own."""
    window = FailureRateWindow(window=30.0)
    window.record(T0, failed=False, slow=True)
    window.record(T0, failed=True, slow=True)
    window.record(T0, failed=False, slow=True)
    window.record(T0, failed=False)
    # failures 1/4, slow 3/4
    assert not window.should_trip(T0, failure_rate=0.5, minimum_calls=4, slow_rate=1.0)
    assert window.should_trip(T0, failure_rate=0.5, minimum_calls=4, slow_rate=0.75)
    assert window.should_trip(T0, failure_rate=0.25, minimum_calls=4, slow_rate=1.0)


def test_reset_empties_the_window() -> None:
    """After reset (the breaker opened or closed) nothing recorded before counts."""
    window = FailureRateWindow(window=30.0)
    for _ in range(20):
        window.record(T0, failed=True)
    window.reset()
    assert window.snapshot(T0) == WindowCounts(0, 0, 0, 0)
    window.record(T0 + 1, failed=True)
    assert window.snapshot(T0 + 1) == WindowCounts(1, 1, 0, 1)


def test_export_lists_buckets_oldest_first() -> None:
    """The export holds one WindowCounts per bucket, the bucket of ``now`` last."""
    window = FailureRateWindow(window=4.0, buckets=4)
    window.record(T0 + 0.5, failed=True)
    window.record(T0 + 2.5, failed=False, slow=True)
    assert window.export(T0 + 3.0) == [
        WindowCounts(1, 1, 0, 1),
        WindowCounts(0, 0, 0, 0),
        WindowCounts(1, 0, 1, 1),
        WindowCounts(0, 0, 0, 0),
    ]


def test_merge_adds_counts_from_elsewhere() -> None:
    """Counts merged from another process join the current bucket and the ratio."""
    local = FailureRateWindow(window=30.0)
    local.record(T0, failed=False)
    local.merge(T0, WindowCounts(calls=9, failures=6, slow=0, failed_or_slow=6))
    assert local.snapshot(T0) == WindowCounts(10, 6, 0, 6)
    assert local.should_trip(T0, failure_rate=0.6, minimum_calls=10)


def test_export_then_merge_round_trips() -> None:
    """Merging one window's export into an empty one gives the same snapshot."""
    source = FailureRateWindow(window=10.0, buckets=5)
    for i in range(12):
        source.record(T0 + i * 0.7, failed=i % 3 == 0, slow=i % 4 == 0)
    now = T0 + 8.0
    target = FailureRateWindow(window=10.0, buckets=5)
    for counts in source.export(now):
        target.merge(now, counts)
    assert target.snapshot(now) == source.snapshot(now)


def test_window_counts_must_be_consistent() -> None:
    """Counts that contradict each other are refused."""
    with pytest.raises(ValueError, match="WindowCounts"):
        WindowCounts(calls=1, failures=2, slow=0, failed_or_slow=2)
    with pytest.raises(ValueError, match="WindowCounts"):
        WindowCounts(calls=3, failures=1, slow=1, failed_or_slow=3)
    with pytest.raises(ValueError, match="WindowCounts"):
        WindowCounts(calls=3, failures=-1, slow=0, failed_or_slow=0)


def test_thresholds_are_validated() -> None:
    """Rates outside (0, 1] and minimum_calls below 1 are refused, naming the parameter."""
    window = FailureRateWindow(window=30.0)
    with pytest.raises(ValueError, match="failure_rate"):
        window.should_trip(T0, failure_rate=0.0, minimum_calls=1)
    with pytest.raises(ValueError, match="failure_rate"):
        window.should_trip(T0, failure_rate=1.5, minimum_calls=1)
    with pytest.raises(TypeError, match="failure_rate"):
        window.should_trip(T0, failure_rate=True, minimum_calls=1)
    with pytest.raises(ValueError, match="minimum_calls"):
        window.should_trip(T0, failure_rate=0.5, minimum_calls=0)
    with pytest.raises(ValueError, match="slow_rate"):
        window.should_trip(T0, failure_rate=0.5, minimum_calls=1, slow_rate=0.0)
    with pytest.raises(ValueError, match="window"):
        FailureRateWindow(window=-1.0)


def test_concurrent_records_are_all_counted() -> None:
    """Eight threads recording at once lose no outcome."""
    window = FailureRateWindow(window=30.0)
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()
        for i in range(1_000):
            window.record(T0 + i * 0.001, failed=(i + n) % 2 == 0)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert window.snapshot(T0 + 1.0) == WindowCounts(8_000, 4_000, 0, 4_000)


# -------------------------------------------------------------------- properties
_OUTCOMES = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=3.0, allow_nan=False),  # gap since the last event
        st.booleans(),  # failed
        st.booleans(),  # slow
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    window_s=st.sampled_from([1.0, 5.0, 10.0, 30.0]),
    buckets=st.integers(min_value=1, max_value=20),
    events=_OUTCOMES,
    wait=st.floats(min_value=0.0, max_value=40.0, allow_nan=False),
)
def test_snapshot_stays_within_the_error_bound(
    window_s: float, buckets: int, events: list[tuple[float, bool, bool]], wait: float
) -> None:
    """Every event younger than window - width counts, none window old; counts agree."""
    window = FailureRateWindow(window=window_s, buckets=buckets)
    width = window_s / buckets
    now = T0
    stamped = []
    for gap, failed, slow in events:
        now += gap
        window.record(now, failed=failed, slow=slow)
        stamped.append((now, failed, slow))
    now += wait
    counts = window.snapshot(now)
    eps = 1e-9 * now
    surely_in = [e for e in stamped if now - e[0] < window_s - width - eps]
    maybe_in = [e for e in stamped if now - e[0] < window_s + eps]
    assert len(surely_in) <= counts.calls <= len(maybe_in)
    assert sum(f for _, f, _ in surely_in) <= counts.failures <= sum(f for _, f, _ in maybe_in)
    assert sum(s for _, _, s in surely_in) <= counts.slow <= sum(s for _, _, s in maybe_in)
    assert counts.failures <= counts.failed_or_slow <= counts.calls
    assert counts.slow <= counts.failed_or_slow <= counts.failures + counts.slow
    exported = window.export(now)
    assert len(exported) == buckets
    assert sum(c.calls for c in exported) == counts.calls
    assert sum(c.failed_or_slow for c in exported) == counts.failed_or_slow


@settings(max_examples=300, deadline=None)
@given(
    events=_OUTCOMES,
    failure_rate=st.floats(min_value=0.01, max_value=1.0),
    minimum_calls=st.integers(min_value=1, max_value=30),
    slow_rate=st.none() | st.floats(min_value=0.01, max_value=1.0),
)
def test_should_trip_is_the_threshold_rule_on_the_snapshot(
    events: list[tuple[float, bool, bool]],
    failure_rate: float,
    minimum_calls: int,
    slow_rate: Optional[float],
) -> None:
    """should_trip is exactly: enough calls, and a ratio at or above its threshold."""
    window = FailureRateWindow(window=30.0, buckets=6)
    now = T0
    for gap, failed, slow in events:
        now += gap
        window.record(now, failed=failed, slow=slow)
    counts = window.snapshot(now)
    if counts.calls < minimum_calls:
        expected = False
    elif slow_rate is None:
        expected = counts.failed_or_slow / counts.calls >= failure_rate
    else:
        expected = (
            counts.failures / counts.calls >= failure_rate
            or counts.slow / counts.calls >= slow_rate
        )
    assert window.should_trip(now, failure_rate, minimum_calls, slow_rate) is expected
