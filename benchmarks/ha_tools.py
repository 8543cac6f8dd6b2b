"""Tools for the high-availability investigations: count what clients send to Redis.

``Monitor`` records every command the given nodes execute (raw ``MONITOR`` sockets, one
reader thread per node), telling the commands a client sent (one round trip each, or one
per pipeline) from those a Lua script ran inside the server. ``commandstats`` reads
``INFO commandstats`` for deltas over long runs where ``MONITOR`` would slow Redis down.

Run the investigations from the repository root with ``PYTHONPATH=src``, e.g.
``PYTHONPATH=src python -m benchmarks.ha_limits``.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Optional

import redis

HOST = "127.0.0.1"
_LINE = re.compile(r"^\+(\S+) \[(\d+) ([^\]]+)\] (.*)$")
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Seen:
    """One command a node executed."""

    port: int
    at: float
    source: str  # "lua" (inside a script) or the client's address
    args: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.args[0].upper() if self.args else ""

    @property
    def in_script(self) -> bool:
        return self.source == "lua"


class Monitor:
    """``MONITOR`` on several nodes while a block runs.

    Example::

        with Monitor([port1, port2]) as seen:
            do_work()
        print(seen.client_commands())
    """

    def __init__(self, ports: Iterable[int], settle: float = 0.15) -> None:
        self.ports = list(ports)
        self.settle = settle
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []

    def __enter__(self) -> Monitor:
        for port in self.ports:
            sock = socket.create_connection((HOST, port), timeout=2)
            sock.sendall(b"MONITOR\r\n")
            buffer = b""
            while b"\r\n" not in buffer:
                buffer += sock.recv(4096)
            if not buffer.startswith(b"+OK"):
                raise RuntimeError(f"MONITOR refused on {port}: {buffer!r}")
            sock.settimeout(0.1)
            self._socks.append(sock)
            thread = threading.Thread(
                target=self._read, args=(port, sock, buffer.split(b"\r\n", 1)[1]), daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def _read(self, port: int, sock: socket.socket, buffer: bytes) -> None:
        while True:
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                match = _LINE.match(line.decode("utf-8", "replace"))
                if match:
                    args = tuple(_ARG.findall(match.group(4)))
                    with self._lock:
                        self.seen.append(Seen(port, float(match.group(1)), match.group(3), args))
            if self._stop.is_set():
                return
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        time.sleep(self.settle)
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        for sock in self._socks:
            sock.close()

    def client_commands(self) -> Counter[str]:
        """Commands clients sent (not those run inside scripts), by name."""
        return Counter(s.name for s in self.seen if not s.in_script)

    def script_commands(self) -> Counter[str]:
        """Commands run inside Lua scripts, by name."""
        return Counter(s.name for s in self.seen if s.in_script)

    def keys(self) -> set[str]:
        """Every key argument of GET/SET/INCR/... and of EVALSHA (its KEYS), best effort."""
        found: set[str] = set()
        for s in self.seen:
            if s.in_script:
                continue
            if s.name in {"EVALSHA", "EVAL"} and len(s.args) > 2:
                found.update(s.args[3 : 3 + int(s.args[2])])
            elif s.name in {"GET", "SET", "SETNX", "INCR", "DECR", "EXPIRE", "WATCH", "INCRBY"}:
                found.add(s.args[1])
        return found


def commandstats(ports: Iterable[int]) -> Counter[str]:
    """``INFO commandstats`` calls summed over nodes (commands run in scripts included)."""
    total: Counter[str] = Counter()
    for port in ports:
        client = redis.Redis(host=HOST, port=port, socket_timeout=2)
        try:
            for name, entry in client.info("commandstats").items():
                total[name.replace("cmdstat_", "").upper()] += int(entry["calls"])
        finally:
            client.close()
    return total


def per_call(counter: Counter[str], calls: int) -> dict[str, float]:
    """A counter divided by a number of calls, rounded, without zeros."""
    return {name: round(n / calls, 3) for name, n in sorted(counter.items()) if n}


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
