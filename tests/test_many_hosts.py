"""Per-host state is bounded: LRU eviction that never lets traffic through early."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
import requests

from requests_connection_manager import ConnectionManager
from requests_connection_manager._hosts import MAX_PAUSE, HostRegistry, HostState
from requests_connection_manager.config import Policy, build_policy
from tests.fakes import FakeClock
from tests.servers import free_port

pytestmark = pytest.mark.timeout(120)


def _registry(clock: FakeClock, max_hosts: int = 3) -> HostRegistry:
    return HostRegistry(clock, max_hosts=max_hosts)


def _use(registry: HostRegistry, key: str, policy: Policy) -> HostState:
    state = registry.acquire(key, policy)
    registry.release(state)
    return state


def _keys(registry: HostRegistry) -> list[str]:
    return [s.key for s in registry.states()]


def test_least_recently_used_idle_host_goes_first(clock: FakeClock) -> None:
    """Over the bound, the coldest clean host is dropped; using a host warms it."""
    policy = build_policy()
    registry = _registry(clock)
    for key in ("a", "b", "c"):
        _use(registry, key, policy)
    _use(registry, "a", policy)
    _use(registry, "d", policy)
    assert _keys(registry) == ["c", "a", "d"]


def test_clean_hosts_go_before_ones_with_failures(clock: FakeClock) -> None:
    """A closed breaker's partial failure count is kept while a clean host can go instead."""
    policy = build_policy(circuit_breaker_failure_threshold=5)
    registry = _registry(clock)
    failing = _use(registry, "a", policy)
    assert failing.breaker is not None
    failing.breaker.record_failure(failing.breaker.admit())
    _use(registry, "b", policy)
    _use(registry, "c", policy)
    _use(registry, "d", policy)
    assert _keys(registry) == ["a", "c", "d"]
    assert registry.states()[0].breaker.failure_count == 1  # type: ignore[union-attr]


def test_an_open_breaker_is_never_dropped_before_its_recovery_time(clock: FakeClock) -> None:
    """Hosts whose breakers refuse calls stay, even past the bound; after recovery they may go."""
    policy = build_policy(circuit_breaker_failure_threshold=1, circuit_breaker_recovery_timeout=30)
    registry = _registry(clock, max_hosts=2)
    for key in ("a", "b"):
        state = _use(registry, key, policy)
        assert state.breaker is not None
        assert state.breaker.record_failure(state.breaker.admit())
    _use(registry, "c", policy)
    assert sorted(_keys(registry)) == ["a", "b", "c"]  # over the bound rather than unsafe
    clock.advance(31)
    _use(registry, "d", policy)
    assert len(_keys(registry)) == 2
    assert "d" in _keys(registry)


def test_a_host_with_a_request_in_flight_is_never_dropped(clock: FakeClock) -> None:
    """A host in use stays, even past the bound; once released it may go."""
    policy = build_policy(rate_limit_requests=5, rate_limit_period=10)
    registry = _registry(clock, max_hosts=1)
    state = registry.acquire("a", policy)
    _use(registry, "b", policy)
    assert "a" in _keys(registry)
    registry.release(state)
    _use(registry, "c", policy)
    assert "a" not in _keys(registry)


def _make_busy(state: HostState, busy: str, clock: FakeClock) -> None:
    if busy == "paused":
        state.pause_until(clock.monotonic() + 5, clock.monotonic())
    else:
        assert state.limiter is not None
        assert state.limiter.try_acquire() == 0.0


@pytest.mark.parametrize("busy", ["paused", "limiter"])
def test_hosts_holding_a_pause_or_window_go_after_clean_ones(clock: FakeClock, busy: str) -> None:
    """A pending pause or a rate-limit window in use keeps a host while a clean one can go."""
    policy = build_policy(rate_limit_requests=5, rate_limit_period=10)
    registry = _registry(clock, max_hosts=2)
    _make_busy(_use(registry, "a", policy), busy, clock)
    _use(registry, "b", policy)
    _use(registry, "c", policy)
    assert _keys(registry) == ["a", "c"]


@pytest.mark.parametrize("busy", ["paused", "limiter"])
def test_the_table_stays_bounded_when_every_host_holds_state(clock: FakeClock, busy: str) -> None:
    """Hosts that all hold a pause (or a window) are dropped rather than grow the table."""
    policy = build_policy(rate_limit_requests=5, rate_limit_period=10)
    registry = _registry(clock, max_hosts=2)
    for key in "abcdef":
        _make_busy(_use(registry, key, policy), busy, clock)
        assert len(_keys(registry)) <= 2
    assert _keys(registry) == ["e", "f"]


def test_a_pause_is_capped(clock: FakeClock) -> None:
    """A pause of years (a hostile Retry-After) is cut to MAX_PAUSE."""
    state = HostState("a")
    now = clock.monotonic()
    assert state.pause_until(now + 1e12, now) == MAX_PAUSE
    assert state.paused_for(now) == MAX_PAUSE


@pytest.mark.timeout(480)  # 50 s alone; tracemalloc and coverage on 2 busy cores: minutes
def test_five_thousand_hosts_grow_memory_by_less_than_5_mib() -> None:
    """Calls to 5,000 distinct loopback hosts: the table stays bounded, memory < 5 MiB more."""
    port = free_port()
    hosts = [f"127.{1 + i // 65536}.{(i // 256) % 256}.{1 + i % 250}" for i in range(5000)]
    with ConnectionManager(max_retries=0) as cm:
        for host in hosts[:50]:  # warm up imports, pools and caches
            with pytest.raises(requests.ConnectionError):
                cm.get(f"http://{host}:{port}/", timeout=2)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for host in hosts[50:]:
                with pytest.raises(requests.ConnectionError):
                    cm.get(f"http://{host}:{port}/", timeout=2)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        stats = cm.get_stats()
    assert len(stats["hosts"]) <= 1024
    assert grown < 5 * 1024 * 1024, f"grew {grown / 1024 / 1024:.2f} MiB"
