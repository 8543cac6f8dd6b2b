"""Leased permits of a shared limit (fleet2): fewer round trips, never more than the limit.

The state-machine tests drive :class:`SharedLimiter` with a fake clock and a recording link;
the rest run against the real Redis of ``fleet_redis`` (one node, and a cluster).
"""

from __future__ import annotations

import gc
import math
import os
import warnings
from typing import Any

import pytest

from requests_connection_manager import ConnectionManager, RateLimitExceeded, _shared_limiter
from requests_connection_manager._fleet_scripts import HostKeys
from requests_connection_manager._shared_limiter import MAX_LEASE, SharedLimiter
from requests_connection_manager.config import RateLimitConfig
from tests.redisfleet import FleetRedis, hour_quota, wait_until
from tests.servers import AppServer

pytest_plugins = ["tests.conftest_redis"]
pytestmark = pytest.mark.timeout(120)

STRATEGIES = ["fixed-window", "sliding-window"]


# ------------------------------------------------------------------ the state machine
class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Local:
    """The in-process twin: never used while the link is usable."""

    def try_acquire(self) -> float:
        raise AssertionError("the local twin was used while Redis was usable")

    def quiet(self) -> bool:
        return True


class _Link:
    """Grants whatever is asked (up to ``free``) and records every script's arguments."""

    def __init__(self, free: int = 10**6, reset_ms: int = 1500) -> None:
        self.free = free
        self.reset_ms = reset_ms
        self.sent: list[list[Any]] = []
        self.held: list[SharedLimiter] = []
        self._ids = 0

    def hold(self, limiter: SharedLimiter) -> None:
        self.held.append(limiter)

    def usable(self) -> bool:
        return True

    def unique(self) -> str:
        self._ids += 1
        return f"id{self._ids}"

    def run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        self.sent.append(args)
        wanted = int(args[2])
        granted = min(wanted, max(1, self.free // 2)) if wanted and self.free else 0
        self.free -= granted
        return [granted, self.free, self.reset_ms, 7]  # the wait (or the window's reset), window


def _limiter(
    link: _Link, clock: _Clock, strategy: str = "sliding-window", limit: int = 10**6
) -> SharedLimiter:
    settings = RateLimitConfig(requests=limit, period=1.0, strategy=strategy)  # type: ignore[arg-type]
    return SharedLimiter(link, settings, HostKeys("rcm", "http://h:80"), _Local(), clock)  # type: ignore[arg-type]


def test_a_first_permit_is_asked_alone_then_the_pace_sizes_the_lease() -> None:
    """One permit first; a caller 1 ms apart is then leased MAX_LEASE; the lease needs no trip."""
    link, clock = _Link(), _Clock()
    limiter = _limiter(link, clock)
    assert limiter.try_acquire() == 0.0
    assert [args[2] for args in link.sent] == [1]
    clock.now += 0.001
    assert limiter.try_acquire() == 0.0
    assert [args[2] for args in link.sent] == [1, MAX_LEASE]
    for _ in range(MAX_LEASE - 1):
        clock.now += 0.0001
        assert limiter.try_acquire() == 0.0
    assert len(link.sent) == 2  # the whole lease came from one script
    clock.now += 0.0001
    assert limiter.try_acquire() == 0.0
    assert len(link.sent) == 3  # spent: the next lease


def test_a_lease_is_not_used_at_its_end_and_its_rest_goes_back() -> None:
    """At the lease's end the next permit is asked of Redis; the unused ones are given back."""
    link, clock = _Link(), _Clock()
    limiter = _limiter(link, clock)
    limiter.try_acquire()
    clock.now += 0.001
    limiter.try_acquire()  # a lease of MAX_LEASE, one used, id2
    for _ in range(9):
        limiter.try_acquire()  # ten used
    clock.now += _shared_limiter.LEASE_SECONDS  # exactly at its end
    limiter.try_acquire()
    assert len(link.sent) == 3
    give_back = link.sent[2][5:]
    assert give_back == ["id2", 11, MAX_LEASE]  # members 11..64: never handed out
    assert link.sent[2][2] == 10  # the next lease: what was used in the last one


def test_a_fixed_window_lease_ends_before_its_window() -> None:
    """50 ms left in the window (Redis's clock in whole ms): the lease ends before 49 ms."""
    link, clock = _Link(reset_ms=50), _Clock()
    limiter = _limiter(link, clock, strategy="fixed-window")
    limiter.try_acquire()
    clock.now += 0.001
    limiter.try_acquire()  # a lease
    assert link.held == [limiter]
    started = clock.now
    clock.now = started + 0.0485
    assert limiter.try_acquire() == 0.0
    assert len(link.sent) == 2  # still the lease
    clock.now = started + 0.049
    limiter.try_acquire()
    assert len(link.sent) == 3  # past its end, a millisecond before the window's


def test_the_clock_is_read_under_the_limiters_lock() -> None:
    """A thread held up between reading the clock and the lease would use a stale time."""
    link = _Link()
    reads: list[bool] = []
    limiter: SharedLimiter

    def clock() -> float:
        reads.append(limiter._lock.locked())
        return 100.0 + len(reads) * 0.001

    limiter = _limiter(link, clock)  # type: ignore[arg-type]
    for _ in range(5):
        limiter.try_acquire()
    assert reads.count(True) == 5  # one read per take, each under the lock


def test_a_slow_caller_asks_one_permit_at_a_time() -> None:
    """A caller slower than one call per lease time is never leased more than one permit."""
    link, clock = _Link(), _Clock()
    limiter = _limiter(link, clock)
    for _ in range(5):
        assert limiter.try_acquire() == 0.0
        clock.now += 0.2
    assert [args[2] for args in link.sent] == [1] * 5


@pytest.mark.parametrize("limit", [1, 31])
def test_a_limit_under_32_is_never_leased(limit: int) -> None:
    """Under 2 x 16 permits a window is never leased: every permit is its own script."""
    link, clock = _Link(), _Clock()
    limiter = _limiter(link, clock, limit=limit)
    for _ in range(limit):
        assert limiter.try_acquire() == 0.0
        clock.now += 0.0001
    assert [args[2] for args in link.sent] == [1] * limit


def test_a_refusal_carries_the_scripts_wait_and_nothing_is_held() -> None:
    """Redis has nothing free: the wait comes back, no lease is kept."""
    link, clock = _Link(free=0), _Clock()
    limiter = _limiter(link, clock)
    assert limiter.try_acquire() == 1.5
    assert limiter.try_acquire() == 1.5
    assert len(link.sent) == 2


def test_the_ticker_gives_back_an_ended_lease_once() -> None:
    """After its end a lease's unused permits go back by one script off the call path."""
    link, clock = _Link(), _Clock()
    limiter = _limiter(link, clock, strategy="fixed-window")
    limiter.try_acquire()
    clock.now += 0.001
    limiter.try_acquire()  # a lease of MAX_LEASE in window 7, one used
    limiter.tick()
    assert len(link.sent) == 2  # not ended yet: nothing to do
    clock.now += 1.0
    limiter.tick()
    limiter.tick()
    assert link.sent[2] == [10**6, 1000, 0, 7, MAX_LEASE - 1]  # wanted 0: a give-back
    assert len(link.sent) == 3
    limiter.try_acquire()
    assert link.sent[3][2] == 1  # its pace is kept: one was used
    assert link.sent[3][3:] == [7, 0]  # nothing left to give back twice


# ------------------------------------------------------------------ against Redis
def _key(fleet_redis: FleetRedis, app: AppServer, strategy: str, limit: int, period: int) -> str:
    keys = HostKeys("rcm", app.url("/").rstrip("/"))
    period_ms = period * 1000
    return (
        keys.sliding(limit, period_ms)
        if strategy == "sliding-window"
        else keys.fixed(limit, period_ms)
    )


def _used(fleet_redis: FleetRedis, key: str, strategy: str) -> int:
    client = fleet_redis.client()
    try:
        if strategy == "sliding-window":
            return int(client.zcard(key))
        return int(client.hget(key, "n") or 0)
    finally:
        client.close()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_steady_caller_takes_its_permits_a_lease_at_a_time(
    app: AppServer, fleet_redis: FleetRedis, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 calls under a big limit: at most one EVALSHA per MAX_LEASE calls (plus the first)."""
    monkeypatch.setattr(_shared_limiter, "LEASE_SECONDS", 30.0)  # no lease ends by time
    app.ok("/x")
    client = fleet_redis.counting_client()
    try:
        with ConnectionManager(
            redis_client=client,
            max_retries=0,
            rate_limit_requests=10**6,
            rate_limit_period=600,
            rate_limit_strategy=strategy,
        ) as cm:
            cm.get(app.url("/x"))
            client.sent.reset()
            for _ in range(200):
                assert cm.get(app.url("/x")).status_code == 200
            assert client.sent.commands("MainThread")["EVALSHA"] <= 1 + math.ceil(200 / MAX_LEASE)
    finally:
        client.close()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_managers_with_leases_use_exactly_the_limit(
    app: AppServer, fleet_redis: FleetRedis, strategy: str
) -> None:
    """Two managers (as two processes) take turns until both are refused: 64 calls, not one more."""
    app.ok("/x")
    quota = hour_quota(fleet_redis.url, strategy)
    made = 0
    with ConnectionManager(**quota) as one, ConnectionManager(**quota) as two:
        refused = {id(one): False, id(two): False}
        for _ in range(300):
            for cm in (one, two, one):  # one calls twice as often: it leases
                try:
                    cm.get(app.url("/x"))
                    made += 1
                    refused[id(cm)] = False
                except RateLimitExceeded:
                    refused[id(cm)] = True
            if all(refused.values()):
                break
    assert all(refused.values())
    assert made == 64
    assert app.hits("/x") == 64
    key = _key(fleet_redis, app, strategy, 64, 3600)
    assert _used(fleet_redis, key, strategy) == 64


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_unused_permits_go_back_after_the_lease(
    app: AppServer, fleet_redis: FleetRedis, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manager that stops mid-lease gives its unused permits back; another can use them."""
    # Leases of 2 s: long enough that a slow first call (a cold cluster client on a loaded
    # machine) still sizes the next lease above one permit, short enough to wait for.
    monkeypatch.setattr(_shared_limiter, "LEASE_SECONDS", 2.0)
    app.ok("/x")
    quota = hour_quota(fleet_redis.url, strategy)
    key = _key(fleet_redis, app, strategy, 64, 3600)
    with ConnectionManager(**quota) as one, ConnectionManager(**quota) as two:
        one.get(app.url("/x"))
        one.get(app.url("/x"))  # leased: more than two permits are taken in Redis
        assert _used(fleet_redis, key, strategy) > 2
        if strategy == "sliding-window":  # the lease is stamped with its end, not its grant
            client = fleet_redis.client()
            try:
                scores = [score for _, score in client.zrange(key, 0, -1, withscores=True)]
            finally:
                client.close()
            assert max(scores) - min(scores) >= 2000
        assert wait_until(lambda: _used(fleet_redis, key, strategy) == 2, seconds=15)
        made = 0
        for _ in range(100):
            try:
                two.get(app.url("/x"))
            except RateLimitExceeded:
                break
            made += 1
        assert made == 62


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_use_its_parents_lease(
    app: AppServer, fleet_redis: FleetRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent holds a lease; the child's first permit is a new one in Redis."""
    monkeypatch.setattr(_shared_limiter, "LEASE_SECONDS", 30.0)
    app.ok("/x")
    key = _key(fleet_redis, app, "sliding-window", 10**6, 600)
    with ConnectionManager(
        redis_url=fleet_redis.url,
        max_retries=0,
        rate_limit_requests=10**6,
        rate_limit_period=600,
        rate_limit_strategy="sliding-window",
    ) as cm:
        cm.get(app.url("/x"))
        cm.get(app.url("/x"))  # a lease, mostly unused
        before = _used(fleet_redis, key, "sliding-window")
        with warnings.catch_warnings():  # 3.12+: "multi-threaded, fork() may deadlock"
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            code = 1
            try:
                cm.get(app.url("/x"))
                code = 0 if _used(fleet_redis, key, "sliding-window") == before + 1 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        cm.get(app.url("/x"))  # the parent goes on with its own lease
        assert _used(fleet_redis, key, "sliding-window") == before + 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_children_forked_from_one_manager_never_share_permit_ids(
    app: AppServer, fleet_redis: FleetRedis
) -> None:
    """A manager made before forking (gunicorn --preload): two children spend one quota.

    Permits are sorted-set members named by the process's ids: a child that reused its
    parent's ids would re-add its sibling's members (not counted twice) and go over.
    """
    app.ok("/x")
    url = app.url("/x")
    with ConnectionManager(**hour_quota(fleet_redis.url, "sliding-window")) as cm:
        for calls in (30, 100):  # the first child spends 30, the second all that is left
            with warnings.catch_warnings():  # 3.12+: "multi-threaded, fork() may deadlock"
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    made = 0
                    for _ in range(calls):
                        try:
                            cm.get(url)
                        except RateLimitExceeded:
                            break
                        made += 1
                    cm.close()  # a worker's exit: its unused leased permits go back
                    code = 0 if made == min(calls, 34) else 2
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
    assert app.hits("/x") == 64


def test_a_closing_manager_gives_back_a_lease_of_a_forgotten_host(
    app: AppServer, fleet_redis: FleetRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host table is cleared before the link closes: the lease is still given back."""
    # Long leases: a first call slower than a lease (a cold cluster client on a loaded
    # machine) would size the next lease at one permit.
    monkeypatch.setattr(_shared_limiter, "LEASE_SECONDS", 30.0)
    app.ok("/x")
    key = _key(fleet_redis, app, "sliding-window", 64, 3600)
    cm = ConnectionManager(**hour_quota(fleet_redis.url, "sliding-window"))
    try:
        cm.get(app.url("/x"))
        cm.get(app.url("/x"))  # a lease of 4, two used
        assert _used(fleet_redis, key, "sliding-window") == 5
        cm._engine.hosts.clear()  # as close() does first, or an eviction would
        gc.collect()
    finally:
        cm.close()
    assert _used(fleet_redis, key, "sliding-window") == 2
