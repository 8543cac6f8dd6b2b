"""A TCP proxy on loopback that makes a server slow: each chunk a client sends waits first.

Put it in front of a real ``redis-server`` to get a Redis that answers every command, but
``delay`` seconds late (a client sends one command per chunk unless it pipelines). The
delay can change while connections are open. It also counts the commands it forwards,
by name, read from the RESP arrays in each chunk.

Example::

    with RedisServer() as redis_server, DelayProxy(redis_server.port) as proxy:
        client = redis.Redis(port=proxy.port)
        proxy.delay = 0.2
        client.ping()  # answers after 0.2 s
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections import Counter
from typing import Optional

__all__ = ["DelayProxy"]

HOST = "127.0.0.1"
_COMMAND = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n")


class DelayProxy:
    """Forwards ``127.0.0.1:<port>`` to ``127.0.0.1:<target>``, delaying client-to-server data.

    Args:
        target: The port of the real server.
        delay: Seconds each chunk from a client waits before it is forwarded.
    """

    def __init__(self, target: int, delay: float = 0.0) -> None:
        self.target = target
        self.delay = delay
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._commands: Counter[str] = Counter()

    def __enter__(self) -> DelayProxy:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://{HOST}:{self.port}/0"

    def commands(self) -> Counter[str]:
        """The commands forwarded so far, by upper-case name."""
        with self._lock:
            return Counter(self._commands)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.target), timeout=2)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream, True)
            self._spawn(self._pump, upstream, client, False)

    def _pump(self, source: socket.socket, sink: socket.socket, delayed: bool) -> None:
        try:
            while not self._stop.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if delayed:
                    self._count(data)
                    delay = self.delay
                    if delay > 0:
                        time.sleep(delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _count(self, data: bytes) -> None:
        names = [m.group(1).decode().upper() for m in _COMMAND.finditer(data)]
        with self._lock:
            self._commands.update(names)

    def stop(self, timeout: Optional[float] = 5.0) -> None:
        """Close every connection and the listener; wait (bounded) for the threads."""
        self._stop.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._listener.close()
        for thread in threads:
            thread.join(timeout)
