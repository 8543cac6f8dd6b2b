"""Adaptive client-side throttling (SRE formula): bookkeeping, feedback and forgetting."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from requests_connection_manager._throttle import AdaptiveThrottle

T0 = 1_000.0


def _formula(requests: int, accepts: int, k: float = 2.0) -> float:
    return max(0.0, (requests - k * accepts) / (requests + 1))


def test_a_healthy_backend_is_never_throttled() -> None:
    """Every attempt accepted: probability 0 and nothing refused."""
    throttle = AdaptiveThrottle(rng=random.Random(1))
    for i in range(1_000):
        now = T0 + i * 0.05
        assert not throttle.should_reject(now)
        throttle.record_outcome(now, accepted=True)
    assert throttle.probability(T0 + 50.0) == 0.0
    assert throttle.counts(T0 + 50.0) == (1_000, 1_000)


def test_an_admitted_attempt_is_one_request_and_one_accept() -> None:
    """should_reject counts the request; record_outcome adds only the accept."""
    throttle = AdaptiveThrottle(rng=random.Random(1))
    assert not throttle.should_reject(T0)
    assert throttle.counts(T0) == (1, 0)
    throttle.record_outcome(T0, accepted=True)
    assert throttle.counts(T0) == (1, 1)
    assert not throttle.should_reject(T0)
    throttle.record_outcome(T0, accepted=False)
    assert throttle.counts(T0) == (2, 1)


def test_probability_is_the_sre_formula() -> None:
    """With accepts = requests / 4 and K = 2, p = (R - 2A) / (R + 1)."""
    throttle = AdaptiveThrottle(k=2.0, rng=random.Random(7))
    for i in range(400):
        throttle.should_reject(T0)
        if i % 4 == 0:
            throttle.record_outcome(T0, accepted=True)
    assert throttle.counts(T0) == (400, 100)
    assert throttle.probability(T0) == pytest.approx(200 / 401)


def test_rejection_frequency_converges_to_the_probability() -> None:
    """Held at accepts = requests / 4, about half the attempts are refused (p -> 1/2)."""
    throttle = AdaptiveThrottle(k=2.0, rng=random.Random(42))
    refused = 0
    draws = 8_000
    for i in range(draws):
        now = T0 + i * 0.01  # 80 s: all in the window
        refused += throttle.should_reject(now)
        if i % 4 == 0:
            throttle.record_outcome(now, accepted=True)
    requests, accepts = throttle.counts(T0 + 80.0)
    assert (requests, accepts) == (draws, draws // 4)
    assert throttle.probability(T0 + 80.0) == pytest.approx(_formula(requests, accepts))
    # The early draws see p near 0 only for the first handful; the average tends to 1/2.
    assert refused / draws == pytest.approx(0.5, abs=0.02)


def _simulate(
    throttle: AdaptiveThrottle, seconds: int, demand: int, capacity: int, start: float
) -> list[int]:
    """Drive ``demand`` attempts per second at a backend accepting ``capacity`` per second.

    Returns the number of attempts that reached the backend, per second.
    """
    sent_per_second = []
    for second in range(seconds):
        sent = accepted = 0
        for i in range(demand):
            now = start + second + i / demand
            if throttle.should_reject(now):
                continue
            sent += 1
            ok = accepted < capacity
            accepted += ok
            throttle.record_outcome(now, accepted=ok)
        sent_per_second.append(sent)
    return sent_per_second


def test_an_overloaded_backend_sees_about_k_times_what_it_accepts() -> None:
    """Demand 100/s against a backend accepting 10/s: about 20/s reach it (K = 2)."""
    throttle = AdaptiveThrottle(k=2.0, rng=random.Random(3))
    sent = _simulate(throttle, seconds=600, demand=100, capacity=10, start=T0)
    steady = sent[-240:]
    assert sum(steady) / len(steady) == pytest.approx(20, rel=0.1)
    assert throttle.probability(T0 + 600) == pytest.approx(0.8, abs=0.02)


def test_local_rejections_feed_back() -> None:
    """Refused attempts are requests too: with no accepts the probability keeps rising."""
    throttle = AdaptiveThrottle(k=2.0, rng=random.Random(5))
    for _ in range(10):
        throttle.should_reject(T0)
        throttle.record_outcome(T0, accepted=True)
    previous = throttle.probability(T0)
    refused = 0
    for _ in range(2_000):
        refused += throttle.should_reject(T0)  # the backend accepts nothing from here on
        p = throttle.probability(T0)
        assert p > previous or p == previous == 0.0
        previous = p
    assert refused > 1_500
    assert throttle.counts(T0) == (2_010, 10)
    assert previous == pytest.approx(_formula(2_010, 10))


def test_a_backend_refusing_everything_drives_the_probability_towards_one() -> None:
    """After a full window of refusals almost every attempt is refused locally."""
    throttle = AdaptiveThrottle(k=2.0, rng=random.Random(11))
    sent = _simulate(throttle, seconds=240, demand=50, capacity=0, start=T0)
    assert throttle.probability(T0 + 240) > 0.99
    assert sum(sent[-120:]) < 0.02 * 50 * 120


def test_the_window_forgets() -> None:
    """A window after the last refusal, the probability is 0 again."""
    throttle = AdaptiveThrottle(k=2.0, window=120.0, buckets=12, rng=random.Random(2))
    assert throttle.window == 120.0
    for _ in range(100):
        throttle.should_reject(T0)
    assert throttle.probability(T0) > 0.9
    assert throttle.probability(T0 + 119.0) > 0.9  # the bucket is still in the window
    assert throttle.probability(T0 + 120.0) == 0.0
    assert throttle.counts(T0 + 120.0) == (0, 0)


def _seconds_to_half_demand(max_probability: float, demand: int) -> int:
    """After a 5-minute outage, seconds until half the demand reaches the backend again."""
    throttle = AdaptiveThrottle(k=2.0, rng=random.Random(9), max_probability=max_probability)
    _simulate(throttle, seconds=300, demand=demand, capacity=0, start=T0)
    sent = _simulate(throttle, seconds=900, demand=demand, capacity=10**6, start=T0 + 300)
    assert sent[-1] == demand
    assert throttle.probability(T0 + 1_200) == 0.0
    return next(second for second, n in enumerate(sent) if n >= demand / 2)


@pytest.mark.parametrize(("demand", "low", "high"), [(20, 300, 370), (100, 500, 580)])
def test_uncapped_recovery_after_an_outage_takes_minutes(demand: int, low: int, high: int) -> None:
    """The book's formula: half the demand gets through only 5.5-9 minutes after recovery."""
    assert low <= _seconds_to_half_demand(1.0, demand) <= high


