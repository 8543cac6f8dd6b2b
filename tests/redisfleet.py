"""The Redis of a fleet test, one node or a cluster, behind one interface."""

from __future__ import annotations

from typing import Any, Optional

import redis

from tests.rediscluster import LocalRedisCluster
from tests.redisserver import RedisServer

__all__ = ["FleetRedis"]


class FleetRedis:
    """The Redis of a fleet test, one node or a cluster, behind one interface.

    Args:
        kind: ``"single"`` or ``"cluster"``.
        single: The server (single).
        cluster: The cluster (cluster).
    """

    def __init__(
        self,
        kind: str,
        single: Optional[RedisServer] = None,
        cluster: Optional[LocalRedisCluster] = None,
    ) -> None:
        self.kind = kind
        self._single = single
        self._cluster = cluster

    @property
    def url(self) -> str:
        """``redis://...`` or ``redis+cluster://...``."""
        if self._cluster is not None:
            return self._cluster.url
        assert self._single is not None
        return self._single.url

    def client(self, timeout: float = 1.0) -> Any:
        """A new ``redis.Redis`` or ``RedisCluster`` (close it)."""
        if self._cluster is not None:
            return self._cluster.client(timeout=timeout)
        return redis.Redis.from_url(self.url, socket_timeout=timeout)

    def ports(self) -> list[int]:
        """The ports of the nodes that hold data (the primaries)."""
        if self._cluster is not None:
            return [node.port for node in self._cluster.primaries()]
        assert self._single is not None
        return [self._single.port]

    def stop(self) -> None:
        """Kill every node (an outage as clients see it)."""
        if self._cluster is not None:
            for node in self._cluster.nodes:
                node.kill()
        else:
            assert self._single is not None
            self._single.stop()

    def start(self) -> None:
        """Start every node again (empty) and wait until it serves."""
        if self._cluster is not None:
            self._cluster.heal()
        else:
            assert self._single is not None
            self._single.start()

    def keys(self, pattern: str = "*") -> set[str]:
        """Every key matching ``pattern``, on every primary."""
        found: set[str] = set()
        for port in self.ports():
            node = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
            try:
                found |= {k.decode() for k in node.keys(pattern)}
            finally:
                node.close()
        return found
