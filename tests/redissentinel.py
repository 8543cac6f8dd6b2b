"""A real local Redis Sentinel setup on loopback: 1 primary, 1 replica, 3 sentinels.

The data nodes are ``redis-server`` without persistence; the sentinels are
``redis-server <conf> --sentinel`` (no ``redis-sentinel`` binary needed, Debian's
``redis-server`` package is enough), each with its own config file in a temporary directory
(Sentinel rewrites it). Failure detection and failover are tuned for tests:
``down-after-milliseconds`` 500 and ``failover-timeout`` 2000 by default. The sentinels
know each other and the replica from their config files (``sentinel myid`` /
``known-sentinel`` / ``known-replica``), so a failover can start as soon as the setup is up,
without waiting for Sentinel's hello messages to discover everyone.

Example::

    with LocalSentinel() as setup:
        client = setup.client()
        client.set("k", "v")
        setup.kill_primary()
        new_primary = setup.wait_failover()
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import redis

from tests.rediscluster import HOST, RedisNode, RedisProcessError, _pairs, _text
from tests.servers import free_port

if TYPE_CHECKING:
    from types import TracebackType

    from redis.sentinel import Sentinel

__all__ = ["LocalSentinel"]

#: Bound on starting the processes and the sentinels agreeing, seconds.
START_TIMEOUT = 30.0
#: Bound on a failover, seconds.
FAILOVER_TIMEOUT = 30.0
SERVICE = "rcm-primary"
_POLL = 0.05


class LocalSentinel:
    """One primary, one replica and three sentinels watching them (quorum 2).

    Args:
        service: The name the sentinels monitor the primary under.
        down_after_ms: ``sentinel down-after-milliseconds``.
        failover_timeout_ms: ``sentinel failover-timeout``.
        sentinels: How many sentinels (3: a majority survives one loss).
    """

    def __init__(
        self,
        service: str = SERVICE,
        down_after_ms: int = 500,
        failover_timeout_ms: int = 2000,
        sentinels: int = 3,
    ) -> None:
        self.service = service
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.sentinel_count = sentinels
        self.data_nodes: list[RedisNode] = []
        self.sentinel_nodes: list[RedisNode] = []
        self._tmp: Optional[str] = None
        self._killed: Optional[RedisNode] = None
        #: Seconds the last :meth:`start` took, for reports.
        self.start_seconds = 0.0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalSentinel:
        """Start the primary, the replica and the sentinels; wait until all is in place."""
        if self.data_nodes:
            raise RedisProcessError("already started")
        began = time.monotonic()
        deadline = began + START_TIMEOUT
        self._tmp = tempfile.mkdtemp(prefix="rcm-sentinel-")
        workdir = Path(self._tmp)
        try:
            primary_port, replica_port = free_port(), free_port()
            primary = RedisNode(primary_port, self._data_args(primary_port, workdir), workdir, "p0")
            replica = RedisNode(replica_port, self._data_args(replica_port, workdir), workdir, "r0")
            self.data_nodes = [primary, replica]
            primary.start()
            replica.start(["--replicaof", HOST, str(primary_port)])
            ports = [free_port() for _ in range(self.sentinel_count)]
            ids = [secrets.token_hex(20) for _ in ports]
            for index, port in enumerate(ports):
                conf = workdir / f"sentinel-{port}.conf"
                others = [(p, i) for p, i in zip(ports, ids) if p != port]
                conf.write_text(
                    self._sentinel_conf(port, ids[index], primary_port, replica_port, others)
                )
                self.sentinel_nodes.append(
                    RedisNode(port, [str(conf), "--sentinel"], workdir, f"s{index}")
                )
            for node in self.sentinel_nodes:
                node.start()
            for node in [*self.data_nodes, *self.sentinel_nodes]:
                node.wait_ready(deadline)
            self.wait_healthy(deadline - time.monotonic())
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    @staticmethod
    def _data_args(port: int, workdir: Path) -> list[str]:
        return [
            "--port", str(port),
            "--bind", HOST,
            "--dir", str(workdir),
            "--save", "",
            "--appendonly", "no",
            "--repl-diskless-sync-delay", "0",
            "--protected-mode", "yes",
        ]  # fmt: skip

    def _sentinel_conf(
        self,
        port: int,
        my_id: str,
        primary_port: int,
        replica_port: int,
        others: list[tuple[int, str]],
    ) -> str:
        svc = self.service
        lines = [
            f"port {port}",
            f"bind {HOST}",
            "daemonize no",
            f"dir {self._tmp}",
            f"sentinel myid {my_id}",
            f"sentinel monitor {svc} {HOST} {primary_port} 2",
            f"sentinel down-after-milliseconds {svc} {self.down_after_ms}",
            f"sentinel failover-timeout {svc} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {svc} 1",
            f"sentinel known-replica {svc} {HOST} {replica_port}",
            *(f"sentinel known-sentinel {svc} {HOST} {p} {i}" for p, i in others),
        ]
        return "\n".join(lines) + "\n"

    def stop(self) -> None:
        """Kill every process and delete the working directory."""
        for node in [*self.sentinel_nodes, *self.data_nodes]:
            node.kill()
        self.sentinel_nodes = []
        self.data_nodes = []
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> LocalSentinel:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses
    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every sentinel, as ``redis.sentinel.Sentinel`` takes them."""
        return [(HOST, node.port) for node in self.sentinel_nodes]

    @property
    def url(self) -> str:
        """The storage URL ``limits`` accepts: ``redis+sentinel://h:s1,h:s2,h:s3/<service>``."""
        hosts = ",".join(node.address for node in self.sentinel_nodes)
        return f"redis+sentinel://{hosts}/{self.service}"

    def sentinel(self, timeout: float = 1.0, **kwargs: Any) -> Sentinel:
        """A ``redis.sentinel.Sentinel`` over the three sentinels, with short timeouts."""
        from redis.sentinel import Sentinel

        return Sentinel(
            self.sentinels,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
            **kwargs,
        )

    def client(self, timeout: float = 1.0, **kwargs: Any) -> redis.Redis:
        """``Sentinel(...).master_for(service)``: a client that follows the primary."""
        return self.sentinel(timeout).master_for(
            self.service, socket_timeout=timeout, socket_connect_timeout=timeout, **kwargs
        )

    def node(self, port: int) -> RedisNode:
        """The data node on ``port``."""
        for node in self.data_nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    # ------------------------------------------------------------------ topology
    def _sentinel_view(self, node: RedisNode) -> dict[str, Any]:
        return _pairs(node.command("SENTINEL", "MASTER", self.service))

    def primary_port_per_sentinel(self) -> dict[str, Optional[int]]:
        """The primary's port as each live sentinel reports it (``None``: no answer)."""
        view: dict[str, Optional[int]] = {}
        for node in self.sentinel_nodes:
            try:
                reply = node.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
                view[node.name] = int(reply[1])
            except (redis.RedisError, TypeError, IndexError):
                view[node.name] = None
        return view

    @property
    def primary(self) -> RedisNode:
        """The primary the sentinels agree on (a majority of them)."""
        ports = [p for p in self.primary_port_per_sentinel().values() if p is not None]
        for port in set(ports):
            if ports.count(port) * 2 > self.sentinel_count:
                return self.node(port)
        raise RedisProcessError(f"sentinels disagree about the primary: {ports}")

    # ------------------------------------------------------------------ failures
    def kill_primary(self) -> RedisNode:
        """SIGKILL the current primary; return it (for :meth:`restart`)."""
        victim = self.primary
        victim.kill()
        self._killed = victim
        return victim

    def wait_failover(self, timeout: float = FAILOVER_TIMEOUT) -> RedisNode:
        """Wait (bounded) until the failover is over and every sentinel agrees on its result.

        Over means: every sentinel names the same live primary, that node says it is a
        master, and every sentinel's flags for it are plain ``master`` (no
        ``failover_in_progress``, ``s_down`` or ``disconnected``). Returning earlier, while
        the leader still reconfigures, lets a sentinel whose link to the new primary is
        not up yet declare *it* down and fail over a second time.

        Returns:
            The new primary.
        """
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            try:
                ports = set(self.primary_port_per_sentinel().values())
                if len(ports) == 1 and None not in ports:
                    node = self.node(ports.pop())  # type: ignore[arg-type]
                    flags = {
                        _text(self._sentinel_view(s).get("flags")) for s in self.sentinel_nodes
                    }
                    if (
                        node.alive
                        and node.info("replication").get("role") == "master"
                        and flags == {"master"}
                    ):
                        return node
                    last = f"primary {node.name}, sentinel flags {flags}"
                else:
                    last = f"sentinels report {ports}"
            except (redis.RedisError, RedisProcessError, KeyError) as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n.name}\n{n.log_tail(8)}" for n in self.sentinel_nodes)
                raise RedisProcessError(f"no failover within {timeout} s: {last}\n{tails}")
            time.sleep(_POLL)

    def restart(self, node: RedisNode, timeout: float = START_TIMEOUT) -> None:
        """Start a killed data node again, as a replica of the current primary; wait healthy."""
        deadline = time.monotonic() + timeout
        primary = self.primary
        extra = [] if node is primary else ["--replicaof", HOST, str(primary.port)]
        node.start(extra)
        node.wait_ready(deadline)
        self.wait_healthy(deadline - time.monotonic())

    def heal(self, timeout: float = START_TIMEOUT) -> None:
        """Restart dead sentinels and data nodes (as replicas); wait until all is in place."""
        deadline = time.monotonic() + timeout
        for node in self.sentinel_nodes:
            if not node.alive:
                node.start()
        if any(not node.alive for node in self.data_nodes):
            self.wait_failover(deadline - time.monotonic())
            for node in self.data_nodes:
                if not node.alive:
                    self.restart(node, deadline - time.monotonic())
        self.wait_healthy(deadline - time.monotonic())

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Wait (bounded) until every sentinel sees the primary, its replica and the others.

        That is: one primary named by all sentinels; the replica's link is up; each
        sentinel counts ``sentinels - 1`` others and at least one replica that is not down and
        that it has seen (``INFO``) connected to the primary: only such a replica can be promoted.
        """
        deadline = time.monotonic() + max(timeout, 0.1)
        last = ""
        while True:
            try:
                problems = self._health_problems()
            except (redis.RedisError, RedisProcessError, KeyError) as exc:
                problems = [repr(exc)]
            if not problems:
                return
            last = "; ".join(problems)
            if time.monotonic() > deadline:
                tails = "\n".join(
                    f"--- {n.name}\n{n.log_tail(8)}"
                    for n in [*self.data_nodes, *self.sentinel_nodes]
                )
                raise RedisProcessError(f"sentinel setup not healthy: {last}\n{tails}")
            time.sleep(_POLL)

    def _health_problems(self) -> list[str]:
        problems = []
        dead = [node.name for node in [*self.data_nodes, *self.sentinel_nodes] if not node.alive]
        if dead:
            return [f"down: {dead}"]
        primary = self.primary
        for node in self.data_nodes:
            replication = node.info("replication")
            role = replication.get("role")
            if node is primary and role != "master":
                problems.append(f"{node.name} (primary) has role {role}")
            if node is not primary and (
                role != "slave" or replication.get("master_link_status") != "up"
            ):
                problems.append(
                    f"{node.name} role {role} link {replication.get('master_link_status')}"
                )
        for sentinel in self.sentinel_nodes:
            view = self._sentinel_view(sentinel)
            flags = _text(view.get("flags", ""))
            if flags != "master":
                problems.append(f"{sentinel.name} flags {flags}")
            if int(view.get("num-other-sentinels", 0)) != self.sentinel_count - 1:
                problems.append(f"{sentinel.name} knows {view.get('num-other-sentinels')} others")
            replicas = sentinel.command("SENTINEL", "REPLICAS", self.service)
            good = [
                r
                for r in map(_pairs, replicas)
                if _text(r.get("flags", "")) == "slave"
                and _text(r.get("master-link-status", "")) == "ok"
            ]
            if not good:
                problems.append(f"{sentinel.name} has no healthy replica")
        return problems

    def flushall(self) -> None:
        """Delete every key (on the primary; the replica follows)."""
        self.primary.command("FLUSHALL")


def _main() -> None:  # pragma: no cover - a manual check: python -m tests.redissentinel
    with LocalSentinel() as setup:
        print(f"started in {setup.start_seconds:.2f} s: {setup.url}")
        for round_ in range(2):
            began = time.monotonic()
            victim = setup.kill_primary()
            new = setup.wait_failover()
            took = time.monotonic() - began
            print(f"failover {round_}: {victim.name} -> {new.name} in {took:.2f} s")
            began = time.monotonic()
            setup.heal()
            print(f"heal in {time.monotonic() - began:.2f} s")


if __name__ == "__main__":  # pragma: no cover
    _main()
