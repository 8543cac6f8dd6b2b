"""Shared state through real Redis: one quota and one breaker for many processes.

Every test runs twice (``fleet_redis``): on a single ``redis-server`` and on a local Redis
Cluster of 3 primaries and 3 replicas, through ``redis://`` and ``redis+cluster://`` URLs
(or a ``redis.Redis`` / ``RedisCluster`` client).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from werkzeug import Request, Response

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    RateLimitExceeded,
)
from tests.redisfleet import FleetRedis, breaker_state, wait_until
from tests.servers import AppServer, free_port

pytest_plugins = ["tests.conftest_redis"]
pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent


def _workers(count: int, *args: str) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", "tests.fleet_worker", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def _outcomes(process: subprocess.Popen[str]) -> list[object]:
    return _lines(process)[0]


def _lines(process: subprocess.Popen[str]) -> list[list[object]]:
    out, err = process.communicate(timeout=45)
    assert process.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _arrivals(app: AppServer, path: str) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()

    def handler(request: Request) -> Response:
        with lock:
            times.append(time.monotonic())
        return Response("ok")

    app.route(path, handler)
    return times


def _max_in_window(times: list[float], window: float) -> int:
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


# ------------------------------------------------------------------- one quota
@pytest.mark.parametrize(("rate", "calls"), [(10, 12), (320, 160)])
def test_three_processes_share_one_sliding_window_quota(
    app: AppServer, fleet_redis: FleetRedis, rate: int, calls: int
) -> None:
    """3 workers under a shared quota of ``rate``/s: never more than ``rate`` in any second.

    10/s is never leased (every permit is a script); at 320/s each worker leases up to 20
    permits at a time, stamped with their lease's end.

    The guarantee holds while Redis is healthy. A worker that found Redis too slow (two
    answers over 100 ms in a row: a loaded CI machine starting three interpreters can do
    that) fell back to its local quota, as documented, and says so: that run is repeated,
    at most three times in all.
    """
    for _ in range(3):
        arrivals = _arrivals(app, "/quota")
        workers = _workers(
            3,
            "--redis", fleet_redis.url,
            "--url", app.url("/quota"),
            "--calls", str(calls),
            "--rate", str(rate),
            "--period", "1",
            "--strategy", "sliding-window",
            "--starts",
        )  # fmt: skip
        reports = [_report(w) for w in workers]
        if all(outages == 0 for _, _, outages in reports):
            break
        time.sleep(1.0)  # let the window empty before the next run
    assert [outages for _, _, outages in reports] == [0, 0, 0], "Redis was unhealthy in 3 runs"
    assert [outcomes for outcomes, _, _ in reports] == [[200] * calls] * 3
    starts = [float(t) for _, times, _ in reports for t in times]  # type: ignore[arg-type]
    assert len(starts) == len(arrivals) == 3 * calls
    # The guarantee: never more than `rate` permits in any 1 s. Each attempt starts right
    # after its permit (within a few ms, unless a loaded machine stalls the process).
    assert _max_in_window(starts, 0.95) <= rate
    assert _max_in_window(starts, 1.95) <= 2 * rate
    # At the server each arrival also carries its own latency (a cold interpreter's first
    # call can take 100 ms and more): checked loosely. Without the shared quota all
    # would arrive within a fraction of a second.
    assert _max_in_window(arrivals, 0.5) <= rate


def _report(process: subprocess.Popen[str]) -> tuple[list[object], list[object], int]:
    """A worker's outcomes, its attempts' start times and how many outages it saw."""
    out, err = process.communicate(timeout=45)
    assert process.returncode == 0, err
    outages = re.search(r"outages=(\d+)", err)
    assert outages is not None, err
    outcomes, starts = (json.loads(line) for line in out.splitlines() if line.strip())
    return outcomes, starts, int(outages.group(1))


def test_fixed_window_quota_is_shared_too(fleet_redis: FleetRedis, app: AppServer) -> None:
    """Two managers (as two processes would) draw from one fixed-window quota of 3 per minute."""
    app.ok("/x")
    settings = {
        "redis_url": fleet_redis.url,
        "rate_limit_requests": 3,
        "rate_limit_period": 60,
        "rate_limit_max_wait": 0,
    }
    with ConnectionManager(**settings) as one, ConnectionManager(**settings) as two:  # type: ignore[arg-type]
        one.get(app.url("/x"))
        two.get(app.url("/x"))
        one.get(app.url("/x"))
        with pytest.raises(RateLimitExceeded):
            two.get(app.url("/x"))
    assert app.hits("/x") == 3


# ------------------------------------------------------------------- one breaker
def test_a_breaker_tripped_in_one_process_rejects_in_another(
    app: AppServer, fleet_redis: FleetRedis
) -> None:
    """Process A trips the breaker; processes B and C are refused without touching the server."""
    app.ok("/down", b"down", status=500)
    common = ["--redis", fleet_redis.url, "--url", app.url("/down"), "--threshold", "2"]
    tripper = _workers(1, *common, "--calls", "2", "--recovery", "30")
    assert _outcomes(tripper[0]) == [500, 500]
    assert app.hits("/down") == 2
    followers = _workers(2, *common, "--calls", "3", "--recovery", "30")
    assert [_outcomes(f) for f in followers] == [["CircuitBreakerOpen"] * 3] * 2
    assert app.hits("/down") == 2


def test_after_recovery_one_probe_goes_through_across_managers(
    app: AppServer, fleet_redis: FleetRedis
) -> None:
    """Half-open: of 4 managers calling at once, one probe reaches the server and closes it."""
    gate = threading.Event()
    inside = threading.Event()

    def slow_ok(request: Request) -> Response:
        inside.set()
        gate.wait(10)
        return Response("ok")

    app.ok("/svc", b"down", status=500)
    settings = {
        "redis_url": fleet_redis.url,
        "max_retries": 0,
        "circuit_breaker_failure_threshold": 1,
        "circuit_breaker_recovery_timeout": 1,
    }
    managers = [ConnectionManager(**settings) for _ in range(4)]  # type: ignore[arg-type]
    try:
        assert managers[0].get(app.url("/svc")).status_code == 500
        with pytest.raises(CircuitBreakerOpen) as info:
            managers[1].get(app.url("/svc"))
        app.route("/svc", slow_ok)
        time.sleep(info.value.retry_after + 0.05)
        results: dict[int, object] = {}

        def call(index: int) -> None:
            try:
                results[index] = managers[index].get(app.url("/svc")).status_code
            except CircuitBreakerOpen:
                results[index] = "open"

        probe = threading.Thread(target=call, args=(0,))
        probe.start()
        assert inside.wait(10)
        others = [threading.Thread(target=call, args=(i,)) for i in (1, 2, 3)]
        for thread in others:
            thread.start()
        for thread in others:
            thread.join(10)
        gate.set()
        probe.join(10)
        assert results == {0: 200, 1: "open", 2: "open", 3: "open"}
        assert app.hits("/svc") == 2  # the tripping call and the one probe
        # closed for everyone (a refused manager holds off for a second, or until it hears)
        assert wait_until(lambda: breaker_state(managers[3], app.url("/svc")) == "closed")
        assert managers[3].get(app.url("/svc")).status_code == 200
    finally:
        gate.set()
        for manager in managers:
            manager.close()


def test_a_new_manager_does_not_reset_shared_state(app: AppServer, fleet_redis: FleetRedis) -> None:
    """Starting a process must not reset a shared failure count or an open state."""
    app.ok("/down", b"down", status=500)
    settings = {
        "redis_url": fleet_redis.url,
        "max_retries": 0,
        "circuit_breaker_failure_threshold": 3,
    }
    with ConnectionManager(**settings) as first:  # type: ignore[arg-type]
        first.get(app.url("/down"))
        first.get(app.url("/down"))
        with ConnectionManager(**settings) as second:  # type: ignore[arg-type]
            second.get(app.url("/down"))  # the third failure, counted across both
            # the opening reaches the first manager through pub/sub (well under 100 ms)
            assert wait_until(lambda: breaker_state(first, app.url("/down")) == "open")
            with pytest.raises(CircuitBreakerOpen):
                first.get(app.url("/down"))
        with ConnectionManager(**settings) as third, pytest.raises(CircuitBreakerOpen):  # type: ignore[arg-type]
            third.get(app.url("/down"))
    assert app.hits("/down") == 3


# ------------------------------------------------------------------ the key layout
def test_state_names_and_missing_keys(app: AppServer, fleet_redis: FleetRedis) -> None:
    """A host's keys share one hash tag, hold pybreaker's state names; missing keys read closed."""
    app.ok("/down", b"down", status=500)
    app.ok("/ok")
    client = fleet_redis.client()
    host = f"http://127.0.0.1:{app.port}"
    settings = {
        "redis_client": client,
        "redis_prefix": "svc-a",
        "max_retries": 0,
        "circuit_breaker_failure_threshold": 1,
        "circuit_breaker_recovery_timeout": 1,
    }
    try:
        with ConnectionManager(**settings) as cm:  # type: ignore[arg-type]
            cm.get(app.url("/down"))
            keys = fleet_redis.keys("{svc-a:*")
            assert keys == {f"{{svc-a:{host}}}:br"}
            assert client.hget(f"{{svc-a:{host}}}:br", "state") == b"open"
            with pytest.raises(CircuitBreakerOpen):
                cm.get(app.url("/ok"))
            client.delete(*keys)  # expired, flushed, or another team's cleanup
            with ConnectionManager(**settings) as fresh:  # type: ignore[arg-type]
                assert fresh.get(app.url("/ok")).status_code == 200  # reads a closed breaker
            # the first manager's copy says open until its recovery timeout, then Redis
            # says closed: a normal call, no probe
            time.sleep(1.05)
            assert cm.get(app.url("/ok")).status_code == 200
            assert breaker_state(cm, app.url("/ok")) == "closed"
    finally:
        client.close()


def test_prefixes_keep_managers_apart(app: AppServer, fleet_redis: FleetRedis) -> None:
    """Two prefixes, two quotas and two breakers, even for the same host."""
    app.ok("/x")
    base = {
        "redis_url": fleet_redis.url,
        "rate_limit_requests": 1,
        "rate_limit_period": 60,
        "rate_limit_max_wait": 0,
    }
    with (
        ConnectionManager(redis_prefix="team-a", **base) as a,  # type: ignore[arg-type]
        ConnectionManager(redis_prefix="team-b", **base) as b,  # type: ignore[arg-type]
    ):
        a.get(app.url("/x"))
        b.get(app.url("/x"))
        with pytest.raises(RateLimitExceeded):
            a.get(app.url("/x"))


# ---------------------------------------------------------------- Redis failing
def test_redis_killed_mid_run_fails_open_with_one_warning_and_sharing_resumes(
    app: AppServer, fleet_redis: FleetRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """Calls go on during the outage with one warning; when Redis is back, state is shared again."""
    app.ok("/x")
    settings = {
        "redis_url": fleet_redis.url,
        "rate_limit_requests": 1000,
        "rate_limit_period": 1,
        "max_retries": 0,
    }
    with (
        ConnectionManager(**settings) as cm,  # type: ignore[arg-type]
        caplog.at_level(logging.WARNING, logger="requests_connection_manager"),
    ):
        assert cm.get(app.url("/x")).status_code == 200
        fleet_redis.stop()
        for _ in range(20):
            assert cm.get(app.url("/x")).status_code == 200
        outage = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(outage) == 1
        assert cm.get_stats()["shared_state"]["healthy"] is False
        fleet_redis.start()  # same port, empty
        for _ in range(100):  # bounded: the link retries every 2 s
            cm.get(app.url("/x"))
            if cm.get_stats()["shared_state"]["healthy"]:
                break
            time.sleep(0.05)
        stats = cm.get_stats()["shared_state"]
        assert stats == {
            "enabled": True,
            "backend": "redis",
            "topology": fleet_redis.kind,
            "prefix": "rcm",
            "healthy": True,
            "subscribed": stats["subscribed"],
            "outages": 1,
        }
        assert [r for r in caplog.records if "resumed" in r.getMessage()]
        # the quota lives in Redis again (a cluster just restarted may answer a first
        # command with a redirection or TRYAGAIN: then the call goes on locally)
        assert wait_until(lambda: cm.get(app.url("/x")).ok and bool(fleet_redis.keys()), 10)


@pytest.mark.parametrize(
    "form",
    ["redis://127.0.0.1:{}/0", "redis+cluster://127.0.0.1:{}", "redis+sentinel://127.0.0.1:{}/svc"],
)
def test_unreachable_redis_at_start_is_not_fatal(
    app: AppServer, caplog: pytest.LogCaptureFixture, form: str
) -> None:
    """A manager pointed at a dead Redis (any URL form) works on local state from the first call."""
    app.ok("/x")
    with (
        caplog.at_level(logging.WARNING, logger="requests_connection_manager"),
        ConnectionManager(
            redis_url=form.format(free_port()),
            rate_limit_requests=2,
            rate_limit_period=60,
            rate_limit_max_wait=0,
        ) as cm,
    ):
        cm.get(app.url("/x"))
        cm.get(app.url("/x"))
        with pytest.raises(RateLimitExceeded):  # the local twin still limits
            cm.get(app.url("/x"))
        assert cm.get_stats()["shared_state"]["healthy"] is False
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"redis_url": "redis://x", "redis_client": object()}, ValueError, "not both"),
        ({"redis_url": "http://not-redis/"}, ValueError, "redis_url"),
        ({"redis_url": "redis+cluster://"}, ValueError, "redis_url names no host"),
        ({"redis_url": "redis+sentinel://127.0.0.1:1"}, ValueError, "service name"),
        ({"redis_url": "redis+sentinel://127.0.0.1:1/svc/x"}, ValueError, "database"),
        ({"redis_url": "redis+cluster://127.0.0.1:x"}, ValueError, "port"),
        ({"redis_url": 5}, TypeError, "redis_url"),
        ({"redis_client": object()}, TypeError, "redis_client"),
        ({"redis_url": "redis://127.0.0.1:1/0", "redis_prefix": ""}, ValueError, "redis_prefix"),
    ],
)
def test_bad_shared_state_settings(kwargs: dict[str, object], error: type, match: str) -> None:
    """Shared-state keywords are validated at construction."""
    with pytest.raises(error, match=match):
        ConnectionManager(**kwargs)  # type: ignore[arg-type]


def test_two_strategies_on_one_prefix_do_not_collide(
    app: AppServer, fleet_redis: FleetRedis
) -> None:
    """A fixed-window and a sliding-window manager on one host keep separate Redis keys."""
    app.ok("/x")
    base = {"redis_url": fleet_redis.url, "rate_limit_requests": 100, "rate_limit_period": 1}
    with (
        ConnectionManager(rate_limit_strategy="fixed-window", **base) as fixed,  # type: ignore[arg-type]
        ConnectionManager(rate_limit_strategy="sliding-window", **base) as sliding,  # type: ignore[arg-type]
    ):
        for _ in range(3):
            fixed.get(app.url("/x"))
            sliding.get(app.url("/x"))
        assert fixed.get_stats()["shared_state"]["healthy"]
        assert sliding.get_stats()["shared_state"]["healthy"]


def test_the_breaker_works_on_its_local_twin_during_an_outage(
    app: AppServer, fleet_redis: FleetRedis
) -> None:
    """With Redis gone, failures still open the breaker (locally) and refuse calls."""
    app.ok("/down", b"down", status=500)
    with ConnectionManager(
        redis_url=fleet_redis.url,
        max_retries=0,
        circuit_breaker_failure_threshold=2,
        circuit_breaker_recovery_timeout=30,
        rate_limit_requests=100,
        rate_limit_period=1,
    ) as cm:
        assert cm.get(app.url("/down")).status_code == 500  # counted in Redis
        fleet_redis.stop()
        # The local twin counts from zero: two failures in the outage open it.
        assert cm.get(app.url("/down")).status_code == 500
        assert cm.get(app.url("/down")).status_code == 500
        with pytest.raises(CircuitBreakerOpen):
            cm.get(app.url("/down"))
        assert cm.get_stats()["shared_state"]["healthy"] is False
    assert app.hits("/down") == 3


def test_a_breaker_opened_while_redis_answered_recovers_locally_in_an_outage(
    app: AppServer, fleet_redis: FleetRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """The local twin follows the shared state, so an outage keeps it open, then recovering."""
    app.ok("/svc", b"down", status=500)
    with (
        ConnectionManager(
            redis_url=fleet_redis.url,
            max_retries=0,
            circuit_breaker_failure_threshold=1,
            circuit_breaker_recovery_timeout=1,
        ) as cm,
        caplog.at_level(logging.WARNING, logger="requests_connection_manager"),
    ):
        assert cm.get(app.url("/svc")).status_code == 500  # opens, in Redis and in the twin
        fleet_redis.stop()
        with pytest.raises(CircuitBreakerOpen):
            cm.get(app.url("/svc"))  # the outage is noticed here; the twin is open too
        app.ok("/svc", b"up")
        time.sleep(2.2)  # past the recovery timeout and the link's 2 s retry interval
        assert cm.get(app.url("/svc")).status_code == 200  # the probe, on local state
        assert cm.get(app.url("/svc")).status_code == 200  # closed again
        assert cm.get_stats()["shared_state"]["outages"] == 1
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
