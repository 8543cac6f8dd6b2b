r"""Socket-level fault-injection server for transport error tests.

:class:`FaultServer` listens on ``127.0.0.1:<ephemeral>`` using plain sockets
and threads (no HTTP library). Every accepted connection carries exactly one
request: the server reads the request head (bounded to 64 KiB and by a socket
timeout) plus a ``Content-Length`` body, records it, performs one
:class:`Fault` and closes the connection, so one connection equals one client
attempt.

Faults are taken in order from :meth:`FaultServer.script`; once the script is
exhausted :attr:`FaultServer.default` (initially ``respond()``, a 200 ``b"ok"``)
applies. The fault for a connection is chosen when it is accepted.

Fault factories (each returns a frozen dataclass instance):

* ``respond(status=200, headers=None, body=b"ok")`` - correct HTTP/1.1 response
  with ``Content-Length`` and ``Connection: close``.
* ``close_without_answer()`` - read the request, close without writing.
* ``reset_after_request()`` - read the request, close with ``SO_LINGER(1, 0)``
  so the client sees ECONNRESET.
* ``close_before_request()`` - close right after accept, reading nothing.
* ``garbage_status()`` - answer ``b"HELLO WORLD\\r\\n\\r\\n"``.
* ``truncated_body(declared=100, sent=10)`` - 200 declaring ``declared`` bytes,
  sending ``sent``.
* ``broken_chunked()`` - chunked 200 with one valid chunk, then ``b"zz\\r\\n"``.
* ``hang(seconds)`` - read the request, send nothing for ``seconds``.
* ``drip(body, interval)`` - send ``body`` one byte per ``interval``.
* ``stall_headers(seconds)`` - send the status line, wait, send the rest.
* ``retry_after(status, value)`` - ``status`` with ``Retry-After: value``.
* ``redirect(location, status=302)`` - redirect to ``location``.
* ``drip_headers(seconds, interval)`` - send the status line, then the header block
  one byte per ``interval`` for about ``seconds``, then a 200 ``b"ok"``.
* ``stall_body(declared, sent, seconds)`` - 200 declaring ``declared`` body bytes,
  send ``sent`` of them, then nothing for ``seconds`` (the connection stays open).
* ``raw(*chunks, interval=0, hold=0, reset=False)`` - send arbitrary bytes (a hostile
  server), ``interval`` seconds apart, keep the connection open ``hold`` seconds, then
  close it (with an RST if ``reset``).
* ``answer_before_body(payload, hold=0)`` - read only the request head, answer at
  once (before the request body arrives), keep the connection open ``hold`` seconds.

All waits end early when the server stops.
"""

from __future__ import annotations

import contextlib
import http
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Mapping, NamedTuple, Tuple

from tests.loopback import LoopbackServer

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "AnswerBeforeBody",
    "BrokenChunked",
    "CloseBeforeRequest",
    "CloseWithoutAnswer",
    "Drip",
    "DripHeaders",
    "Fault",
    "FaultRequest",
    "FaultServer",
    "GarbageStatus",
    "Hang",
    "Raw",
    "ResetAfterRequest",
    "Respond",
    "StallBody",
    "StallHeaders",
    "TruncatedBody",
    "answer_before_body",
    "broken_chunked",
    "close_before_request",
    "close_without_answer",
    "drip",
    "drip_headers",
    "garbage_status",
    "hang",
    "raw",
    "redirect",
    "reset_after_request",
    "respond",
    "retry_after",
    "stall_body",
    "stall_headers",
    "truncated_body",
]

HOST = "127.0.0.1"
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
_ACCEPT_POLL = 0.05

HeaderPairs = Tuple[Tuple[str, str], ...]


