"""Shared state costs what it must: round trips per call, pub/sub propagation, batching, pauses.

Round trips are counted, never timed: a counting client records every command it sends and
the thread that sent it (the caller's thread is the call's path; ``rcm-fleet-tick`` is the
background flusher), and ``INFO commandstats`` counts what the nodes ran. Propagation is
proven with events and bounded waits. Every test runs on a single node and on the cluster.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from typing import Any

import pytest
from werkzeug import Request, Response

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    MaxRetriesExceeded,
    RateLimitExceeded,
)
from requests_connection_manager.events import BreakerStateChanged
from tests.redisfleet import FleetRedis, breaker_state, script_calls, wait_until
from tests.servers import AppServer

pytest_plugins = ["tests.conftest_redis"]
pytestmark = pytest.mark.timeout(60)

CALLS = 200
CALLER = "MainThread"


def _warm(cm: ConnectionManager, url: str, calls: int = 5) -> None:
    for _ in range(calls):
        assert cm.get(url).status_code == 200


# ------------------------------------------------------------------- round trips
def test_a_healthy_call_costs_no_round_trip(app: AppServer, fleet_redis: FleetRedis) -> None:
    """Breaker shared, healthy host, steady state: nothing is sent on the call's path."""
    app.ok("/x")
    client = fleet_redis.counting_client()
    try:
        with ConnectionManager(redis_client=client, max_retries=0) as cm:
            _warm(cm, app.url("/x"))
            client.sent.reset()
            for _ in range(CALLS):
                cm.get(app.url("/x"))
            assert client.sent.by(CALLER) == 0
            # the failure-ratio window's counts go in batches, off the call's path
            assert wait_until(lambda: client.sent.by("rcm-fleet-tick") > 0)
    finally:
        client.close()


def test_without_a_ratio_rule_nothing_is_sent_at_all(
    app: AppServer, fleet_redis: FleetRedis
) -> None:
    """No failure-ratio rule: no batches either; the nodes run no script during the calls."""
    app.ok("/x")
    with ConnectionManager(
        redis_url=fleet_redis.url, max_retries=0, circuit_breaker_failure_rate=None
    ) as cm:
        _warm(cm, app.url("/x"))
        before = script_calls(fleet_redis.ports())
        for _ in range(CALLS):
            cm.get(app.url("/x"))
        assert script_calls(fleet_redis.ports()) == before


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window"])
def test_a_permit_costs_one_round_trip_under_a_small_limit(
    app: AppServer, fleet_redis: FleetRedis, strategy: str
) -> None:
    """Breaker + a shared limit under 32 (never leased): one EVALSHA per call, either strategy."""
    app.ok("/x")
    client = fleet_redis.counting_client()
    try:
        with ConnectionManager(
            redis_client=client,
            max_retries=0,
            rate_limit_requests=31,
            rate_limit_period=60,
            rate_limit_strategy=strategy,
            rate_limit_max_wait=0,
        ) as cm:
            _warm(cm, app.url("/x"))
            client.sent.reset()
            for _ in range(26):
                cm.get(app.url("/x"))
            assert client.sent.commands(CALLER) == {"EVALSHA": 26}
            with pytest.raises(RateLimitExceeded):
                cm.get(app.url("/x"))
    finally:
        client.close()


def test_a_refused_permit_carries_its_wait(app: AppServer, fleet_redis: FleetRedis) -> None:
    """A refusal says how long to wait in the same round trip (no second command)."""
    app.ok("/x")
    client = fleet_redis.counting_client()
    try:
        with ConnectionManager(
            redis_client=client,
            rate_limit_requests=2,
            rate_limit_period=60,
            rate_limit_strategy="sliding-window",
            rate_limit_max_wait=0,
        ) as cm:
            cm.get(app.url("/x"))
            cm.get(app.url("/x"))
            client.sent.reset()
            with pytest.raises(RateLimitExceeded) as info:
                cm.get(app.url("/x"))
            assert 59 < (info.value.retry_after or 0) <= 60
            assert client.sent.commands(CALLER) == {"EVALSHA": 1}
    finally:
        client.close()