@pytest.mark.parametrize("demand", [20, 100])
def test_a_capped_probability_recovers_within_two_minutes(demand: int) -> None:
    """max_probability 0.8 (Envoy's default cap): half the demand back within 2 minutes."""
    assert _seconds_to_half_demand(0.8, demand) <= 120


def test_the_cap_bounds_the_probability() -> None:
    """With max_probability, a backend refusing everything still gets 1 - cap of attempts."""
    throttle = AdaptiveThrottle(k=2.0, rng=random.Random(12), max_probability=0.8)
    sent = _simulate(throttle, seconds=240, demand=50, capacity=0, start=T0)
    assert throttle.probability(T0 + 240) == 0.8
    assert sum(sent[-120:]) / (50 * 120) == pytest.approx(0.2, abs=0.02)


def test_k_one_never_refuses_while_nothing_was_refused() -> None:
    """K = 1 is allowed; bad k, window, buckets or cap are refused, naming the parameter."""
    throttle = AdaptiveThrottle(k=1.0, rng=random.Random(4))
    for _ in range(100):
        assert not throttle.should_reject(T0)
        throttle.record_outcome(T0, accepted=True)
    with pytest.raises(ValueError, match="k must be"):
        AdaptiveThrottle(k=0.5)
    with pytest.raises(ValueError, match="window"):
        AdaptiveThrottle(window=0.0)
    with pytest.raises(ValueError, match="buckets"):
        AdaptiveThrottle(buckets=0)
    with pytest.raises(ValueError, match="max_probability"):
        AdaptiveThrottle(max_probability=1.5)
    with pytest.raises(ValueError, match="max_probability"):
        AdaptiveThrottle(max_probability=0.0)


def test_concurrent_attempts_are_all_counted() -> None:
    """Eight threads admitting and recording at once lose no count."""
    throttle = AdaptiveThrottle(rng=random.Random(8))
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for i in range(500):
            now = T0 + i * 0.01
            if not throttle.should_reject(now):
                throttle.record_outcome(now, accepted=True)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert throttle.counts(T0 + 5.0) == (4_000, 4_000)


# -------------------------------------------------------------------- properties
_STEPS = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=20.0, allow_nan=False),  # time since the last step
        st.sampled_from(["accepted", "refused by backend", "no outcome"]),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(
    k=st.floats(min_value=1.0, max_value=5.0),
    cap=st.sampled_from([1.0, 0.9, 0.8, 0.5]),
    steps=_STEPS,
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_probability_is_the_formula_on_the_window_and_below_one(
    k: float, cap: float, steps: list[tuple[float, str]], seed: int
) -> None:
    """After any history p = min(cap, max(0, (R - K A) / (R + 1))), in [0, 1)."""
    throttle = AdaptiveThrottle(
        k=k, window=60.0, buckets=6, rng=random.Random(seed), max_probability=cap
    )
    now = T0
    for gap, outcome in steps:
        now += gap
        before = throttle.probability(now)
        rejected = throttle.should_reject(now)
        after_request = throttle.probability(now)
        assert after_request >= before  # one more request never lowers p
        if not rejected and outcome != "no outcome":
            throttle.record_outcome(now, accepted=outcome == "accepted")
            assert throttle.probability(now) <= after_request  # an accept never raises p
        requests, accepts = throttle.counts(now)
        p = throttle.probability(now)
        assert 0.0 <= p < 1.0
        assert p == min(cap, _formula(requests, accepts, k))
        assert accepts <= requests


@settings(max_examples=200, deadline=None)
@given(
    k=st.floats(min_value=1.0, max_value=5.0),
    gaps=st.lists(st.floats(min_value=0.0, max_value=30.0, allow_nan=False), max_size=80),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_backend_accepting_everything_is_never_throttled(
    k: float, gaps: list[float], seed: int
) -> None:
    """If every admitted attempt is accepted, no attempt is ever refused."""
    throttle = AdaptiveThrottle(k=k, rng=random.Random(seed))
    now = T0
    for gap in gaps:
        now += gap
        assert not throttle.should_reject(now)
        throttle.record_outcome(now, accepted=True)