class FaultRequest(NamedTuple):
    """One request as read by :class:`FaultServer`.

    Attributes:
        method: Request method, e.g. ``"GET"`` (empty if unparseable).
        path: Request target as sent, e.g. ``"/x?a=1"``.
        headers: Header names as sent (case preserved) to values.
        body: Body bytes read according to ``Content-Length`` (else empty).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


# ----------------------------------------------------------------- helpers


def _status_line(status: int) -> bytes:
    r"""Build an HTTP/1.1 status line including CRLF.

    Args:
        status: Status code.

    Returns:
        E.g. ``b"HTTP/1.1 200 OK\\r\\n"``.
    """
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    return f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")


def _header_block(headers: Iterable[tuple[str, str]]) -> bytes:
    """Serialise header pairs followed by the blank line.

    Args:
        headers: ``(name, value)`` pairs.

    Returns:
        The encoded header lines and terminating CRLF.
    """
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (lines + "\r\n").encode("latin-1")


def _pairs(headers: Mapping[str, str] | None) -> HeaderPairs:
    """Freeze a header mapping into a tuple of pairs.

    Args:
        headers: Mapping or None.

    Returns:
        Tuple of ``(name, value)`` pairs.
    """
    return tuple((headers or {}).items())


def _send(conn: socket.socket, data: bytes) -> bool:
    """Send all of ``data``, reporting failure instead of raising.

    Args:
        conn: Client socket.
        data: Bytes to send.

    Returns:
        True on success, False if the peer went away.
    """
    try:
        conn.sendall(data)
    except OSError:
        return False
    return True


def _half_close(conn: socket.socket) -> None:
    """Signal end of response (FIN) without discarding unread input.

    Args:
        conn: Client socket.
    """
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)


# ------------------------------------------------------------------- faults


class Fault:
    """Base class of all behaviours; subclasses are frozen dataclasses.

    Attributes:
        reads_request: Whether the server reads and records the request
            before calling :meth:`perform`.
    """

    reads_request: ClassVar[bool] = True

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Act on a connection whose request has been read.

        The server closes ``conn`` afterwards; implementations must not block
        longer than their configured duration and must return promptly once
        ``stop`` is set.

        Args:
            conn: The client socket.
            stop: Set when the server is stopping.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class Respond(Fault):
    """A well-formed HTTP/1.1 response.

    ``Content-Length`` and ``Connection: close`` are added unless given in
    ``headers``.

    Attributes:
        status: Status code.
        headers: Extra header pairs.
        body: Response body.
    """

    status: int = 200
    headers: HeaderPairs = ()
    body: bytes = b"ok"

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Send the response and half-close.

        Args:
            conn: The client socket.
            stop: Unused.
        """
        names = {name.lower() for name, _ in self.headers}
        headers = list(self.headers)
        if "content-length" not in names:
            headers.append(("Content-Length", str(len(self.body))))
        if "connection" not in names:
            headers.append(("Connection", "close"))
        _send(conn, _status_line(self.status) + _header_block(headers) + self.body)
        _half_close(conn)


@dataclass(frozen=True)
class CloseWithoutAnswer(Fault):
    """Read the request, then close (FIN) without writing anything."""

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Close gracefully without a response.

        Args:
            conn: The client socket.
            stop: Unused.
        """
        _half_close(conn)


@dataclass(frozen=True)
class ResetAfterRequest(Fault):
    """Read the request, then abort the connection with a TCP RST."""

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Enable ``SO_LINGER(on, 0)`` and close, which sends RST.

        Args:
            conn: The client socket.
            stop: Unused.
        """
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


@dataclass(frozen=True)
class CloseBeforeRequest(Fault):
    """Close right after accepting; the request is neither read nor recorded."""

    reads_request: ClassVar[bool] = False

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Close immediately.

        Args:
            conn: The client socket.
            stop: Unused.
        """
        conn.close()


@dataclass(frozen=True)
class GarbageStatus(Fault):
    """Answer with bytes that are not an HTTP status line."""

    payload: bytes = b"HELLO WORLD\r\n\r\n"

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Send the garbage and half-close.

        Args:
            conn: The client socket.
            stop: Unused.
        """
        _send(conn, self.payload)
        _half_close(conn)


