"""A loopback TCP proxy that delays what it forwards: a slow network or a slow server.

:class:`SlowProxy` listens on ``127.0.0.1:<ephemeral>`` and forwards every connection to a
target address; each chunk going back to the client is held for ``delay`` seconds first
(each chunk going to the target for ``upstream_delay`` seconds). Put it in front of a real
``redis-server`` to get a Redis whose every command answers in about ``delay`` seconds.
The delays may be changed while it runs.

Example::

    with RedisServer() as redis_server, SlowProxy(redis_server.port, delay=0.2) as proxy:
        client = redis.Redis(port=proxy.port)  # every reply takes ~0.2 s
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Optional

from tests.loopback import LoopbackServer

__all__ = ["SlowProxy"]

HOST = "127.0.0.1"
_POLL = 0.05


class SlowProxy(LoopbackServer):
    """Forward ``127.0.0.1:<port>`` to ``127.0.0.1:target_port``, delaying each chunk.

    Args:
        target_port: The port on 127.0.0.1 to forward to.
        delay: Seconds each chunk from the target waits before it reaches the client.
        upstream_delay: Seconds each chunk from the client waits before it reaches the
            target.
    """

    host: str = HOST

    def __init__(self, target_port: int, delay: float = 0.2, upstream_delay: float = 0.0) -> None:
        self.target_port = target_port
        self.delay = delay
        self.upstream_delay = upstream_delay
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: Optional[socket.socket] = None
        self._port: Optional[int] = None
        self.connections = 0

    def start(self) -> SlowProxy:
        """Listen and start accepting.

        Returns:
            The proxy itself.
        """
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((HOST, 0))
        listener.listen(64)
        listener.settimeout(_POLL)
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._spawn(self._accept_loop, listener)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection and join the threads. Idempotent."""
        if self._stop.is_set() or self._listener is None:
            return
        self._stop.set()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)
        self._listener.close()
        for sock in sockets:
            sock.close()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self.connections += 1
                self._sockets.update((client, upstream))
            self._spawn(self._pump, client, upstream, "upstream_delay")
            self._spawn(self._pump, upstream, client, "delay")

    def _pump(self, source: socket.socket, sink: socket.socket, delay_name: str) -> None:
        try:
            while not self._stop.is_set():
                chunk = source.recv(65536)
                if not chunk:
                    break
                delay = getattr(self, delay_name)
                if delay and self._stop.wait(delay):
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