# ------------------------------------------------------------------- propagation
def _recorder() -> tuple[list[Any], Any]:
    events: list[Any] = []
    lock = threading.Lock()

    def on_event(event: Any) -> None:
        if isinstance(event, BreakerStateChanged):
            with lock:
                events.append(event)

    return events, on_event


def test_an_opening_reaches_other_managers_by_pub_sub(
    app: AppServer, fleet_redis: FleetRedis
) -> None:
    """A opens the breaker; B hears it (an event) and refuses without sending anything."""
    app.ok("/down", b"down", status=500)
    events, on_event = _recorder()
    client = fleet_redis.counting_client()
    settings: dict[str, Any] = {"max_retries": 0, "circuit_breaker_failure_threshold": 2}
    try:
        with (
            ConnectionManager(redis_url=fleet_redis.url, **settings) as a,
            ConnectionManager(redis_client=client, on_event=on_event, **settings) as b,
        ):
            assert b.get(app.url("/down")).status_code == 500  # B knows the host; a streak
            assert a.get(app.url("/down")).status_code == 500  # the second failure opens it
            assert wait_until(lambda: any(e.new == "open" for e in events))
            client.sent.reset()
            with pytest.raises(CircuitBreakerOpen):
                b.get(app.url("/down"))
            assert client.sent.by(CALLER) == 0
        assert app.hits("/down") == 2
    finally:
        client.close()