@dataclass(frozen=True)
class TruncatedBody(Fault):
    """200 declaring ``declared`` body bytes but sending only ``sent``.

    Attributes:
        declared: Value of ``Content-Length``.
        sent: Number of body bytes actually sent before closing.
    """

    declared: int = 100
    sent: int = 10

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Send the short response and half-close.

        Args:
            conn: The client socket.
            stop: Unused.
        """
        head = _status_line(200) + _header_block(
            [("Content-Length", str(self.declared)), ("Connection", "close")]
        )
        _send(conn, head + b"x" * self.sent)
        _half_close(conn)


@dataclass(frozen=True)
class BrokenChunked(Fault):
    """Chunked 200: one valid chunk, then a malformed chunk-size line."""

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        r"""Send ``5\\r\\nhello\\r\\n`` then ``zz\\r\\n`` and half-close.

        Args:
            conn: The client socket.
            stop: Unused.
        """
        head = _status_line(200) + _header_block(
            [("Transfer-Encoding", "chunked"), ("Connection", "close")]
        )
        _send(conn, head + b"5\r\nhello\r\n" + b"zz\r\n")
        _half_close(conn)


@dataclass(frozen=True)
class Hang(Fault):
    """Read the request and send nothing for ``seconds`` (or until stop).

    Attributes:
        seconds: How long to hold the silent connection open.
    """

    seconds: float = 5.0

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Wait silently.

        Args:
            conn: The client socket.
            stop: Ends the wait early when set.
        """
        stop.wait(self.seconds)


@dataclass(frozen=True)
class Drip(Fault):
    """200 with ``Content-Length`` whose body is sent one byte per interval.

    Stops early when the server stops or the client disconnects.

    Attributes:
        body: Full response body.
        interval: Seconds between bytes.
    """

    body: bytes = b"drip"
    interval: float = 0.05

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Send headers, then the body byte by byte.

        Args:
            conn: The client socket.
            stop: Ends the drip early when set.
        """
        head = _status_line(200) + _header_block(
            [("Content-Length", str(len(self.body))), ("Connection", "close")]
        )
        if not _send(conn, head):
            return
        for index in range(len(self.body)):
            if index and stop.wait(self.interval):
                return
            if not _send(conn, self.body[index : index + 1]):
                return
        _half_close(conn)


@dataclass(frozen=True)
class StallHeaders(Fault):
    """Send the status line, wait ``seconds``, then the rest of a 200 ``b"ok"``.

    Attributes:
        seconds: Pause between the status line and the headers.
    """

    seconds: float = 1.0

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Send the status line, pause, then finish the response.

        Args:
            conn: The client socket.
            stop: Aborts (closing without the rest) when set.
        """
        if not _send(conn, _status_line(200)):
            return
        if stop.wait(self.seconds):
            return
        rest = _header_block([("Content-Length", "2"), ("Connection", "close")])
        _send(conn, rest + b"ok")
        _half_close(conn)


@dataclass(frozen=True)
class DripHeaders(Fault):
    """Send the status line, then the header block one byte per ``interval``.

    The dripped header is ``X-Drip: aaaa...`` long enough to last about ``seconds``; then
    the rest of a 200 ``b"ok"`` follows. Every byte arrives well within any read timeout,
    so only a deadline for the whole call can end it early.

    Attributes:
        seconds: How long the header block takes to arrive.
        interval: Seconds between bytes.
    """

    seconds: float = 8.0
    interval: float = 0.05

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Send the status line, drip the headers, finish the response.

        Args:
            conn: The client socket.
            stop: Aborts (closing without the rest) when set.
        """
        if not _send(conn, _status_line(200)):
            return
        count = max(1, int(self.seconds / self.interval))
        dripped = b"X-Drip: " + b"a" * count
        for index in range(len(dripped)):
            if index and stop.wait(self.interval):
                return
            if not _send(conn, dripped[index : index + 1]):
                return
        rest = b"\r\n" + _header_block([("Content-Length", "2"), ("Connection", "close")])
        _send(conn, rest + b"ok")
        _half_close(conn)


@dataclass(frozen=True)
class StallBody(Fault):
    """200 declaring ``declared`` body bytes: send ``sent`` of them, then stall.

    The connection stays open and silent for ``seconds`` (or until stop), then is closed.

    Attributes:
        declared: Value of ``Content-Length``.
        sent: Body bytes sent before the stall.
        seconds: Length of the stall.
    """

    declared: int = 100
    sent: int = 10
    seconds: float = 8.0

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Send the head and part of the body, then wait silently.

        Args:
            conn: The client socket.
            stop: Ends the stall early when set.
        """
        head = _status_line(200) + _header_block(
            [("Content-Length", str(self.declared)), ("Connection", "close")]
        )
        if _send(conn, head + b"x" * self.sent):
            stop.wait(self.seconds)


