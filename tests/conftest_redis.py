"""Fixtures for the high-availability Redis harnesses: a Redis Cluster and a Sentinel setup.

Test modules that use them declare ``pytest_plugins = ["tests.conftest_redis"]``.

Each setup is started once per session (a cluster takes about 2 s, a sentinel setup about
1 s) and handed to each test healed and empty: the function-scoped fixtures restart any
node a previous test killed, wait until every replica is synced again, and delete every
key. A test may therefore kill nodes freely; it must not change the configuration.

``fleet_redis`` runs a test twice: on a fresh single ``redis-server`` and on the session's
cluster, through one interface (:class:`~tests.redisfleet.FleetRedis`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rediscluster import LocalRedisCluster
from tests.redisfleet import FleetRedis
from tests.redissentinel import LocalSentinel
from tests.redisserver import RedisServer


@pytest.fixture(scope="session")
def redis_cluster_session() -> Iterator[LocalRedisCluster]:
    """One local Redis Cluster (3 primaries + 3 replicas) for the whole session."""
    with LocalRedisCluster() as cluster:
        yield cluster


@pytest.fixture
def redis_cluster(redis_cluster_session: LocalRedisCluster) -> LocalRedisCluster:
    """The session's cluster, whole again (dead nodes restarted) and without keys."""
    redis_cluster_session.heal()
    redis_cluster_session.flushall()
    return redis_cluster_session


@pytest.fixture(scope="session")
def redis_sentinel_session() -> Iterator[LocalSentinel]:
    """One primary + replica + 3 sentinels for the whole session."""
    with LocalSentinel() as setup:
        yield setup


@pytest.fixture
def redis_sentinel(redis_sentinel_session: LocalSentinel) -> LocalSentinel:
    """The session's sentinel setup, whole again (a replica for the primary) and empty."""
    redis_sentinel_session.heal()
    redis_sentinel_session.flushall()
    return redis_sentinel_session


@pytest.fixture(params=["single", "cluster"])
def fleet_redis(request: pytest.FixtureRequest) -> Iterator[FleetRedis]:
    """A fresh single redis-server, or the session's cluster healed and empty."""
    if request.param == "single":
        with RedisServer() as server:
            yield FleetRedis("single", single=server)
        return
    cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
    yield FleetRedis("cluster", cluster=cluster)