def test_a_lost_subscription_polls_then_reads_again_on_resubscribe(
    app: AppServer, fleet_redis: FleetRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a subscription B reads Redis (at most every 100 ms); once back, it reads once."""
    app.ok("/x")
    client = fleet_redis.counting_client()
    settings: dict[str, Any] = {"max_retries": 0, "circuit_breaker_failure_threshold": 2}
    try:
        with (
            ConnectionManager(redis_url=fleet_redis.url, **settings) as a,
            ConnectionManager(redis_client=client, **settings) as b,
        ):
            _warm(b, app.url("/x"))
            link = b._engine.shared
            assert link is not None
            assert link.live
            target = link.target
            # the subscriber finds no node to subscribe on, and its connections are cut
            # (on a cluster it tries the other nodes it knew first: cut until it runs out)
            monkeypatch.setattr(target, "subscriber_clients", lambda: [])
            assert wait_until(lambda: _cut_subscriptions(fleet_redis) or not link.live)
            client.sent.reset()
            app.ok("/x", b"down", status=500)
            a.get(app.url("/x"))
            a.get(app.url("/x"))  # A opens it; B hears nothing
            assert wait_until(lambda: _refused(b, app.url("/x")), seconds=2.0)
            # B learned it by reading Redis: the caller polls (at most every 100 ms), unless
            # the background flusher's script brought the new view back first
            assert client.sent.everywhere("EVALSHA") >= 1
            monkeypatch.undo()
            assert wait_until(lambda: link.live, seconds=5.0)
            client.sent.reset()
            assert _refused(b, app.url("/x"))
            # read again once since the resubscription (by this call, or by the flusher)
            assert client.sent.by(CALLER) <= 1
            client.sent.reset()
            assert _refused(b, app.url("/x"))
            assert client.sent.by(CALLER) == 0  # then cached
    finally:
        client.close()


def _cut_subscriptions(fleet_redis: FleetRedis) -> bool:
    for port in fleet_redis.all_ports():
        node = fleet_redis.node_client(port)
        try:
            node.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        finally:
            node.close()
    return False


def _refused(cm: ConnectionManager, url: str) -> bool:
    try:
        cm.get(url)
    except CircuitBreakerOpen:
        return True
    return False


# ------------------------------------------------------------ the fleet's ratio
def test_successes_are_batched_and_the_ratio_is_the_fleets(
    app: AppServer, fleet_redis: FleetRedis
) -> None:
    """A's 5 successes reach Redis in a batch; B's 5th failure makes 50 % of 10: it opens.

    B alone (5 calls, minimum 10) could not open it: the ratio judged is the fleet's.
    """
    app.ok("/ok")
    app.ok("/down", b"down", status=500)
    client = fleet_redis.counting_client()
    settings: dict[str, Any] = {
        "max_retries": 0,
        "circuit_breaker_failure_threshold": 100,
        "circuit_breaker_failure_rate": 0.5,
        "circuit_breaker_minimum_calls": 10,
        "circuit_breaker_window": 30,
    }
    host = f"http://127.0.0.1:{app.port}"
    try:
        with (
            ConnectionManager(redis_client=client, **settings) as a,
            ConnectionManager(redis_url=fleet_redis.url, **settings) as b,
        ):
            a.get(app.url("/ok"))  # reads the breaker (and loads the script)
            client.sent.reset()
            for _ in range(4):
                a.get(app.url("/ok"))
            assert client.sent.by(CALLER) == 0
            window = f"{{rcm:{host}}}:win:30000"
            assert wait_until(lambda: _calls_in(client, window) == 5)
            results = [b.get(app.url("/down")).status_code for _ in range(5)]
            assert results == [500] * 5
            assert breaker_state(b, app.url("/down")) == "open"
            with pytest.raises(CircuitBreakerOpen):
                b.get(app.url("/down"))
    finally:
        client.close()


def test_slow_successes_tip_the_fleets_ratio(app: AppServer, fleet_redis: FleetRedis) -> None:
    """Slow successes count as bad for the ratio: written at once, the 4th of 4 opens it."""
    app.slow("/slow", 0.1)
    settings: dict[str, Any] = {
        "max_retries": 0,
        "circuit_breaker_failure_threshold": 100,
        "circuit_breaker_failure_rate": 1.0,
        "circuit_breaker_minimum_calls": 4,
        "circuit_breaker_slow_call_duration": 0.05,
    }
    with (
        ConnectionManager(redis_url=fleet_redis.url, **settings) as a,
        ConnectionManager(redis_url=fleet_redis.url, **settings) as b,
    ):
        assert [a.get(app.url("/slow")).status_code for _ in range(2)] == [200, 200]
        assert [b.get(app.url("/slow")).status_code for _ in range(2)] == [200, 200]
        assert breaker_state(b, app.url("/slow")) == "open"
        assert wait_until(lambda: breaker_state(a, app.url("/slow")) == "open")
        with pytest.raises(CircuitBreakerOpen):
            a.get(app.url("/slow"))


def _calls_in(client: Any, window: str) -> int:
    fields = client.hgetall(window)
    return sum(int(v) for k, v in fields.items() if k.decode().endswith(":c"))


# ------------------------------------------------------------------ shared pauses
def _throttling(app: AppServer, path: str, headers: dict[str, str]) -> None:
    def handler(request: Request) -> Response:
        return Response("slow down", status=429, headers=headers)

    app.route(path, handler)


@pytest.mark.parametrize(
    "headers",
    [{"Retry-After": "5"}, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "5"}],
    ids=["retry-after", "spent-quota"],
)
def test_a_pause_reaches_every_process(
    app: AppServer, fleet_redis: FleetRedis, headers: dict[str, str]
) -> None:
    """A is told to wait 5 s; B, which knows the host, and C, which does not, are paused too."""
    app.ok("/ok")
    _throttling(app, "/limited", headers)
    settings: dict[str, Any] = {"max_retries": 0, "retry_after_max": 1}
    with (
        ConnectionManager(redis_url=fleet_redis.url, **settings) as a,
        ConnectionManager(redis_url=fleet_redis.url, **settings) as b,
    ):
        assert b.get(app.url("/ok")).status_code == 200
        assert a.get(app.url("/limited")).status_code == 429  # no retry: the 429 is the answer
        host = f"http://127.0.0.1:{app.port}"
        assert wait_until(lambda: b.get_stats()["hosts"][host]["paused_for"] > 4)
        with pytest.raises(RateLimitExceeded) as info:
            b.get(app.url("/ok"))  # longer than B's retry_after_max: refused at once
        assert 4 < (info.value.retry_after or 0) <= 5
        with (
            ConnectionManager(redis_url=fleet_redis.url, **settings) as c,
            pytest.raises(RateLimitExceeded),
        ):
            c.get(app.url("/ok"))  # a process that never called the host: its first call
    assert app.hits("/ok") == 1
    assert app.hits("/limited") == 1


def test_a_bare_429_slows_down_only_its_process(app: AppServer, fleet_redis: FleetRedis) -> None:
    """The hint-less slow-down is each process's own guess: it is not shared."""
    app.ok("/ok")
    _throttling(app, "/limited", {})
    with (
        ConnectionManager(redis_url=fleet_redis.url, max_retries=0) as a,
        ConnectionManager(redis_url=fleet_redis.url, max_retries=0) as b,
    ):
        assert b.get(app.url("/ok")).status_code == 200
        with contextlib.suppress(MaxRetriesExceeded):  # retried once, then raised
            a.get(app.url("/limited"))
        host = f"http://127.0.0.1:{app.port}"
        assert a.get_stats()["hosts"][host]["paused_for"] > 0
        assert b.get_stats()["hosts"][host]["paused_for"] == 0
        assert b.get(app.url("/ok")).status_code == 200


# ------------------------------------------------------------------------- fork
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_shares_state_with_its_parent(
    app: AppServer, fleet_redis: FleetRedis
) -> None:
    """A child forked from a manager's process opens the breaker; the parent hears it."""
    app.ok("/ok")
    app.ok("/down", b"down", status=500)
    settings: dict[str, Any] = {"max_retries": 0, "circuit_breaker_failure_threshold": 2}
    with ConnectionManager(redis_url=fleet_redis.url, **settings) as cm:
        assert cm.get(app.url("/ok")).status_code == 200  # the parent knows the host
        with warnings.catch_warnings():  # 3.12+: "multi-threaded, fork() may deadlock"
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: its own threads and connections, the same shared state
            code = 1
            try:
                statuses = [cm.get(app.url("/down")).status_code for _ in range(2)]
                code = 0 if statuses == [500, 500] else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert wait_until(lambda: breaker_state(cm, app.url("/down")) == "open")
        with pytest.raises(CircuitBreakerOpen):
            cm.get(app.url("/down"))
    assert app.hits("/down") == 2


# ----------------------------------------------------------------- streak news
def _publishes(fleet_redis: FleetRedis) -> int:
    total = 0
    for port in fleet_redis.all_ports():
        node = fleet_redis.node_client(port)
        try:
            stats = node.info("commandstats")
        finally:
            node.close()
        total += int(stats.get("cmdstat_publish", {}).get("calls", 0))
    return total


def test_streak_news_is_coalesced_and_still_delivered(
    app: AppServer, fleet_redis: FleetRedis
) -> None:
    """A streak starting and ending 61 times publishes far fewer messages; B learns the last."""
    app.ok("/ok")
    app.ok("/down", b"down", status=500)
    settings: dict[str, Any] = {
        "max_retries": 0,
        "circuit_breaker_failure_threshold": 1000,
        "circuit_breaker_failure_rate": None,
    }
    with (
        ConnectionManager(redis_url=fleet_redis.url, **settings) as a,
        ConnectionManager(redis_url=fleet_redis.url, **settings) as b,
    ):
        assert b.get(app.url("/ok")).status_code == 200  # B knows the host
        before = _publishes(fleet_redis)
        for _ in range(30):
            assert a.get(app.url("/down")).status_code == 500  # a streak starts
            assert a.get(app.url("/ok")).status_code == 200  # A resets it at once
        assert a.get(app.url("/down")).status_code == 500  # the last news: fails = 1
        state = b._engine.hosts.peek(f"http://127.0.0.1:{app.port}")
        assert state is not None
        assert state.fleet is not None
        fleet = state.fleet
        assert wait_until(lambda: fleet.snapshot()[1] == 1)  # held back, then sent
        # 61 changes, at most one message per 20 ms: far fewer than one each
        assert _publishes(fleet_redis) - before < 40