@dataclass(frozen=True)
class Raw(Fault):
    """Send arbitrary bytes: a server that does not speak HTTP properly.

    Attributes:
        chunks: Byte strings sent in order.
        interval: Seconds between chunks.
        hold: Seconds the connection stays open (silent) after the last chunk.
        reset: End with a TCP RST (``SO_LINGER(1, 0)``) instead of a FIN.
    """

    chunks: Tuple[bytes, ...] = ()
    interval: float = 0.0
    hold: float = 0.0
    reset: bool = False

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Send the chunks, hold the connection, then half-close (or reset).

        Args:
            conn: The client socket.
            stop: Ends the sending and the hold early when set.
        """
        for index, chunk in enumerate(self.chunks):
            if index and self.interval and stop.wait(self.interval):
                return
            if not _send(conn, chunk):
                return
        if self.hold and stop.wait(self.hold):
            return
        if self.reset:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return
        _half_close(conn)


@dataclass(frozen=True)
class AnswerBeforeBody(Fault):
    """Read the request head only, answer at once, before the request body arrives.

    The request is not recorded; the body the client sends is never read. The connection
    stays open ``hold`` seconds after the answer, then is closed.

    Attributes:
        payload: The bytes answered (a complete response, usually).
        hold: Seconds the connection stays open after the answer.
    """

    reads_request: ClassVar[bool] = False

    payload: bytes = b""
    hold: float = 0.0

    def perform(self, conn: socket.socket, stop: threading.Event) -> None:
        """Read up to the end of the head, send the payload, hold.

        Args:
            conn: The client socket.
            stop: Ends the hold early when set.
        """
        buf = b""
        while b"\r\n\r\n" not in buf and len(buf) < MAX_HEAD_BYTES:
            try:
                chunk = conn.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
        if not _send(conn, self.payload):
            return
        if self.hold:
            stop.wait(self.hold)
        _half_close(conn)


def respond(
    status: int = 200, headers: Mapping[str, str] | None = None, body: bytes = b"ok"
) -> Respond:
    """Create a well-formed response fault.

    Args:
        status: Status code.
        headers: Extra headers.
        body: Response body.

    Returns:
        The fault.
    """
    return Respond(status=status, headers=_pairs(headers), body=body)


def close_without_answer() -> CloseWithoutAnswer:
    """Create a fault that closes after reading the request.

    Returns:
        The fault.
    """
    return CloseWithoutAnswer()


def reset_after_request() -> ResetAfterRequest:
    """Create a fault that resets (RST) after reading the request.

    Returns:
        The fault.
    """
    return ResetAfterRequest()


def close_before_request() -> CloseBeforeRequest:
    """Create a fault that closes immediately after accept.

    Returns:
        The fault.
    """
    return CloseBeforeRequest()


def garbage_status() -> GarbageStatus:
    r"""Create a fault answering ``b"HELLO WORLD\\r\\n\\r\\n"``.

    Returns:
        The fault.
    """
    return GarbageStatus()


def truncated_body(declared: int = 100, sent: int = 10) -> TruncatedBody:
    """Create a fault sending fewer body bytes than declared.

    Args:
        declared: Advertised ``Content-Length``.
        sent: Bytes actually sent.

    Returns:
        The fault.
    """
    return TruncatedBody(declared=declared, sent=sent)


def broken_chunked() -> BrokenChunked:
    """Create a fault sending a malformed chunked body.

    Returns:
        The fault.
    """
    return BrokenChunked()


def hang(seconds: float) -> Hang:
    """Create a fault that stays silent for ``seconds``.

    Args:
        seconds: Silence duration.

    Returns:
        The fault.
    """
    return Hang(seconds=seconds)


def drip(body: bytes, interval: float) -> Drip:
    """Create a fault sending ``body`` one byte at a time.

    Args:
        body: Response body.
        interval: Seconds between bytes.

    Returns:
        The fault.
    """
    return Drip(body=body, interval=interval)


def stall_headers(seconds: float) -> StallHeaders:
    """Create a fault pausing after the status line.

    Args:
        seconds: Pause length.

    Returns:
        The fault.
    """
    return StallHeaders(seconds=seconds)


def retry_after(status: int, value: str | int) -> Respond:
    """Create a throttling response with a ``Retry-After`` header.

    Args:
        status: Status code, e.g. 429 or 503.
        value: Header value (seconds or HTTP date).

    Returns:
        The fault.
    """
    return respond(status, {"Retry-After": str(value)}, b"retry later")


def redirect(location: str, status: int = 302) -> Respond:
    """Create a redirect response.

    Args:
        location: ``Location`` header value.
        status: Redirect status code.

    Returns:
        The fault.
    """
    return respond(status, {"Location": location}, b"")


def drip_headers(seconds: float = 8.0, interval: float = 0.05) -> DripHeaders:
    """Create a fault whose header block arrives one byte per ``interval``.

    Args:
        seconds: How long the header block takes to arrive.
        interval: Seconds between bytes.

    Returns:
        The fault.
    """
    return DripHeaders(seconds=seconds, interval=interval)


def stall_body(declared: int = 100, sent: int = 10, seconds: float = 8.0) -> StallBody:
    """Create a fault that sends part of the body and then stalls.

    Args:
        declared: Advertised ``Content-Length``.
        sent: Bytes sent before the stall.
        seconds: Length of the stall.

    Returns:
        The fault.
    """
    return StallBody(declared=declared, sent=sent, seconds=seconds)


def raw(*chunks: bytes, interval: float = 0.0, hold: float = 0.0, reset: bool = False) -> Raw:
    """Create a fault sending arbitrary bytes.

    Args:
        *chunks: Byte strings sent in order.
        interval: Seconds between chunks.
        hold: Seconds the connection stays open after the last chunk.
        reset: End with a TCP RST instead of a FIN.

    Returns:
        The fault.
    """
    return Raw(chunks=tuple(chunks), interval=interval, hold=hold, reset=reset)


def answer_before_body(payload: bytes, hold: float = 0.0) -> AnswerBeforeBody:
    """Create a fault answering as soon as the request head has arrived.

    Args:
        payload: The bytes to answer with.
        hold: Seconds the connection stays open after the answer.

    Returns:
        The fault.
    """
    return AnswerBeforeBody(payload=payload, hold=hold)


# ------------------------------------------------------------------- server


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Parse a request head leniently.

    Args:
        head: Bytes before the blank line.

    Returns:
        ``(request_line, method, target, headers)``.
    """
    lines = head.decode("latin-1").split("\r\n")
    request_line = lines[0]
    parts = request_line.split(" ")
    method = parts[0]
    target = parts[1] if len(parts) > 1 else ""
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    return request_line, method, target, headers


