"""High availability: a Redis Cluster or a Sentinel-managed primary loses its primary mid-run.

Calls go on through the failover on local state (fail-open), with one
``SharedStateChanged(healthy=False)`` for the outage and nothing raised outside the
exception contract; sharing resumes once the replica is promoted. Run with a URL and with
the user's own client (``RedisCluster`` / ``Sentinel(...).master_for(...)``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Callable

import pytest

from requests_connection_manager import (
    ConnectionManager,
    ConnectionManagerError,
    RateLimitExceeded,
)
from requests_connection_manager.events import SharedStateChanged
from tests.rediscluster import LocalRedisCluster
from tests.redisfleet import wait_until
from tests.redissentinel import LocalSentinel
from tests.servers import AppServer

pytest_plugins = ["tests.conftest_redis"]
pytestmark = pytest.mark.timeout(90)


class _Traffic:
    """Calls ``url`` in a loop on one thread; counts outcomes; records shared-state events."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outcomes: Counter[str] = Counter()
        self.events: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(None,))

    def on_event(self, event: Any) -> None:
        if isinstance(event, SharedStateChanged):
            self.events.append((time.monotonic(), event.healthy))

    def start(self, cm: ConnectionManager) -> None:
        self._thread = threading.Thread(target=self._run, args=(cm,))
        self._thread.start()

    def _run(self, cm: Any) -> None:
        while not self._stop.is_set():
            try:
                self.outcomes[str(cm.get(self.url).status_code)] += 1
            except ConnectionManagerError as exc:
                self.outcomes[type(exc).__name__] += 1
            except Exception as exc:
                self.outcomes[f"ESCAPED {type(exc).__name__}: {exc}"] += 1
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def healthy_after(self, moment: float) -> bool:
        return any(ok and at > moment for at, ok in self.events)


def _through_failover(
    app: AppServer,
    settings: dict[str, Any],
    kill: Callable[[str], None],
    wait_failover: Callable[[], None],
) -> None:
    app.ok("/x")
    traffic = _Traffic(app.url("/x"))
    host = f"http://127.0.0.1:{app.port}"
    with ConnectionManager(
        **settings, rate_limit_requests=10**6, rate_limit_period=1, on_event=traffic.on_event
    ) as cm:
        traffic.start(cm)
        try:
            assert wait_until(lambda: traffic.outcomes["200"] > 20, seconds=10)
            killed = time.monotonic()
            kill(f"{{rcm:{host}}}:br")
            wait_failover()
            assert wait_until(lambda: traffic.healthy_after(killed), seconds=20)
            served = traffic.outcomes["200"]
            assert wait_until(lambda: traffic.outcomes["200"] > served + 20, seconds=10)
        finally:
            traffic.stop()
    assert set(traffic.outcomes) == {"200"}, traffic.outcomes  # nothing raised at all
    assert [ok for _, ok in traffic.events] == [False, True]  # one outage, one recovery
    # sharing resumed: two managers draw from one quota in the failed-over slot
    quota = {**settings, "rate_limit_requests": 2, "rate_limit_period": 60}
    with (
        ConnectionManager(**quota, rate_limit_max_wait=0) as one,
        ConnectionManager(**quota, rate_limit_max_wait=0) as two,
    ):
        assert one.get(app.url("/x")).status_code == 200
        assert two.get(app.url("/x")).status_code == 200
        with pytest.raises(RateLimitExceeded):
            one.get(app.url("/x"))


@pytest.mark.parametrize("given", ["redis_url", "redis_client"])
def test_cluster_primary_killed(
    app: AppServer, redis_cluster: LocalRedisCluster, given: str
) -> None:
    """The primary of the host's slot is SIGKILLed: fail open, then share again once promoted."""
    client = redis_cluster.client(timeout=0.25) if given == "redis_client" else None
    settings = {"redis_client": client} if client is not None else {"redis_url": redis_cluster.url}
    slot: list[int] = []

    def kill(key: str) -> None:
        slot.append(redis_cluster.keyslot(key))
        redis_cluster.kill(redis_cluster.primary_for(key))

    try:
        _through_failover(app, settings, kill, lambda: redis_cluster.wait_failover(slot[0]))
    finally:
        if client is not None:
            client.close()


@pytest.mark.parametrize("given", ["redis_url", "redis_client"])
def test_sentinel_primary_killed(app: AppServer, redis_sentinel: LocalSentinel, given: str) -> None:
    """The sentinels' primary is SIGKILLed: fail open, then share again with the new one."""
    client = redis_sentinel.client(timeout=0.25) if given == "redis_client" else None
    hosts = ",".join(f"127.0.0.1:{node.port}" for node in redis_sentinel.sentinel_nodes)
    url = f"redis+sentinel://{hosts}/{redis_sentinel.service}"
    settings = {"redis_client": client} if client is not None else {"redis_url": url}
    try:
        _through_failover(
            app, settings, lambda key: redis_sentinel.kill_primary(), redis_sentinel.wait_failover
        )
    finally:
        if client is not None:
            client.close()


def test_sentinel_shares_a_breaker_and_reports_its_topology(
    app: AppServer, redis_sentinel: LocalSentinel
) -> None:
    """Through Sentinel, a breaker opened by one manager refuses calls in another."""
    app.ok("/down", b"down", status=500)
    hosts = ",".join(f"127.0.0.1:{node.port}" for node in redis_sentinel.sentinel_nodes)
    settings: dict[str, Any] = {
        "redis_url": f"redis+sentinel://{hosts}/{redis_sentinel.service}",
        "max_retries": 0,
        "circuit_breaker_failure_threshold": 2,
    }
    with ConnectionManager(**settings) as a, ConnectionManager(**settings) as b:
        assert b.get(app.url("/down")).status_code == 500
        assert a.get(app.url("/down")).status_code == 500
        assert wait_until(
            lambda: (
                b.get_stats()["hosts"][f"http://127.0.0.1:{app.port}"]["breaker_state"] == "open"
            )
        )
        status = b.get_stats()["shared_state"]
        assert status["topology"] == "sentinel"
        assert status["subscribed"]
    assert app.hits("/down") == 2
