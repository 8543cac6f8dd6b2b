"""The Redis Cluster and Sentinel harnesses work: topology, key placement, failover."""

from __future__ import annotations

import time

import pytest
import redis
from redis.exceptions import MovedError

from tests.rediscluster import LocalRedisCluster, RedisNode
from tests.redissentinel import LocalSentinel

pytest_plugins = ["tests.conftest_redis"]
pytestmark = pytest.mark.timeout(90)


def _write_replicated(node: RedisNode, key: str, value: str) -> None:
    """SET on ``node`` itself and wait until one replica has it (so a failover keeps it)."""
    conn = node.connect(timeout=2)
    try:
        conn.set(key, value)
        assert conn.execute_command("WAIT", 1, 2000) == 1
    finally:
        conn.close()


def _eventually(call: object, seconds: float = 10.0) -> object:
    """Call ``call()`` until it stops raising a Redis error (a client rediscovering nodes)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()  # type: ignore[operator]
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# ------------------------------------------------------------------- cluster
def test_cluster_has_three_primaries_each_with_a_replica(redis_cluster: LocalRedisCluster) -> None:
    """Every node says ok, all 16384 slots are served, 3 primaries with 1 synced replica each."""
    for node in redis_cluster.nodes:
        info = redis_cluster.cluster_info(node)
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_assigned"] == "16384"
        assert info["cluster_known_nodes"] == "6"
    primaries = redis_cluster.primaries()
    assert len(primaries) == 3
    for primary in primaries:
        assert primary.info("replication")["role"] == "master"
        (replica,) = redis_cluster.replicas_of(primary)
        assert replica.info("replication")["master_link_status"] == "up"
    assert redis_cluster.url.startswith("redis+cluster://127.0.0.1:")
    assert len(redis_cluster.startup_nodes) == 6


def test_keys_land_on_the_node_primary_for_names(redis_cluster: LocalRedisCluster) -> None:
    """A key written through the cluster client is on primary_for(key), and only there."""
    client = redis_cluster.client()
    try:
        keys = [f"{{rcm:http://host-{i}:80}}:pybreaker:state" for i in range(12)]
        for key in keys:
            client.set(key, "closed")
        used = set()
        for key in keys:
            owner = redis_cluster.primary_for(key)
            used.add(owner.name)
            assert owner.command("GET", key) == b"closed"
            for other in redis_cluster.primaries():
                if other is not owner:
                    with pytest.raises(redis.ResponseError) as moved:
                        other.command("GET", key)
                    # redis-py 8 parses the redirection; 5.x leaves "MOVED <slot> <addr>"
                    assert isinstance(moved.value, MovedError) or "MOVED" in str(moved.value)
        assert len(used) > 1, "12 hash tags all on one node: slot lookup is suspect"
        # One hash tag, one slot: the breaker keys and a limiter key of a host stay together.
        tag = "{rcm:http://a:80}"
        slots = {
            redis_cluster.keyslot(k)
            for k in (f"{tag}:pybreaker:state", f"{tag}:probes", f"LIMITS:rcm/{tag}/x/1/1/second")
        }
        assert len(slots) == 1
    finally:
        client.close()


def test_killing_a_primary_promotes_its_replica_and_restart_rejoins(
    redis_cluster: LocalRedisCluster,
) -> None:
    """Kill the primary of a key: its replica takes over with the data; the dead node rejoins."""
    key = "{rcm:http://failover:80}:pybreaker:state"
    slot = redis_cluster.keyslot(key)
    old = redis_cluster.primary_for(key)
    (replica,) = redis_cluster.replicas_of(old)
    _write_replicated(old, key, "open")
    client = redis_cluster.client()
    try:
        assert client.get(key) == b"open"
        began = time.monotonic()
        redis_cluster.kill(old)
        new = redis_cluster.wait_failover(slot)
        took = time.monotonic() - began
        assert new is replica
        assert took < 15, f"failover took {took:.1f} s"
        assert _eventually(lambda: client.get(key)) == b"open"
        redis_cluster.restart(old)
        assert old.info("replication")["role"] == "slave"
        assert redis_cluster.replicas_of(new) == [old]
    finally:
        client.close()


def test_limits_accepts_the_cluster_url(redis_cluster: LocalRedisCluster) -> None:
    """``limits`` builds its cluster storage from the URL and counts hits in the cluster."""
    from limits import RateLimitItemPerMinute
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    storage = storage_from_string(redis_cluster.url)
    item = RateLimitItemPerMinute(3, namespace="rcm")
    for strategy in (FixedWindowRateLimiter(storage), MovingWindowRateLimiter(storage)):
        name = type(strategy).__name__
        assert [strategy.hit(item, "{rcm:http://a:80}", name) for _ in range(4)] == [
            True,
            True,
            True,
            False,
        ]


# ------------------------------------------------------------------- sentinel
def test_sentinel_setup_is_whole(redis_sentinel: LocalSentinel) -> None:
    """Three sentinels agree on the primary; the client from master_for reaches it."""
    primary = redis_sentinel.primary
    assert set(redis_sentinel.primary_port_per_sentinel().values()) == {primary.port}
    client = redis_sentinel.client()
    try:
        client.set("k", "v")
        assert primary.command("GET", "k") == b"v"
    finally:
        client.close()
    assert redis_sentinel.url.startswith("redis+sentinel://127.0.0.1:")
    assert redis_sentinel.url.endswith(f"/{redis_sentinel.service}")


def test_sentinel_failover_promotes_the_replica(redis_sentinel: LocalSentinel) -> None:
    """Kill the primary: the sentinels promote the replica; the same client follows it."""
    old = redis_sentinel.primary
    (replica,) = [node for node in redis_sentinel.data_nodes if node is not old]
    _write_replicated(old, "k", "v")
    client = redis_sentinel.client()
    try:
        assert client.get("k") == b"v"
        began = time.monotonic()
        assert redis_sentinel.kill_primary() is old
        new = redis_sentinel.wait_failover()
        took = time.monotonic() - began
        assert new is replica
        assert took < 20, f"failover took {took:.1f} s"
        assert _eventually(lambda: client.get("k")) == b"v"
        assert _eventually(lambda: client.set("k2", "v2"))
        assert new.command("GET", "k2") == b"v2"
    finally:
        client.close()


def test_limits_accepts_the_sentinel_url(redis_sentinel: LocalSentinel) -> None:
    """``limits`` builds its sentinel storage from the URL and counts hits on the primary."""
    from limits import RateLimitItemPerMinute
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter

    storage = storage_from_string(redis_sentinel.url, socket_timeout=1)
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerMinute(2, namespace="rcm")
    assert [limiter.hit(item, "host") for _ in range(3)] == [True, True, False]
