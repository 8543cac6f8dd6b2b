"""Many distinct loopback hosts served by one thread: for tests about per-host state bounds.

:class:`ManyHosts` binds one port on ``count`` different loopback addresses
(``127.0.1.1``, ``127.0.1.2``, ... — all of ``127.0.0.0/8`` is loopback on Linux) and
answers every request on every address with the same fixed response, then closes the
connection. One ``selectors`` loop serves them all, so a thousand hosts cost a thousand
sockets, not a thousand threads.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Optional

__all__ = ["ManyHosts"]

_MAX_HEAD = 64 * 1024


def _addresses(count: int) -> list[str]:
    out = []
    for index in range(count):
        third, fourth = divmod(index, 254)
        out.append(f"127.0.{third + 1}.{fourth + 1}")
    return out


class ManyHosts:
    """``count`` loopback hosts on one port, each answering ``response`` to every request.

    Args:
        count: Number of distinct addresses (at most 254 * 254).
        response: The complete HTTP response sent to every request.
    """

    def __init__(self, count: int, response: bytes) -> None:
        self.count = count
        self.response = response
        self.hits = 0
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._listeners: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.port = 0
        self.hosts: list[str] = []

    def start(self) -> ManyHosts:
        """Bind every address on one free port and serve from a daemon thread.

        Returns:
            The server itself.

        Raises:
            OSError: No port was free on every address after a few tries.
        """
        for _ in range(5):
            try:
                self._bind_all()
                break
            except OSError:
                self._close_listeners()
        else:
            raise OSError("could not bind one port on every loopback address")
        self._thread = threading.Thread(target=self._loop, daemon=True, name="ManyHosts")
        self._thread.start()
        return self

    def _bind_all(self) -> None:
        addresses = _addresses(self.count)
        first = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        first.bind((addresses[0], 0))
        self._listeners.append(first)
        self.port = first.getsockname()[1]
        for address in addresses[1:]:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listeners.append(sock)
            sock.bind((address, self.port))
        for sock in self._listeners:
            sock.listen(16)
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ, None)
        self.hosts = addresses

    def _close_listeners(self) -> None:
        for sock in self._listeners:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()
        self._listeners = []

    def url(self, index: int, path: str = "/") -> str:
        """The URL of ``path`` on host number ``index``."""
        return f"http://{self.hosts[index]}:{self.port}{path}"

    def _loop(self) -> None:
        buffers: dict[socket.socket, bytes] = {}
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if key.data is None:  # a listener
                    with contextlib.suppress(OSError):
                        conn, _ = sock.accept()
                        conn.setblocking(False)
                        buffers[conn] = b""
                        self._selector.register(conn, selectors.EVENT_READ, "conn")
                    continue
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                data = buffers.get(sock, b"") + chunk
                if chunk and b"\r\n\r\n" not in data and len(data) < _MAX_HEAD:
                    buffers[sock] = data
                    continue
                if chunk:
                    with self._lock:
                        self.hits += 1
                    with contextlib.suppress(OSError):
                        sock.setblocking(True)
                        sock.settimeout(2)
                        sock.sendall(self.response)
                self._selector.unregister(sock)
                buffers.pop(sock, None)
                sock.close()
        for sock in list(buffers):
            sock.close()

    def stop(self) -> None:
        """Stop serving and close every socket. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._close_listeners()
        self._selector.close()

    def __enter__(self) -> ManyHosts:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
