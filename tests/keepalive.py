"""A loopback HTTP/1.1 server that keeps connections alive and says which one each request used.

werkzeug's development server closes every connection after one response (it sends
``Connection: close`` always), so :class:`~tests.servers.AppServer` cannot show connection
reuse. :class:`KeepAliveServer` is built on ``http.server`` with HTTP/1.1 keep-alive and
records, for every request, the client's port and a per-connection serial number, so a test
can tell a new TCP connection from a reused one.

Example::

    with KeepAliveServer() as srv:
        cm.get(srv.url("/a"))
        cm.get(srv.url("/a"))
        assert len({r.connection for r in srv.requests}) == 1
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, NamedTuple, Optional, Tuple

from tests.loopback import LoopbackServer

__all__ = ["KeepAliveServer", "Seen"]

HOST = "127.0.0.1"

#: ``handler(seen) -> (status, headers, body)``.
Route = Callable[["Seen"], Tuple[int, dict, bytes]]


class Seen(NamedTuple):
    """One request as :class:`KeepAliveServer` saw it.

    Attributes:
        method: The request method.
        path: The request target, query included.
        headers: Header names (as sent) to values; repeated names keep the last value.
        client_port: The client's TCP port.
        connection: Serial number of the TCP connection (1 for the first accepted).
        arrived: ``time.monotonic()`` when the request head had been read.
    """

    method: str
    path: str
    headers: dict[str, str]
    client_port: int
    connection: int
    arrived: float


class KeepAliveServer(LoopbackServer):
    """Threaded ``http.server`` on ``127.0.0.1:<ephemeral>`` with HTTP/1.1 keep-alive.

    Every path answers ``200 b"ok"`` with ``Content-Length`` unless :meth:`route` says
    otherwise. Single use.
    """

    host: str = HOST

    def __init__(self) -> None:
        """Create a stopped server; call :meth:`start` or use ``with``."""
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._routes: dict[str, Route] = {}
        self._serial = itertools.count(1)
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._sockets: set[socket.socket] = set()
        self._port: Optional[int] = None

    def start(self) -> KeepAliveServer:
        """Bind and serve from a daemon thread.

        Returns:
            The server itself.
        """
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def setup(self) -> None:
                super().setup()
                self.rcm_connection = next(owner._serial)
                with owner._lock:
                    owner._sockets.add(self.connection)

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with owner._lock:
                        owner._sockets.discard(self.connection)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                seen = Seen(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    self.client_address[1],
                    self.rcm_connection,
                    time.monotonic(),
                )
                with owner._lock:
                    owner._seen.append(seen)
                    route = owner._routes.get(self.path.partition("?")[0])
                status, headers, body = (200, {}, b"ok") if route is None else route(seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

            def log_message(self, format: str, *args: object) -> None:
                return None

        server = ThreadingHTTPServer((HOST, 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and shut every open connection down. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout)

    def route(self, path: str, handler: Route) -> None:
        """Answer requests for ``path`` (query ignored) with ``handler(seen)``."""
        with self._lock:
            self._routes[path] = handler

    @property
    def requests(self) -> list[Seen]:
        """A snapshot of the requests seen, in arrival order."""
        with self._lock:
            return list(self._seen)
