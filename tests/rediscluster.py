"""A real local Redis Cluster (3 primaries + 3 replicas) on loopback, started by the tests.

Every node is a ``redis-server --cluster-enabled yes`` on a free 127.0.0.1 port without
persistence, in a temporary directory that also holds its ``nodes.conf`` and its log; the
cluster is formed with ``redis-cli --cluster create ... --cluster-replicas 1``. Tests can
kill a primary (SIGKILL, an outage as clients see it), wait for its replica to be
promoted, and restart the dead node (it rejoins as a replica of its successor).

Only ``redis-server`` and ``redis-cli`` are needed (Debian's ``redis-server`` package);
both 6.x and 7.x servers work: the bus port is the default ``port + 10000`` and the slot
map is read with ``CLUSTER SHARDS`` where the server has it, ``CLUSTER SLOTS`` otherwise.

Example::

    with LocalRedisCluster() as cluster:
        client = cluster.client()
        client.set("{rcm:h}:state", "open")
        old = cluster.primary_for("{rcm:h}:state")
        cluster.kill(old)
        new = cluster.wait_failover(cluster.keyslot("{rcm:h}:state"))
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import redis

if TYPE_CHECKING:
    from types import TracebackType

    from redis.cluster import ClusterNode, RedisCluster

__all__ = ["HOST", "LocalRedisCluster", "RedisNode", "RedisProcessError"]

HOST = "127.0.0.1"
#: Bound on starting the processes and forming the cluster, seconds.
START_TIMEOUT = 30.0
#: Bound on a failover (failure detection, election, promotion), seconds.
FAILOVER_TIMEOUT = 20.0
#: Default ``cluster-node-timeout``, milliseconds: failure detection takes about this long.
NODE_TIMEOUT_MS = 500
_POLL = 0.05


class RedisProcessError(RuntimeError):
    """A Redis process or the cluster did not reach the expected state in time."""


def binary(name: str) -> str:
    """Return the path of ``redis-server`` or ``redis-cli``, or raise with install advice."""
    found = shutil.which(name)
    if found is None:
        raise RedisProcessError(
            f"{name} is not installed (apt-get install redis-server); .ci/run installs it"
        )
    return found


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port_with_bus(taken: set[int]) -> int:
    """A free port ``p`` whose cluster bus port ``p + 10000`` is free too.

    Ports are drawn from 20000-29999, below Linux's ephemeral range (32768+), so the bus
    port stays under 65536 and outgoing connections rarely collide with them.
    """
    for _ in range(500):
        port = random.randrange(20000, 30000)
        if {port, port + 10000} & taken:
            continue
        if _port_free(port) and _port_free(port + 10000):
            return port
    raise RedisProcessError("no free port pair (p, p + 10000) in 20000-39999")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse_info(raw: Any) -> dict[str, str]:
    """``CLUSTER INFO`` / ``INFO`` text (or redis-py's parsed ``INFO``) as a dict of strings."""
    if isinstance(raw, dict):
        return {_text(k): _text(v) for k, v in raw.items()}
    fields: dict[str, str] = {}
    for line in _text(raw).splitlines():
        if ":" in line and not line.startswith("#"):
            name, _, value = line.partition(":")
            fields[name.strip()] = value.strip()
    return fields


def _pairs(reply: Any) -> dict[str, Any]:
    """A RESP map as a dict with str keys: a flat list (RESP2) or a dict (RESP3, redis-py 8)."""
    if isinstance(reply, dict):
        return {_text(k): v for k, v in reply.items()}
    return dict(zip(map(_text, reply[::2]), reply[1::2]))


class RedisNode:
    """One ``redis-server`` process on a fixed loopback port.

    ``kill()`` and ``start()`` keep the port, the arguments and the working directory, so
    a restarted cluster node finds its ``nodes.conf`` again.
    """

    def __init__(self, port: int, args: list[str], workdir: Path, name: str) -> None:
        self.port = port
        self.args = args
        self.workdir = workdir
        self.name = name
        self.log = workdir / f"{name}.log"
        self._process: Optional[subprocess.Popen[bytes]] = None

    def __repr__(self) -> str:
        state = "up" if self.alive else "down"
        return f"<RedisNode {self.name} {self.address} {state}>"

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        """The process runs (it may not answer yet)."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> Optional[int]:
        """The process id while it runs."""
        return self._process.pid if self.alive and self._process else None

    def start(self, extra: Optional[list[str]] = None) -> None:
        """Start the process (not waiting for it); ``extra`` arguments are for this run only."""
        if self.alive:
            raise RedisProcessError(f"{self.name} is already running")
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [binary("redis-server"), *self.args, *(extra or [])],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL the process and reap it (no-op when it is not running)."""
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)

    def connect(self, timeout: float = 0.5, **kwargs: Any) -> redis.Redis:
        """A plain client to this one node, with short timeouts and no retries."""
        return redis.Redis(
            host=HOST,
            port=self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            **kwargs,
        )

    def command(self, *args: Union[str, int]) -> Any:
        """Run one raw command on this node (no response parsing) and return the reply."""
        client = self.connect()
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def info(self, section: str) -> dict[str, str]:
        """``INFO <section>`` as a dict of strings."""
        return _parse_info(self.command("INFO", section))

    def wait_ready(self, deadline: float) -> None:
        """Wait until the node answers ``PING`` (bounded by ``deadline``, monotonic)."""
        while True:
            if not self.alive:
                raise RedisProcessError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                if self.command("PING") in (True, b"PONG", "PONG"):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RedisProcessError(f"{self.name} did not answer PING:\n{self.log_tail()}")
            time.sleep(_POLL)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the node's log, for error messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class _Shard:
    """One slot range with its primary and replicas, as a node reports it."""

    def __init__(self, ranges: list[tuple[int, int]], primary: str, replicas: list[str]) -> None:
        self.ranges = ranges
        self.primary = primary
        self.replicas = replicas

    def holds(self, slot: int) -> bool:
        return any(start <= slot <= end for start, end in self.ranges)


