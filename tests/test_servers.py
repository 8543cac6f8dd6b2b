"""Self-tests for the loopback test servers in ``tests.servers`` and ``tests.faults``.

They also pin down how plain ``requests`` (2.34, urllib3 2.x) reports each
transport fault, which the library's own tests rely on.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import pytest
import requests
import urllib3.exceptions

from tests import faults
from tests.faults import FaultServer
from tests.servers import AppServer, free_port

pytestmark = pytest.mark.timeout(30)

CLIENT_TIMEOUT = 2.0


def _chain(exc: BaseException) -> list[BaseException]:
    """Flatten an exception, its exception args, ``.reason``, cause and context."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 50:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)
    return seen


def _wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds elapsed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def _raw_connect(port: int) -> socket.socket:
    """Open a raw TCP connection to 127.0.0.1:port with a 2 s timeout."""
    return socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)


def _recv_all(sock: socket.socket, limit: float = CLIENT_TIMEOUT) -> bytes:
    """Read until EOF, bounded by ``limit`` seconds and 1 MiB."""
    data = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and len(data) < 1024 * 1024:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    raise AssertionError("no EOF within the limit")


def _swallow(call: Callable[[], object]) -> None:
    """Run ``call`` ignoring request errors (for background client threads)."""
    with contextlib.suppress(requests.RequestException):
        call()


# --------------------------------------------------------------- AppServer


def test_app_unknown_path_is_404_and_recorded() -> None:
    """Unregistered paths answer 404 but still count as hits."""
    with AppServer() as srv:
        resp = requests.get(srv.url("/nope"), timeout=CLIENT_TIMEOUT)
        assert (resp.status_code, resp.content) == (404, b"not found")
        assert srv.hits("/nope") == 1
        assert srv.max_concurrent("/nope") == 0


def test_app_records_request_details() -> None:
    """The request log keeps method, path, query, headers and body."""
    with AppServer() as srv:
        srv.ok("/post")
        requests.post(
            srv.url("/post?a=1&b=2"),
            data=b"payload",
            headers={"X-Custom": "yes"},
            timeout=CLIENT_TIMEOUT,
        )
        (rec,) = srv.requests
        assert rec.method == "POST"
        assert rec.path == "/post"
        assert rec.query_string == "a=1&b=2"
        assert rec.headers["X-Custom"] == "yes"
        assert rec.headers["Content-Length"] == "7"
        assert rec.body == b"payload"


def test_app_sequence_rejects_empty() -> None:
    """An empty response list is a programming error."""
    srv = AppServer()
    with pytest.raises(ValueError, match="empty"):
        srv.sequence("/s", [])


def test_app_stop_wakes_slow_handler() -> None:
    """Stopping the server ends a long ``slow`` sleep promptly."""
    outcome: list[object] = []
    srv = AppServer().start()
    srv.slow("/slow", 20)

    def call() -> None:
        try:
            outcome.append(requests.get(srv.url("/slow"), timeout=5).status_code)
        except requests.ConnectionError as exc:
            outcome.append(exc)

    client = threading.Thread(target=call)
    client.start()
    assert _wait_for(lambda: srv.max_concurrent("/slow") == 1)
    start = time.monotonic()
    srv.stop()
    assert time.monotonic() - start < 1.0
    client.join(CLIENT_TIMEOUT)
    assert not client.is_alive()
    assert len(outcome) == 1
    assert outcome[0] == 200 or isinstance(outcome[0], requests.ConnectionError)


def test_app_barrier_passes_with_all_parties() -> None:
    """Four simultaneous requests pass a 4-party barrier together."""
    with AppServer() as srv:
        srv.barrier("/b", parties=4, timeout=2.0)
        with ThreadPoolExecutor(max_workers=4) as pool:
            got = list(pool.map(lambda _: requests.get(srv.url("/b"), timeout=5), range(4)))
        assert [(r.status_code, r.content) for r in got] == [(200, b"together")] * 4
        assert srv.max_concurrent("/b") == 4
        assert srv.hits("/b") == 4


def test_app_barrier_breaks_when_alone() -> None:
    """A lone request times out on the barrier and gets 500."""
    with AppServer() as srv:
        srv.barrier("/b", parties=2, timeout=0.3)
        start = time.monotonic()
        resp = requests.get(srv.url("/b"), timeout=CLIENT_TIMEOUT)
        assert (resp.status_code, resp.content) == (500, b"barrier broken")
        assert time.monotonic() - start >= 0.3
        again = requests.get(srv.url("/b"), timeout=CLIENT_TIMEOUT)
        assert again.status_code == 500


def test_app_stop_aborts_waiting_barrier() -> None:
    """Stopping the server releases a request waiting on a barrier."""
    srv = AppServer().start()
    srv.barrier("/b", parties=2, timeout=20)
    client = threading.Thread(
        target=_swallow, args=(lambda: requests.get(srv.url("/b"), timeout=5),)
    )
    client.start()
    assert _wait_for(lambda: srv.max_concurrent("/b") == 1)
    start = time.monotonic()
    srv.stop()
    assert time.monotonic() - start < 1.0
    client.join(CLIENT_TIMEOUT)
    assert not client.is_alive()


def test_app_max_concurrent_sequential_is_one() -> None:
    """Sequential requests never overlap inside the handler."""
    with AppServer() as srv:
        srv.ok("/x")
        for _ in range(3):
            requests.get(srv.url("/x"), timeout=CLIENT_TIMEOUT)
        assert srv.max_concurrent("/x") == 1
        assert srv.max_concurrent("/other") == 0