def _content_length(headers: Mapping[str, str]) -> int:
    """Extract a bounded, non-negative ``Content-Length``.

    Args:
        headers: Parsed request headers.

    Returns:
        The length, 0 if absent or invalid.
    """
    for name, value in headers.items():
        if name.lower() == "content-length":
            try:
                return max(0, min(int(value), MAX_BODY_BYTES))
            except ValueError:
                return 0
    return 0


class FaultServer(LoopbackServer):
    """Plain-socket server that answers each connection with one :class:`Fault`.

    Single use: after :meth:`stop` it cannot be restarted.

    Attributes:
        default: Fault used once the script is exhausted.
        read_timeout: Socket timeout (seconds) while reading a request.
    """

    host: str = HOST

    def __init__(
        self,
        default: Fault | None = None,
        read_timeout: float = 5.0,
        max_head: int = MAX_HEAD_BYTES,
    ) -> None:
        """Create a stopped server.

        Args:
            default: Fault used when the script is empty; ``respond()`` if None.
            read_timeout: Socket timeout for reading each request.
            max_head: Longest request head read (bytes); more is left unread.
        """
        self.default: Fault = default if default is not None else respond()
        self.read_timeout = read_timeout
        self.max_head = max_head
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._script: deque[Fault] = deque()
        self._connections = 0
        self._request_lines: list[str] = []
        self._requests: list[FaultRequest] = []
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._live: set[socket.socket] = set()
        self._port: int | None = None

    # ------------------------------------------------------------------ life

    def start(self) -> FaultServer:
        """Bind ``127.0.0.1:0``, listen and start the accept thread.

        Returns:
            The server itself.

        Raises:
            RuntimeError: If already started.
        """
        if self._listener is not None:
            raise RuntimeError("FaultServer can only be started once")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((HOST, 0))
            listener.listen(64)
            listener.settimeout(_ACCEPT_POLL)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept_loop,
            args=(listener,),
            name=f"FaultServer-{self._port}",
            daemon=True,
        )
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, wake all faults, close all sockets, join threads.

        Idempotent.

        Args:
            timeout: Upper bound in seconds for the whole shutdown.
        """
        listener = self._listener
        if listener is None or self._stop.is_set():
            return
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self._accept_thread is not None:
            self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        listener.close()
        while True:
            with self._lock:
                sockets = list(self._live)
                pending = [t for t in self._threads if t.is_alive()]
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                break
            pending[0].join(min(remaining, _ACCEPT_POLL))
        with self._lock:
            leftovers = list(self._live)
            self._live.clear()
            self._threads = [t for t in self._threads if t.is_alive()]
        for sock in leftovers:
            sock.close()

    # --------------------------------------------------------------- script

    def script(self, faults: Sequence[Fault]) -> None:
        """Replace the pending script; one fault per future connection.

        Args:
            faults: Faults applied to the next connections, in order.
        """
        with self._lock:
            self._script = deque(faults)

    @property
    def pending(self) -> int:
        """Number of scripted faults not yet consumed."""
        with self._lock:
            return len(self._script)

    @property
    def connections(self) -> int:
        """Number of accepted connections."""
        with self._lock:
            return self._connections

    @property
    def request_lines(self) -> list[str]:
        """Snapshot of received request lines, e.g. ``"GET /x HTTP/1.1"``."""
        with self._lock:
            return list(self._request_lines)

    @property
    def requests(self) -> list[FaultRequest]:
        """Snapshot of received requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    # ------------------------------------------------------------- internals

    def _accept_loop(self, listener: socket.socket) -> None:
        """Accept connections until stopped, one thread per connection.

        Args:
            listener: The listening socket (polled with a short timeout).
        """
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                if self._stop.is_set():
                    conn.close()
                    return
                self._connections += 1
                fault = self._script.popleft() if self._script else self.default
                self._live.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
                thread = threading.Thread(
                    target=self._serve,
                    args=(conn, fault),
                    name=f"FaultServer-{self._port}-conn{self._connections}",
                    daemon=True,
                )
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, fault: Fault) -> None:
        """Handle one connection: read and record the request, run the fault.

        Args:
            conn: The accepted socket.
            fault: The behaviour chosen for this connection.
        """
        try:
            conn.settimeout(self.read_timeout)
            if not fault.reads_request or self._read_request(conn):
                fault.perform(conn, self._stop)
        except OSError:
            pass
        finally:
            with self._lock:
                self._live.discard(conn)
            conn.close()

    def _read_request(self, conn: socket.socket) -> bool:
        """Read one request head (+ Content-Length body) and record it.

        Args:
            conn: The client socket.

        Returns:
            True if any bytes were received (and recorded), False if the
            client sent nothing before closing or timing out.
        """
        buf = b""
        while b"\r\n\r\n" not in buf and len(buf) < self.max_head:
            try:
                chunk = conn.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        if not buf:
            return False
        head, _, body = buf.partition(b"\r\n\r\n")
        request_line, method, target, headers = _parse_head(head[: self.max_head])
        length = _content_length(headers)
        while len(body) < length and not self._stop.is_set():
            try:
                chunk = conn.recv(min(65536, length - len(body)))
            except OSError:
                break
            if not chunk:
                break
            body += chunk
        with self._lock:
            self._request_lines.append(request_line)
            self._requests.append(FaultRequest(method, target, headers, body[:length]))
        return True