class LocalRedisCluster:
    """3 primaries + 3 replicas (by default) of ``redis-server --cluster-enabled yes``.

    Args:
        primaries: Number of primaries (at least 3: Redis Cluster's minimum).
        replicas: Replicas per primary.
        node_timeout_ms: ``cluster-node-timeout``; failover takes about 2-4 times this.
    """

    def __init__(
        self, primaries: int = 3, replicas: int = 1, node_timeout_ms: int = NODE_TIMEOUT_MS
    ) -> None:
        if primaries < 3:
            raise ValueError("primaries must be at least 3")
        self.primaries_count = primaries
        self.replicas_per_primary = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[RedisNode] = []
        self._tmp: Optional[str] = None
        self._shards_supported: Optional[bool] = None
        #: Seconds the last :meth:`start` took (processes + create + sync), for reports.
        self.start_seconds = 0.0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalRedisCluster:
        """Start every node, create the cluster and wait (bounded) until it is usable.

        Usable means: ``cluster_state:ok`` on every node, every node knows every other,
        and every replica's link to its primary is up (so a failover can promote it).
        """
        if self.nodes:
            raise RedisProcessError("the cluster is already started")
        began = time.monotonic()
        deadline = began + START_TIMEOUT
        self._tmp = tempfile.mkdtemp(prefix="rcm-cluster-")
        workdir = Path(self._tmp)
        taken: set[int] = set()
        try:
            for index in range(self.primaries_count * (1 + self.replicas_per_primary)):
                port = free_port_with_bus(taken)
                taken |= {port, port + 10000}
                self.nodes.append(RedisNode(port, self._args(port, workdir), workdir, f"n{index}"))
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.wait_ready(deadline)
            self._create(deadline)
            self.wait_healthy(deadline - time.monotonic())
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _args(self, port: int, workdir: Path) -> list[str]:
        return [
            "--port", str(port),
            "--bind", HOST,
            "--dir", str(workdir),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(workdir / f"nodes-{port}.conf"),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--save", "",
            "--appendonly", "no",
            "--repl-diskless-sync-delay", "0",
            "--protected-mode", "yes",
        ]  # fmt: skip

    def _create(self, deadline: float) -> None:
        command = [
            binary("redis-cli"),
            "--cluster", "create",
            *(node.address for node in self.nodes),
            "--cluster-replicas", str(self.replicas_per_primary),
            "--cluster-yes",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RedisProcessError("redis-cli --cluster create timed out") from exc
        if done.returncode != 0:
            raise RedisProcessError(
                f"redis-cli --cluster create failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )

    def stop(self) -> None:
        """Kill every node and delete the working directory."""
        for node in self.nodes:
            node.kill()
        self.nodes = []
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> LocalRedisCluster:
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
    def startup_nodes(self) -> list[ClusterNode]:
        """``redis.cluster.ClusterNode`` for every node (fresh objects on each access)."""
        from redis.cluster import ClusterNode

        return [ClusterNode(HOST, node.port) for node in self.nodes]

    @property
    def url(self) -> str:
        """The storage URL ``limits`` accepts: ``redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...``."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def client(self, timeout: float = 1.0, **kwargs: Any) -> RedisCluster:
        """A ``redis.cluster.RedisCluster`` client with short socket timeouts."""
        from redis.cluster import RedisCluster

        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            **kwargs,
        }
        return RedisCluster(startup_nodes=self.startup_nodes, **options)

    def node(self, address: str) -> RedisNode:
        """The node listening on ``127.0.0.1:<port>`` (or ``<port>``)."""
        port = int(address.rpartition(":")[2])
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(address)

    # ------------------------------------------------------------------ topology
    def _live(self) -> list[RedisNode]:
        return [node for node in self.nodes if node.alive]

    def _ask(self, *args: Union[str, int]) -> Any:
        """Run a command on the first live node that answers."""
        last: Optional[Exception] = None
        for node in self._live():
            try:
                return node.command(*args)
            except redis.RedisError as exc:
                last = exc
        raise RedisProcessError(f"no node answered {args!r}: {last!r}")

    def keyslot(self, key: str) -> int:
        """The hash slot of ``key`` (``CLUSTER KEYSLOT``: hash tags included)."""
        return int(self._ask("CLUSTER", "KEYSLOT", key))

    def shards(self, node: Optional[RedisNode] = None) -> list[_Shard]:
        """The slot map as ``node`` (default: any live node) sees it.

        ``CLUSTER SHARDS`` (Redis 7+) when the server has it, else ``CLUSTER SLOTS``.
        """
        ask = node.command if node is not None else self._ask
        if self._shards_supported is not False:
            try:
                raw = ask("CLUSTER", "SHARDS")
            except redis.ResponseError:
                self._shards_supported = False
            else:
                self._shards_supported = True
                return [self._from_shards_entry(entry) for entry in raw]
        by_primary: dict[str, _Shard] = {}
        for entry in ask("CLUSTER", "SLOTS"):
            start, end, primary, *replicas = entry
            address = f"{_text(primary[0])}:{int(primary[1])}"
            shard = by_primary.setdefault(address, _Shard([], address, []))
            shard.ranges.append((int(start), int(end)))
            for replica in replicas:
                replica_address = f"{_text(replica[0])}:{int(replica[1])}"
                if replica_address not in shard.replicas:
                    shard.replicas.append(replica_address)
        return list(by_primary.values())

    @staticmethod
    def _from_shards_entry(entry: Any) -> _Shard:
        fields = _pairs(entry)
        slots = [int(s) for s in fields["slots"]]
        ranges = list(zip(slots[::2], slots[1::2]))
        primary = ""
        replicas: list[str] = []
        for raw_node in fields["nodes"]:
            info = _pairs(raw_node)
            address = f"{_text(info['ip'])}:{int(info['port'])}"
            if _text(info["role"]) == "master":
                primary = address
            else:
                replicas.append(address)
        return _Shard(ranges, primary, replicas)

    def primary_of_slot(self, slot: int, node: Optional[RedisNode] = None) -> RedisNode:
        """The primary that owns ``slot``, as ``node`` (default: any live node) sees it."""
        for shard in self.shards(node):
            if shard.holds(slot) and shard.primary:
                return self.node(shard.primary)
        raise RedisProcessError(f"slot {slot} is not served")

    def primary_for(self, key: str) -> RedisNode:
        """The primary holding ``key``'s slot (``CLUSTER KEYSLOT`` + the slot map)."""
        return self.primary_of_slot(self.keyslot(key))

    def primaries(self) -> list[RedisNode]:
        """The primaries that own slots now."""
        return [self.node(shard.primary) for shard in self.shards() if shard.ranges]

    def replicas_of(self, primary: RedisNode) -> list[RedisNode]:
        """The replicas of ``primary`` in the slot map."""
        for shard in self.shards():
            if shard.primary == primary.address:
                return [self.node(address) for address in shard.replicas]
        return []

    def cluster_info(self, node: RedisNode) -> dict[str, str]:
        """``CLUSTER INFO`` of one node."""
        return _parse_info(node.command("CLUSTER", "INFO"))

    # ------------------------------------------------------------------ failures
    def kill(self, node: RedisNode) -> None:
        """SIGKILL one node (a primary, usually): no shutdown, no goodbye to the cluster."""
        node.kill()

    def wait_failover(self, slot: int, timeout: float = FAILOVER_TIMEOUT) -> RedisNode:
        """Wait (bounded) until a live node is primary for ``slot`` and the cluster is ok.

        Every live node must agree: its ``cluster_state`` is ``ok`` and its slot map names
        a running node as the slot's primary, and that node calls itself a master.

        Returns:
            The new primary of ``slot``.
        """
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            try:
                owners = set()
                for node in self._live():
                    info = self.cluster_info(node)
                    if info.get("cluster_state") != "ok":
                        raise RedisProcessError(f"{node.name}: cluster_state {info}")
                    owners.add(self.primary_of_slot(slot, node).address)
                if len(owners) == 1:
                    owner = self.node(owners.pop())
                    if owner.alive and owner.info("replication").get("role") == "master":
                        return owner
                last = f"owners {owners}"
            except (redis.RedisError, RedisProcessError, KeyError) as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise RedisProcessError(f"no failover of slot {slot} within {timeout} s: {last}")
            time.sleep(_POLL)

    def restart(self, node: RedisNode, timeout: float = START_TIMEOUT) -> None:
        """Start a killed node again on its port with its ``nodes.conf``; wait until healthy.

        Its data is gone (no persistence). A former primary whose slots moved on rejoins
        as a replica of the new primary and resyncs from it.
        """
        deadline = time.monotonic() + timeout
        node.start()
        node.wait_ready(deadline)
        self.wait_healthy(deadline - time.monotonic())

    def heal(self, timeout: float = START_TIMEOUT) -> None:
        """Restart every dead node and wait until the cluster is whole again."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if not node.alive:
                node.start()
        for node in self.nodes:
            node.wait_ready(deadline)
        self.wait_healthy(deadline - time.monotonic())

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Wait (bounded) for a whole cluster: every node up, ok, and every replica synced."""
        deadline = time.monotonic() + max(timeout, 0.1)
        expected = len(self.nodes)
        last = ""
        while True:
            try:
                problems = self._health_problems(expected)
            except (redis.RedisError, RedisProcessError, KeyError) as exc:
                problems = [repr(exc)]
            if not problems:
                return
            last = "; ".join(problems)
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n.name}\n{n.log_tail(5)}" for n in self.nodes)
                raise RedisProcessError(f"cluster not healthy in {timeout:.1f} s: {last}\n{tails}")
            time.sleep(_POLL)

    def _health_problems(self, expected: int) -> list[str]:
        problems = []
        for node in self.nodes:
            if not node.alive:
                problems.append(f"{node.name} is down")
                continue
            info = self.cluster_info(node)
            if info.get("cluster_state") != "ok":
                problems.append(f"{node.name} cluster_state={info.get('cluster_state')}")
            if int(info.get("cluster_known_nodes", 0)) != expected:
                problems.append(f"{node.name} knows {info.get('cluster_known_nodes')} nodes")
            replication = node.info("replication")
            if replication.get("role") == "slave" and (
                replication.get("master_link_status") != "up"
            ):
                problems.append(f"{node.name} replica link {replication.get('master_link_status')}")
        if not problems:
            shards = [s for s in self.shards() if s.ranges]
            if len(shards) != self.primaries_count:
                problems.append(f"{len(shards)} shards serve slots")
            for shard in shards:
                if len(shard.replicas) < self.replicas_per_primary:
                    problems.append(f"{shard.primary} has replicas {shard.replicas}")
        return problems

    def flushall(self) -> None:
        """Delete every key on every primary (replicas follow)."""
        for node in self.primaries():
            node.command("FLUSHALL")

    def pids(self) -> dict[str, Optional[int]]:
        """Process ids by node name (``None`` for a dead node)."""
        return {node.name: node.pid for node in self.nodes}


def _main() -> None:  # pragma: no cover - a manual check: python -m tests.rediscluster
    with LocalRedisCluster() as cluster:
        print(f"started in {cluster.start_seconds:.2f} s: {cluster.url}")
        client = cluster.client()
        key = "{rcm:probe}:state"
        client.set(key, "closed")
        victim = cluster.primary_for(key)
        began = time.monotonic()
        cluster.kill(victim)
        new = cluster.wait_failover(cluster.keyslot(key))
        print(f"failover {victim.name} -> {new.name} in {time.monotonic() - began:.2f} s")
        client.close()


if __name__ == "__main__":  # pragma: no cover
    _main()
