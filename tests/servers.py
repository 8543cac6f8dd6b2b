"""Loopback HTTP test server built on werkzeug's threaded WSGI server.

:class:`AppServer` binds ``127.0.0.1`` on an ephemeral port, serves a small
routing table of ``handler(request) -> response`` callables from a daemon
thread, and records every request it receives. It offers route builders for
the scenarios the test suite needs (transient failures, ``Retry-After``, slow
responses, concurrency barriers) and tracks how many requests were inside each
path's handler at the same time.

Example::

    with AppServer() as srv:
        srv.fail_then_ok("/flaky", failures=2)
        ...
        assert srv.hits("/flaky") == 3
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Optional, Tuple

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.loopback import LoopbackServer

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "AppServer",
    "Handler",
    "RecordedRequest",
    "ResponseSpec",
    "free_port",
]

HOST = "127.0.0.1"

Handler = Callable[[Request], Response]
"""A route handler: receives the werkzeug request, returns the response."""

ResponseSpec = Tuple[int, Optional[Mapping[str, str]], bytes]
"""``(status, headers or None, body)`` as used by :meth:`AppServer.sequence`."""

_POLL_INTERVAL = 0.05
_IDLE_CONNECTION_TIMEOUT = 30.0


class RecordedRequest(NamedTuple):
    """One request as seen by :class:`AppServer`.

    Attributes:
        method: HTTP method, e.g. ``"GET"``.
        path: Decoded path without the query string, e.g. ``"/x"``.
        query_string: Raw query string without ``?`` (latin-1 decoded).
        headers: Request headers as werkzeug presents them (Title-Case keys;
            repeated headers keep the last value).
        body: The full request body.
    """

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes


def free_port() -> int:
    """Return a port on 127.0.0.1 with nothing listening on it.

    The port is obtained by binding port 0 and closing the socket again, so
    connecting to it normally yields "connection refused". Another process
    could grab it in between; that is acceptable for tests.

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def _response(status: int, headers: Mapping[str, str] | None, body: bytes) -> Response:
    """Build a werkzeug response.

    Args:
        status: HTTP status code.
        headers: Extra headers, or None.
        body: Response body.

    Returns:
        The response object.
    """
    return Response(body, status=status, headers=dict(headers or {}))


