"""Shared state when Redis misbehaves: slow, flushed, restarted, locked down; long probes.

A slow Redis is put behind a delaying TCP proxy (:mod:`tests.delayproxy`) in front of a real
``redis-server``; passwords and ACL users are set on a real server with ``CONFIG SET`` and
``ACL SETUSER``. Nothing here asserts on a stopwatch: calls either keep to their deadline
(or raise ``Timeout``), commands are counted, propagation is awaited with bounded waits.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from werkzeug import Request, Response

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    ConnectionManagerError,
    RateLimitExceeded,
    _fleet_host,
)
from requests_connection_manager.events import SharedStateChanged
from tests.delayproxy import DelayProxy
from tests.redisfleet import FleetRedis, breaker_state, wait_until
from tests.redisserver import RedisServer
from tests.servers import AppServer

pytest_plugins = ["tests.conftest_redis"]
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server on a free loopback port."""
    with RedisServer() as server:
        yield server


def _shared_events() -> tuple[list[SharedStateChanged], Any]:
    events: list[SharedStateChanged] = []

    def on_event(event: Any) -> None:
        if isinstance(event, SharedStateChanged):
            events.append(event)

    return events, on_event


# --------------------------------------------------------------------- a slow Redis
def test_a_slow_redis_is_an_unhealthy_one(app: AppServer, redis_server: RedisServer) -> None:
    """0.2 s per command (under the 0.25 s timeout): two slow answers fail over to local state.

    Each call keeps to its 1 s deadline (five or six round trips per call would take more);
    the calls' path stops sending to Redis; health checks go on in the background and
    sharing resumes once Redis answers in time again. One event per outage.
    """
    app.ok("/x")
    events, on_event = _shared_events()
    with (
        DelayProxy(redis_server.port) as proxy,
        ConnectionManager(
            redis_url=proxy.url,
            total_timeout=1.0,
            max_retries=0,
            rate_limit_requests=30,  # under 32: never leased, every permit asks Redis
            rate_limit_period=1,
            on_event=on_event,
        ) as cm,
    ):
        for _ in range(3):
            assert cm.get(app.url("/x")).status_code == 200
        proxy.delay = 0.2
        before = proxy.commands()["EVALSHA"]
        for _ in range(10):
            assert cm.get(app.url("/x")).status_code == 200  # no Timeout: within 1 s
        assert [e.healthy for e in events] == [False]
        assert events[0].cause == "SlowRedis"
        assert cm.get_stats()["shared_state"]["healthy"] is False
        assert proxy.commands()["EVALSHA"] - before <= 3  # the two slow strikes (+ a batch)
        proxy.delay = 0.0
        assert wait_until(lambda: cm.get_stats()["shared_state"]["healthy"], seconds=5)
        assert [e.healthy for e in events] == [False, True]


# ------------------------------------------------------------- the half-open bound
def _slow_then_ok(app: AppServer, path: str, gate: threading.Event) -> threading.Event:
    inside = threading.Event()

    def handler(request: Request) -> Response:
        inside.set()
        gate.wait(20)
        return Response("ok")

    app.route(path, handler)
    return inside


@pytest.fixture
def short_leases(monkeypatch: pytest.MonkeyPatch) -> float:
    """Probe leases of 0.5 s (renewed every 1/6 s), so a probe outlives several of them."""
    monkeypatch.setattr(_fleet_host, "LEASE_SECONDS", 0.5)
    return 0.5


def _open(app: AppServer, cm: ConnectionManager, path: str) -> float:
    app.ok(path, b"down", status=500)
    assert cm.get(app.url(path)).status_code == 500
    with pytest.raises(CircuitBreakerOpen) as info:
        cm.get(app.url(path))
    return info.value.retry_after or 0.0


