"""The shared pause for hint-less 429s: one growth per pause, doubling to a cap, decay."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from requests_connection_manager._slowdown import HostSlowdown

T0 = 1_000.0


def _steady(**kwargs: float) -> HostSlowdown:
    """A slowdown without jitter, so pauses can be asserted exactly."""
    return HostSlowdown(jitter=0.0, rng=random.Random(0), **kwargs)


def test_the_first_hintless_429_pauses_for_the_initial_time() -> None:
    """Level 0 -> 1: a pause of ``initial`` seconds for every caller."""
    slowdown = _steady(initial=0.5)
    assert slowdown.level == 0
    assert slowdown.base_pause(0) == 0.0
    assert slowdown.remaining(T0) == 0.0
    assert slowdown.on_throttled(T0, sent_at=T0 - 0.1) == 0.5
    assert slowdown.level == 1
    assert slowdown.paused_until == T0 + 0.5
    assert slowdown.remaining(T0 + 0.2) == pytest.approx(0.3)


def test_eight_concurrent_429s_grow_the_pause_once() -> None:
    """Attempts sent before the pause began all get 429: one growth, the rest share it."""
    slowdown = _steady(initial=0.5)
    answers = [slowdown.on_throttled(T0 + 0.01 * i, sent_at=T0 - 0.2) for i in range(8)]
    assert slowdown.level == 1
    assert answers[0] == 0.5
    assert answers[1:] == pytest.approx([0.5 - 0.01 * i for i in range(1, 8)])
    # The next round, all sent after that pause ended, grows it once more: to level 2.
    end = slowdown.paused_until
    answers = [slowdown.on_throttled(end + 0.1 + 0.01 * i, sent_at=end) for i in range(8)]
    assert slowdown.level == 2
    assert answers[0] == 1.0
    assert slowdown.paused_until == pytest.approx(end + 1.1)


def test_eight_threads_reporting_at_once_grow_it_once() -> None:
    """Under real threads, exactly one of eight simultaneous 429s starts the pause."""
    slowdown = _steady(initial=0.5)
    start = threading.Barrier(8)
    answers: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        pause = slowdown.on_throttled(T0, sent_at=T0 - 0.1)
        with lock:
            answers.append(pause)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert slowdown.level == 1
    assert answers == [0.5] * 8  # one started it; the others were told what remains


def test_a_429_sent_during_the_pause_does_not_grow_it() -> None:
    """A caller that did not wait learns the remaining pause; the level stays."""
    slowdown = _steady(initial=1.0)
    slowdown.on_throttled(T0, sent_at=T0)
    assert slowdown.on_throttled(T0 + 0.6, sent_at=T0 + 0.5) == pytest.approx(0.4)
    assert slowdown.level == 1


def test_a_late_429_after_the_pause_ended_changes_nothing() -> None:
    """A 429 for an attempt sent before the pause, arriving after it, pauses no one."""
    slowdown = _steady(initial=0.5)
    slowdown.on_throttled(T0, sent_at=T0)
    assert slowdown.on_throttled(T0 + 2.0, sent_at=T0 - 1.0) == 0.0
    assert slowdown.level == 1


def test_successive_unhelpful_pauses_double_up_to_the_cap() -> None:
    """With no success between them, each fresh 429 doubles the pause until the cap."""
    slowdown = _steady(initial=0.5, maximum=30.0)
    now, pauses = T0, []
    for _ in range(9):
        pause = slowdown.on_throttled(now, sent_at=now)
        pauses.append(pause)
        now += pause
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert slowdown.level == slowdown.max_level == 7


def test_a_pause_that_helped_is_repeated_not_grown() -> None:
    """A success after the pause, then 429 again: the quota was used up, same level."""
    slowdown = _steady(initial=0.5)
    slowdown.on_throttled(T0, sent_at=T0)
    slowdown.on_throttled(T0 + 0.5, sent_at=T0 + 0.5)  # did not help: level 2, 1 s
    slowdown.on_success(T0 + 1.6, sent_at=T0 + 1.5)
    assert slowdown.on_throttled(T0 + 1.8, sent_at=T0 + 1.7) == 1.0
    assert slowdown.level == 2


def test_successes_decay_the_level_one_step_per_cooldown() -> None:
    """A recovered host steps down one level per ``cooldown`` s of successes, back to 0."""
    slowdown = _steady(initial=0.5, cooldown=5.0)
    now = T0
    for _ in range(4):
        now += slowdown.on_throttled(now, sent_at=now)
    assert slowdown.level == 4
    quiet_from = slowdown.paused_until
    levels = []
    for tenth in range(1, 221):
        t = quiet_from + tenth / 10
        slowdown.on_success(t, sent_at=t - 0.05)
        levels.append(slowdown.level)
    assert levels[48] == 4  # 4.9 s of successes
    assert levels[49] == 3  # 5.0 s
    assert levels[99] == 2
    assert levels[149] == 1
    assert levels[199] == 0
    assert levels[-1] == 0
    # Back at level 0, a new isolated 429 costs only the initial pause.
    t = quiet_from + 30.0
    assert slowdown.on_throttled(t, sent_at=t) == 0.5


def test_one_success_after_a_long_quiet_spell_takes_several_steps() -> None:
    """Decay is by time: one success 12 s after the pause at cooldown 5 takes two steps."""
    slowdown = _steady(initial=0.5, cooldown=5.0)
    now = T0
    for _ in range(3):
        now += slowdown.on_throttled(now, sent_at=now)
    slowdown.on_success(slowdown.paused_until + 12.0, sent_at=slowdown.paused_until + 11.9)
    assert slowdown.level == 1


def test_successes_sent_before_the_pause_ended_prove_nothing() -> None:
    """A success for an attempt sent during the pause neither decays nor marks it helpful."""
    slowdown = _steady(initial=0.5, cooldown=1.0)
    slowdown.on_throttled(T0, sent_at=T0)
    slowdown.on_success(T0 + 10.0, sent_at=T0 + 0.1)
    assert slowdown.level == 1
    # ... so a fresh 429 after the pause still grows it.
    slowdown.on_throttled(T0 + 10.0, sent_at=T0 + 9.0)
    assert slowdown.level == 2


def test_success_with_no_pause_is_harmless() -> None:
    """Successes at level 0 leave it at 0; sent_at defaults to now."""
    slowdown = _steady()
    slowdown.on_success(T0)
    assert slowdown.level == 0
    assert slowdown.on_throttled(T0 + 1.0, sent_at=T0 + 1.0) == slowdown.initial


def test_jitter_takes_off_up_to_its_share() -> None:
    """With jitter 0.5 every pause lies in (base / 2, base]."""
    slowdown = HostSlowdown(initial=1.0, maximum=1.0, jitter=0.5, rng=random.Random(3))
    now = T0
    pauses = []
    for _ in range(200):
        pause = slowdown.on_throttled(now, sent_at=now)
        pauses.append(pause)
        now += pause
    assert all(0.5 < pause <= 1.0 for pause in pauses)
    assert max(pauses) - min(pauses) > 0.4  # spread out, not one value


def _fixed_window_server(quota: int, window: int, seconds: int, seed: int) -> tuple[int, int, int]:
    """Demand of 100 attempts/s against ``quota`` per fixed ``window`` s, bare 429s beyond.

    Every attempt is answered at once. Returns (successes, 429s, highest level).
    """
    slowdown = HostSlowdown(rng=random.Random(seed))
    served: dict[int, int] = {}
    successes = throttled = highest = 0
    for tick in range(seconds * 100):
        now = T0 + tick / 100
        if slowdown.remaining(now) > 0:
            continue
        current = int(now // window)
        if served.get(current, 0) < quota:
            served[current] = served.get(current, 0) + 1
            successes += 1
            slowdown.on_success(now, sent_at=now)
        else:
            throttled += 1
            slowdown.on_throttled(now, sent_at=now)
        highest = max(highest, slowdown.level)
    return successes, throttled, highest


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_against_a_per_second_limit_the_level_settles_low(seed: int) -> None:
    """10/s in fixed windows: about 2/3 of the quota, one 429 per 1.5 s, level <= 3."""
    successes, throttled, highest = _fixed_window_server(10, 1, seconds=60, seed=seed)
    assert successes >= 0.55 * 10 * 60  # measured 62-71 %
    assert throttled <= 60  # measured about 40; without a shared pause: 90 per second
    assert highest <= 3  # pauses of at most 2 s, never the 30 s cap


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_against_a_per_minute_limit_the_whole_quota_gets_through(seed: int) -> None:
    """60 per fixed minute: every window's quota is used, with a few 429s a minute."""
    successes, throttled, _ = _fixed_window_server(60, 60, seconds=300, seed=seed)
    windows = len({int((T0 + t) // 60) for t in range(300)})
    assert successes == 60 * windows
    assert throttled <= 25  # measured 18-20 in 5 minutes


def test_arguments_are_validated() -> None:
    """Out-of-range parameters are refused, naming the parameter."""
    with pytest.raises(ValueError, match="initial"):
        HostSlowdown(initial=0.0)
    with pytest.raises(ValueError, match="maximum"):
        HostSlowdown(initial=2.0, maximum=1.0)
    with pytest.raises(ValueError, match="multiplier"):
        HostSlowdown(multiplier=1.0)
    with pytest.raises(ValueError, match="jitter"):
        HostSlowdown(jitter=1.5)
    with pytest.raises(ValueError, match="jitter"):
        HostSlowdown(jitter=-0.1)
    with pytest.raises(ValueError, match="cooldown"):
        HostSlowdown(cooldown=0.0)
    with pytest.raises(TypeError, match="initial"):
        HostSlowdown(initial="1")  # type: ignore[arg-type]


# -------------------------------------------------------------------- properties
_EVENTS = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=20.0, allow_nan=False),  # time since last event
        st.booleans(),  # throttled (429) or success
        st.floats(min_value=0.0, max_value=5.0, allow_nan=False),  # how long ago it was sent
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(
    initial=st.floats(min_value=0.01, max_value=5.0),
    spread=st.floats(min_value=1.0, max_value=100.0),
    multiplier=st.floats(min_value=1.1, max_value=4.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    cooldown=st.floats(min_value=0.1, max_value=30.0),
    events=_EVENTS,
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_pauses_are_never_negative_nor_above_the_cap(
    initial: float,
    spread: float,
    multiplier: float,
    jitter: float,
    cooldown: float,
    events: list[tuple[float, bool, float]],
    seed: int,
) -> None:
    """Any history: 0 <= pause <= maximum, level in range, stale 429s change nothing."""
    maximum = initial * spread
    slowdown = HostSlowdown(
        initial=initial,
        maximum=maximum,
        multiplier=multiplier,
        jitter=jitter,
        cooldown=cooldown,
        rng=random.Random(seed),
    )
    now = T0
    for gap, throttled, age in events:
        now += gap
        sent_at = now - age
        level, until = slowdown.level, slowdown.paused_until
        if throttled:
            pause = slowdown.on_throttled(now, sent_at=sent_at)
            assert 0.0 <= pause <= maximum
            assert pause == pytest.approx(slowdown.remaining(now))
            if sent_at < until:  # already accounted for
                assert (slowdown.level, slowdown.paused_until) == (level, until)
            else:  # a fresh pause, at most one level up, jittered within its share
                assert level <= slowdown.level <= level + 1
                base = slowdown.base_pause(slowdown.level)
                assert base * (1 - jitter) - 1e-9 <= pause <= base
        else:
            slowdown.on_success(now, sent_at=sent_at)
            assert slowdown.level <= level
            assert slowdown.paused_until == until
        assert 0 <= slowdown.level <= slowdown.max_level
        assert 0.0 <= slowdown.remaining(now) <= maximum


@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(st.floats(min_value=0.0, max_value=60.0, allow_nan=False), max_size=40))
def test_only_fresh_429s_grow_the_level(gaps: list[float]) -> None:
    """429s for attempts all sent at one instant raise the level once, whenever they arrive."""
    slowdown = HostSlowdown(rng=random.Random(1))
    now = T0
    for gap in gaps:
        now += gap
        slowdown.on_throttled(now, sent_at=T0)
    assert slowdown.level == (1 if gaps else 0)