class AppServer(LoopbackServer):
    """Threaded werkzeug WSGI server on ``127.0.0.1:<ephemeral>`` for tests.

    Routes are exact path matches (query strings ignored); unknown paths get
    ``404 b"not found"``. Every request (including 404s) is recorded before its
    handler runs. Routes may be registered before or after :meth:`start`.

    The server is single use: after :meth:`stop` it cannot be restarted.
    """

    host: str = HOST

    def __init__(self, host: str = HOST, record: bool = True) -> None:
        """Create a stopped server; call :meth:`start` or use ``with``.

        Args:
            host: The loopback address to bind (e.g. ``127.0.0.2`` for a second origin).
            record: Keep every request (:attr:`requests`); when False only the counts
                (:meth:`hits`, :meth:`total`) are kept, so memory stays flat however many
                requests arrive (long stress runs).
        """
        self.host = host
        self._record = record
        self._lock = threading.Lock()
        self._routes: dict[str, Handler] = {}
        self._log: list[RecordedRequest] = []
        self._hits: dict[str, int] = {}
        self._total = 0
        self._active: dict[str, int] = {}
        self._peak: dict[str, int] = {}
        self._barriers: list[threading.Barrier] = []
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._conn_threads: list[threading.Thread] = []
        self._live_sockets: set[socket.socket] = set()
        self._port: int | None = None

    # ------------------------------------------------------------------ life

    def start(self) -> AppServer:
        """Bind the listening socket and start serving in a daemon thread.

        Returns:
            The server itself, for chaining.

        Raises:
            RuntimeError: If the server was already started.
        """
        if self._server is not None:
            raise RuntimeError("AppServer can only be started once")
        server = make_server(
            self.host,
            0,
            self._wsgi_app,
            threaded=True,
            request_handler=self._make_handler_class(),
        )
        self._server = server
        self._port = server.port
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"AppServer-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close all sockets and join all threads.

        Sleeping handlers (:meth:`slow`, :meth:`barrier`, :meth:`wait`) are woken,
        idle keep-alive connections are shut down. Idempotent.

        Args:
            timeout: Upper bound in seconds for the whole shutdown.
        """
        server, thread = self._server, self._thread
        if server is None or thread is None or self._stopping.is_set():
            return
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopping.set()
            barriers = list(self._barriers)
        for barrier in barriers:
            barrier.abort()
        if thread.is_alive():
            server.shutdown()
        thread.join(max(0.0, deadline - time.monotonic()))
        server.server_close()
        while True:
            with self._lock:
                sockets = list(self._live_sockets)
                pending = [t for t in self._conn_threads if t.is_alive()]
            for sock in sockets:
                _shutdown_quietly(sock)
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                break
            pending[0].join(min(remaining, _POLL_INTERVAL))
        with self._lock:
            self._conn_threads = [t for t in self._conn_threads if t.is_alive()]

    # ---------------------------------------------------------------- state

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of all recorded requests, in arrival order."""
        with self._lock:
            return list(self._log)

    def hits(self, path: str) -> int:
        """Count recorded requests for ``path``.

        Args:
            path: Exact path (no query string).

        Returns:
            Number of requests received for that path.
        """
        with self._lock:
            return self._hits.get(path, 0)

    def total(self) -> int:
        """Count all recorded requests.

        Returns:
            Number of requests received on any path.
        """
        with self._lock:
            return self._total

    def max_concurrent(self, path: str) -> int:
        """Highest number of requests simultaneously inside ``path``'s handler.

        Args:
            path: Exact path.

        Returns:
            The peak concurrency (0 if never hit).
        """
        with self._lock:
            return self._peak.get(path, 0)

    @property
    def stopping(self) -> threading.Event:
        """Event set when :meth:`stop` begins; custom handlers may wait on it."""
        return self._stopping

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early when the server stops.

        Args:
            seconds: Maximum time to sleep.

        Returns:
            True if woken because the server is stopping.
        """
        return self._stopping.wait(seconds)

    # --------------------------------------------------------------- routes

    def route(self, path: str, handler: Handler) -> None:
        """Register (or replace) the handler for an exact path.

        Args:
            path: Exact path, e.g. ``"/x"``.
            handler: Callable taking a werkzeug Request, returning a Response.
        """
        with self._lock:
            self._routes[path] = handler

    def ok(
        self,
        path: str,
        body: bytes = b"ok",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Always answer with a fixed response.

        Args:
            path: Exact path.
            body: Response body.
            status: Status code.
            headers: Extra response headers.
        """
        fixed = (status, dict(headers or {}), body)

        def handler(request: Request) -> Response:
            return _response(*fixed)

        self.route(path, handler)

    def fail_then_ok(
        self,
        path: str,
        failures: int,
        status: int = 503,
        headers: Mapping[str, str] | None = None,
        ok_body: bytes = b"ok",
    ) -> None:
        """Fail the first ``failures`` requests, then answer 200.

        Args:
            path: Exact path.
            failures: Number of failing responses before success.
            status: Status code of the failing responses.
            headers: Headers of the failing responses.
            ok_body: Body of the 200 responses.
        """
        responses: list[ResponseSpec] = [(status, headers, b"fail")] * failures
        responses.append((200, None, ok_body))
        self.sequence(path, responses)

    def sequence(self, path: str, responses: Sequence[ResponseSpec]) -> None:
        """Serve ``responses`` in order; the last one repeats forever.

        Args:
            path: Exact path.
            responses: Non-empty list of ``(status, headers, body)`` tuples.

        Raises:
            ValueError: If ``responses`` is empty.
        """
        if not responses:
            raise ValueError("responses must not be empty")
        specs = [(s, dict(h or {}), b) for s, h, b in responses]
        counter_lock = threading.Lock()
        served = [0]

        def handler(request: Request) -> Response:
            with counter_lock:
                index = min(served[0], len(specs) - 1)
                served[0] += 1
            return _response(*specs[index])

        self.route(path, handler)

    def slow(self, path: str, seconds: float) -> None:
        """Sleep ``seconds`` (waking early on stop), then answer ``200 b"ok"``.

        Args:
            path: Exact path.
            seconds: Delay before answering.
        """

        def handler(request: Request) -> Response:
            self._stopping.wait(seconds)
            return _response(200, None, b"ok")

        self.route(path, handler)

    def barrier(self, path: str, parties: int, timeout: float = 5.0) -> None:
        """Make requests wait for each other on a shared ``threading.Barrier``.

        Each request waits up to ``timeout`` seconds for ``parties`` requests
        (itself included) to be inside the handler. If the barrier is passed
        they all answer ``200 b"together"``; otherwise ``500 b"barrier
        broken"``. The barrier is cyclic while it holds, but once broken (by a
        timeout or by :meth:`stop`) it stays broken and later requests get 500
        immediately.

        Args:
            path: Exact path.
            parties: Number of requests that must be in flight together.
            timeout: Seconds each request waits for the others.
        """
        shared = threading.Barrier(parties)
        with self._lock:
            self._barriers.append(shared)

        def handler(request: Request) -> Response:
            try:
                shared.wait(timeout)
            except threading.BrokenBarrierError:
                return _response(500, None, b"barrier broken")
            return _response(200, None, b"together")

        self.route(path, handler)

    def retry_after(self, path: str, status: int, value: str | int, then_ok: bool = True) -> None:
        """Answer ``status`` with a ``Retry-After`` header first.

        Args:
            path: Exact path.
            status: Status code of the throttling response (e.g. 429, 503).
            value: ``Retry-After`` value (seconds or an HTTP date).
            then_ok: If True later requests get 200, otherwise every request
                gets the throttling response.
        """
        throttle: ResponseSpec = (status, {"Retry-After": str(value)}, b"retry later")
        if then_ok:
            self.sequence(path, [throttle, (200, None, b"ok")])
        else:
            self.sequence(path, [throttle])

    # ------------------------------------------------------------- internals

    def _wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """WSGI entry point: record, dispatch and track concurrency.

        Args:
            environ: The WSGI environment.
            start_response: The WSGI start_response callable.

        Returns:
            The response body iterable.
        """
        request = Request(environ)
        path = request.path
        body = request.get_data(cache=True)
        with self._lock:
            self._total += 1
            self._hits[path] = self._hits.get(path, 0) + 1
            if self._record:
                self._log.append(
                    RecordedRequest(
                        method=request.method,
                        path=path,
                        query_string=request.query_string.decode("latin-1"),
                        headers=dict(request.headers.items()),
                        body=body,
                    )
                )
            handler = self._routes.get(path)
            if handler is not None:
                active = self._active.get(path, 0) + 1
                self._active[path] = active
                self._peak[path] = max(self._peak.get(path, 0), active)
        if handler is None:
            response = _response(404, None, b"not found")
        else:
            try:
                response = handler(request)
            finally:
                with self._lock:
                    self._active[path] -= 1
        return response(environ, start_response)

    def _make_handler_class(self) -> type[WSGIRequestHandler]:
        """Build a per-server request handler class that tracks connections.

        Returns:
            A WSGIRequestHandler subclass bound to this server.
        """
        owner = self

        class _TrackingHandler(WSGIRequestHandler):
            timeout = _IDLE_CONNECTION_TIMEOUT

            def setup(self) -> None:
                super().setup()
                owner._register_connection(self.connection)

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    owner._unregister_connection(self.connection)

            def log(self, type: str, message: str, *args: Any) -> None:
                return None

        return _TrackingHandler

    def _register_connection(self, sock: socket.socket) -> None:
        """Track the current handler thread and its socket.

        Args:
            sock: The accepted client socket.
        """
        with self._lock:
            self._conn_threads = [t for t in self._conn_threads if t.is_alive()]
            self._conn_threads.append(threading.current_thread())
            self._live_sockets.add(sock)
            stopping = self._stopping.is_set()
        if stopping:
            _shutdown_quietly(sock)

    def _unregister_connection(self, sock: socket.socket) -> None:
        """Forget a client socket once its handler finished.

        Args:
            sock: The client socket.
        """
        with self._lock:
            self._live_sockets.discard(sock)


def _shutdown_quietly(sock: socket.socket) -> None:
    """Shut down both directions of a socket, ignoring errors.

    This wakes any thread blocked reading it without closing the descriptor
    under that thread's feet.

    Args:
        sock: The socket.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