def test_app_stop_closes_keepalive_connections() -> None:
    """``stop`` ends handler threads even while a client keeps a connection open."""
    baseline = threading.active_count()
    srv = AppServer().start()
    srv.ok("/x")
    with requests.Session() as session:
        assert session.get(srv.url("/x"), timeout=CLIENT_TIMEOUT).status_code == 200
        assert session.get(srv.url("/x"), timeout=CLIENT_TIMEOUT).status_code == 200
        assert threading.active_count() > baseline
        start = time.monotonic()
        srv.stop()
        assert time.monotonic() - start < 1.0
        assert threading.active_count() == baseline
    srv.stop()  # idempotent


def test_app_lifecycle_errors() -> None:
    """Port access before start and a second start both raise."""
    srv = AppServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = srv.port
    with srv, pytest.raises(RuntimeError, match="once"):
        srv.start()


def test_free_port_gives_connection_refused() -> None:
    """Nothing listens on ``free_port()``: requests raises ConnectionError."""
    port = free_port()
    assert 0 < port < 65536
    with pytest.raises(requests.ConnectionError) as info:
        requests.get(f"http://127.0.0.1:{port}/", timeout=CLIENT_TIMEOUT)
    inner = info.value.args[0]
    assert isinstance(inner, urllib3.exceptions.MaxRetryError)
    assert isinstance(inner.reason, urllib3.exceptions.NewConnectionError)
    assert any(isinstance(e, ConnectionRefusedError) for e in _chain(info.value)) or (
        "refused" in str(inner.reason).lower()
    )


# ------------------------------------------------------------- FaultServer


def test_fault_script_order_then_default() -> None:
    """Scripted faults are used once each, in order, then the default applies."""
    with FaultServer() as srv:
        srv.script([faults.respond(500, body=b"a"), faults.respond(404, {"X-Y": "z"}, b"b")])
        srv.default = faults.respond(204, body=b"")
        assert srv.pending == 2
        got = [requests.get(srv.url("/"), timeout=CLIENT_TIMEOUT) for _ in range(4)]
        assert [r.status_code for r in got] == [500, 404, 204, 204]
        assert got[1].headers["X-Y"] == "z"
        assert srv.pending == 0


def test_fault_hang_released_by_stop() -> None:
    """``stop`` ends a hang and the client sees a clean EOF."""
    srv = FaultServer(default=faults.hang(30)).start()
    with _raw_connect(srv.port) as sock:
        sock.sendall(b"GET /h HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _wait_for(lambda: srv.request_lines == ["GET /h HTTP/1.1"])
        start = time.monotonic()
        srv.stop()
        assert time.monotonic() - start < 1.0
        assert _recv_all(sock) == b""


def test_fault_drip_stops_on_stop() -> None:
    """Stopping the server interrupts a long drip."""
    srv = FaultServer(default=faults.drip(b"x" * 100, 0.5)).start()
    with _raw_connect(srv.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
        start = time.monotonic()
        srv.stop()
        assert time.monotonic() - start < 1.0
        assert len(_recv_all(sock)) < 100


def test_fault_connection_counting_is_exact() -> None:
    """Each attempt is exactly one connection, whatever the fault."""
    with FaultServer() as srv:
        srv.script(
            [
                faults.close_before_request(),
                faults.close_without_answer(),
                faults.reset_after_request(),
                faults.respond(500),
            ]
        )
        for _ in range(6):
            with contextlib.suppress(requests.ConnectionError):
                requests.get(srv.url("/c"), timeout=CLIENT_TIMEOUT)
        assert srv.connections == 6
        assert len(srv.request_lines) == 5
        assert len(srv.requests) == 5


def test_fault_read_timeout_on_silent_client() -> None:
    """A client that sends nothing is dropped after ``read_timeout``, unrecorded."""
    with FaultServer(read_timeout=0.2) as srv, _raw_connect(srv.port) as sock:
        start = time.monotonic()
        assert _recv_all(sock) == b""
        assert 0.15 <= time.monotonic() - start < 1.5
        assert srv.connections == 1
        assert srv.requests == []


def test_fault_oversized_head_is_bounded() -> None:
    """A head without terminator is read only up to ~64 KiB and still answered."""
    with FaultServer() as srv, _raw_connect(srv.port) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nX-Big: " + b"a" * (80 * 1024))
        assert _wait_for(lambda: srv.request_lines == ["GET /big HTTP/1.1"])
        try:
            data = _recv_all(sock)
        except ConnectionResetError:
            data = b""  # unread bytes left in the server's buffer cause an RST
        assert data == b"" or data.startswith(b"HTTP/1.1 200 OK")


def test_fault_stop_restores_thread_count() -> None:
    """``stop`` joins the accept thread and every connection thread."""
    baseline = threading.active_count()
    srv = FaultServer(default=faults.hang(30)).start()
    socks = [_raw_connect(srv.port) for _ in range(3)]
    try:
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert _wait_for(lambda: len(srv.request_lines) == 3)
        assert threading.active_count() == baseline + 4
        start = time.monotonic()
        srv.stop()
        assert time.monotonic() - start < 1.0
        assert threading.active_count() == baseline
        srv.stop()  # idempotent
    finally:
        for sock in socks:
            sock.close()


def test_fault_lifecycle_errors() -> None:
    """Port access before start and a second start both raise."""
    srv = FaultServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = srv.url("/")
    with srv, pytest.raises(RuntimeError, match="once"):
        srv.start()
