"""The Redis of a fleet test, one node or a cluster, behind one interface."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Callable, Optional

import redis
from redis.cluster import RedisCluster

from tests.rediscluster import LocalRedisCluster
from tests.redisserver import RedisServer

__all__ = [
    "CountingCluster",
    "CountingRedis",
    "FleetRedis",
    "Sent",
    "breaker_state",
    "script_calls",
    "wait_until",
]


def wait_until(condition: Callable[[], bool], seconds: float = 2.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def hour_quota(redis_url: str, strategy: str) -> dict[str, Any]:
    """Manager keywords: a shared quota of 64 an hour that fails fast (``max_wait`` 0).

    An hour: a fixed window's edge, aligned to Redis's clock, is not crossed mid-test.
    """
    return {
        "redis_url": redis_url,
        "max_retries": 0,
        "rate_limit_requests": 64,
        "rate_limit_period": 3600,
        "rate_limit_strategy": strategy,
        "rate_limit_max_wait": 0,
    }


def breaker_state(cm: Any, url: str) -> str:
    """The breaker state the manager ``cm`` holds for ``url``'s host."""
    key = "http://" + url.split("/")[2]
    host = cm.get_stats()["hosts"].get(key)
    return "unknown" if host is None else str(host["breaker_state"])


def script_calls(ports: list[int]) -> int:
    """``EVALSHA`` + ``EVAL`` run so far on the nodes at ``ports`` (``INFO commandstats``)."""
    total = 0
    for port in ports:
        node = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
        try:
            stats = node.info("commandstats")
        finally:
            node.close()
        total += sum(
            int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
        )
    return total


class Sent:
    """Commands a client sent (one round trip each), by the thread that sent them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def record(self, command: Any) -> None:
        """Count one command sent by the current thread."""
        name = command.decode() if isinstance(command, bytes) else str(command)
        with self._lock:
            self._counts[(threading.current_thread().name, name.upper())] += 1

    def by(self, thread: str) -> int:
        """Commands sent by the thread named ``thread``."""
        with self._lock:
            return sum(n for (who, _), n in self._counts.items() if who == thread)

    def commands(self, thread: str) -> Counter[str]:
        """The commands the thread named ``thread`` sent, by name."""
        with self._lock:
            return Counter({name: n for (who, name), n in self._counts.items() if who == thread})

    def everywhere(self, name: str) -> int:
        """How many times any thread sent the command ``name``."""
        with self._lock:
            return sum(n for (_, command), n in self._counts.items() if command == name)

    def reset(self) -> None:
        """Forget what was counted."""
        with self._lock:
            self._counts.clear()


class CountingRedis(redis.Redis):
    """A ``redis.Redis`` that counts what it sends (``.sent``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent = Sent()
        super().__init__(*args, **kwargs)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Count, then send."""
        self.sent.record(args[0])
        return super().execute_command(*args, **options)


class CountingCluster(RedisCluster):
    """A ``RedisCluster`` that counts what it sends (``.sent``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent = Sent()
        super().__init__(*args, **kwargs)

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Count, then send."""
        self.sent.record(args[0])
        return super().execute_command(*args, **kwargs)


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

    def counting_client(self, timeout: float = 1.0) -> Any:
        """A new client that counts the commands it sends in ``.sent`` (close it)."""
        client: Any
        if self._cluster is not None:
            client = CountingCluster(
                startup_nodes=self._cluster.startup_nodes,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
        else:
            client = CountingRedis.from_url(self.url, socket_timeout=timeout)
        return client

    def ports(self) -> list[int]:
        """The ports of the nodes that hold data (the primaries)."""
        if self._cluster is not None:
            return [node.port for node in self._cluster.primaries()]
        assert self._single is not None
        return [self._single.port]

    def all_ports(self) -> list[int]:
        """The ports of every node (replicas included)."""
        if self._cluster is not None:
            return [node.port for node in self._cluster.nodes if node.alive]
        return self.ports()

    def node_client(self, port: int) -> redis.Redis:
        """A plain client to the one node at ``port`` (close it)."""
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)

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