def test_the_probe_bound_holds_however_long_the_probe(
    app: AppServer, fleet_redis: FleetRedis, short_leases: float
) -> None:
    """A probe lasting 4 leases and 10 recovery timeouts: no other probe, no lease lost."""
    settings: dict[str, Any] = {
        "redis_url": fleet_redis.url,
        "max_retries": 0,
        "circuit_breaker_failure_threshold": 1,
        "circuit_breaker_recovery_timeout": 0.2,
    }
    gate = threading.Event()
    client = fleet_redis.client()
    with ConnectionManager(**settings) as a, ConnectionManager(**settings) as b:
        time.sleep(_open(app, a, "/svc") + 0.05)
        inside = _slow_then_ok(app, "/svc", gate)
        probe = threading.Thread(target=a.get, args=(app.url("/svc"),))
        probe.start()
        try:
            assert inside.wait(10)
            probes = f"{{rcm:http://127.0.0.1:{app.port}}}:probes"
            refused = 0
            deadline = time.monotonic() + 4 * short_leases
            while time.monotonic() < deadline:
                with pytest.raises(CircuitBreakerOpen):
                    b.get(app.url("/svc"))
                refused += 1
                assert client.zcard(probes) == 1  # the one lease, never more, never fewer
                assert client.pttl(probes) > 0  # and it expires if its holder dies
                time.sleep(0.05)
        finally:
            gate.set()
            probe.join(10)
        assert refused > 10
        assert app.hits("/svc") == 2  # the tripping call and the one probe
        assert wait_until(lambda: breaker_state(b, app.url("/svc")) == "closed")
        assert b.get(app.url("/svc")).status_code == 200
        assert client.zcard(probes) == 0
    client.close()


def test_a_stalled_probe_holder_frees_its_lease_and_cannot_decide_late(
    app: AppServer, fleet_redis: FleetRedis, short_leases: float
) -> None:
    """A stalled prober (a dead process) renews nothing: B probes after a lease; A is void."""
    settings: dict[str, Any] = {
        "redis_url": fleet_redis.url,
        "max_retries": 0,
        "circuit_breaker_failure_threshold": 1,
        "circuit_breaker_recovery_timeout": 0.2,
    }
    gate = threading.Event()
    with ConnectionManager(**settings) as a, ConnectionManager(**settings) as b:
        time.sleep(_open(app, a, "/svc") + 0.05)
        inside = _slow_then_ok(app, "/svc", gate)
        link = a._engine.shared
        assert link is not None
        link._ticker.stop()  # A renews nothing from now on
        probe = threading.Thread(target=a.get, args=(app.url("/svc"),))
        probe.start()
        try:
            assert inside.wait(10)
            app.ok("/svc", b"down", status=500)  # B's probe, once the lease is gone
            assert wait_until(lambda: _probe_ran(b, app.url("/svc")), seconds=5)
        finally:
            gate.set()
            probe.join(10)
        assert app.hits("/svc") == 3  # the trip, A's stalled probe, B's probe
        # B's probe failed and opened it again; A's late success did not close it
        assert breaker_state(b, app.url("/svc")) == "open"
        assert wait_until(lambda: breaker_state(a, app.url("/svc")) == "open")


def _probe_ran(cm: ConnectionManager, url: str) -> bool:
    try:
        return cm.get(url).status_code == 500
    except CircuitBreakerOpen:
        return False


# -------------------------------------------------------- passwords and ACL users
@pytest.mark.parametrize("password", [None, "wrong"])
def test_a_refused_password_is_a_configuration_error(
    redis_server: RedisServer, password: Any
) -> None:
    """No password or a wrong one: ValueError naming redis_url and the cause, at construction."""
    admin = redis.Redis(port=redis_server.port)
    admin.config_set("requirepass", "s3cret")
    admin.close()
    url = (
        redis_server.url
        if password is None
        else f"redis://:{password}@127.0.0.1:{redis_server.port}/0"
    )
    with pytest.raises(ValueError, match=r"redis_url: Redis refused .*AuthenticationError"):
        ConnectionManager(redis_url=url)
    good = f"redis://:s3cret@127.0.0.1:{redis_server.port}/0"
    with ConnectionManager(redis_url=good) as cm:
        assert cm.get_stats()["shared_state"]["healthy"]


@pytest.mark.parametrize(
    ("rules", "missing"),
    [
        (["+@all", "-evalsha"], "evalsha"),
        (["+@all", "-publish"], "publish"),
        (["+@all", "resetchannels"], "channels"),
        (["+@all", "resetkeys", "~other:*"], "keys"),
        (["+@all", "-subscribe"], "subscribe"),
    ],
    ids=["no-evalsha", "no-publish", "no-channels", "other-keys", "no-subscribe"],
)
def test_an_acl_user_without_what_is_needed_is_a_configuration_error(
    redis_server: RedisServer, rules: list[str], missing: str
) -> None:
    """An ACL user lacking a command, the channel or the key pattern: ValueError at construction."""
    admin = redis.Redis(port=redis_server.port)
    admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", *rules)
    admin.close()
    client = redis.Redis(port=redis_server.port, username="app", password="pw")
    try:
        with pytest.raises(ValueError, match=r"redis_client: Redis refused") as info:
            ConnectionManager(redis_client=client)
        assert "EVAL, EVALSHA, PUBLISH and SUBSCRIBE" in str(info.value)
    finally:
        client.close()


def test_an_acl_user_with_what_is_needed_works(app: AppServer, redis_server: RedisServer) -> None:
    """The least a user needs: the scripts' commands on '{prefix:*' keys and the channel."""
    app.ok("/x")
    admin = redis.Redis(port=redis_server.port)
    admin.execute_command(
        "ACL", "SETUSER", "app", "on", ">pw", "resetkeys", "~{rcm:*", "resetchannels",
        "&rcm:rcm:events", "+@scripting", "+@hash", "+@sortedset", "+del", "+pexpire",
        "+pttl", "+time", "+publish", "+subscribe", "+ping", "+hello", "+client",
    )  # fmt: skip
    admin.close()
    url = f"redis://app:pw@127.0.0.1:{redis_server.port}/0"
    with ConnectionManager(redis_url=url, rate_limit_requests=5, rate_limit_period=60) as cm:
        assert cm.get(app.url("/x")).status_code == 200
        assert cm.get_stats()["shared_state"]["healthy"]
        assert wait_until(lambda: cm.get_stats()["shared_state"]["subscribed"])


# ------------------------------------------------------- flushed, then restarted
def test_flushall_and_a_restart_mid_run(
    app: AppServer, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """FLUSHALL, then a restart: calls go on, nothing escapes the contract, sharing recovers."""
    app.ok("/x")
    app.ok("/down", b"down", status=500)
    settings: dict[str, Any] = {
        "redis_url": redis_server.url,
        "max_retries": 0,
        "rate_limit_requests": 3,
        "rate_limit_period": 60,
        "rate_limit_max_wait": 0,
        "circuit_breaker_failure_threshold": 2,
    }
    escaped: list[BaseException] = []

    def call(cm: ConnectionManager, path: str) -> Any:
        try:
            return cm.get(app.url(path)).status_code
        except ConnectionManagerError as exc:
            return type(exc).__name__
        except Exception as exc:
            escaped.append(exc)
            return "escaped"

    with (
        caplog.at_level(logging.WARNING, logger="requests_connection_manager"),
        ConnectionManager(**settings) as a,
        ConnectionManager(**settings) as b,
    ):
        assert [call(a, "/x"), call(b, "/x"), call(a, "/x"), call(b, "/x")] == [
            200, 200, 200, "RateLimitExceeded",
        ]  # fmt: skip
        admin = redis.Redis(port=redis_server.port)
        admin.flushall()
        admin.close()
        # a fresh quota, still shared; the breaker still opens for both
        assert [call(a, "/x"), call(b, "/x"), call(a, "/x"), call(b, "/x")] == [
            200, 200, 200, "RateLimitExceeded",
        ]  # fmt: skip
        redis_server.stop()
        redis_server.start()
        assert wait_until(lambda: _healthy(a) and _healthy(b) and call(a, "/x") == 200, 10)
        assert wait_until(lambda: _subscribed(a) and _subscribed(b), 5)
        down = f"http://localhost:{app.port}/down"  # another host key: its own quota
        for cm in (a, b):
            with contextlib.suppress(ConnectionManagerError):
                cm.get(down)
        assert wait_until(lambda: breaker_state(a, down) == "open")
        with pytest.raises(CircuitBreakerOpen):
            a.get(down)
        b.get(app.url("/x"))
        b.get(app.url("/x"))
        with pytest.raises(RateLimitExceeded):  # the quota is shared again: A took one
            b.get(app.url("/x"))
    assert escaped == []
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) <= 2


def _healthy(cm: ConnectionManager) -> bool:
    return bool(cm.get_stats()["shared_state"]["healthy"])


def _subscribed(cm: ConnectionManager) -> bool:
    return bool(cm.get_stats()["shared_state"]["subscribed"])
