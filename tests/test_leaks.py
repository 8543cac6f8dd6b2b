"""Nothing leaks: after many failing calls and ``close()``, descriptors and threads are back.

The baseline is the set of open descriptors (``/proc/self/fd``, number and target, so a
reused number pointing at a new socket counts as new) and the set of live threads. The
servers are started *before* it is taken and stay up until after the last check, so their
listening sockets and accept threads belong to the baseline. Their per-connection threads
end on their own once a fault is done (every fault here is short), so the final check polls
for up to 5 s, then compares exactly: one descriptor or one thread that was not there at the
baseline is a leak. Comparing sets rather than counts also keeps the check exact when a
thread or descriptor of an earlier test goes away meanwhile.

A warm-up call of every kind, through a throwaway manager, runs before the baseline so that
one-time, process-wide initialisation (lazy imports, the resolver's files) is not counted.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple, Optional

import pytest
import requests.exceptions as rex

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    ConnectionManagerError,
)
from tests import faults as f
from tests.fakes import FakeClock
from tests.faults import FaultServer
from tests.servers import free_port

pytestmark = pytest.mark.timeout(30)


class Baseline(NamedTuple):
    """What was open before: descriptors (number to target) and live threads."""

    fds: dict[str, str]
    threads: frozenset[threading.Thread]


def _descriptors() -> dict[str, str]:
    """Open descriptors of this process and what they point at (``socket:[inode]``...)."""
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the directory handle used for the listing itself
            continue
    return found


def _baseline() -> Baseline:
    gc.collect()  # garbage of earlier tests is theirs, not ours
    return Baseline(_descriptors(), frozenset(threading.enumerate()))


def _new_since(base: Baseline) -> tuple[dict[str, str], list[str]]:
    """Descriptors and threads that did not exist at the baseline."""
    fds = {fd: to for fd, to in _descriptors().items() if base.fds.get(fd) != to}
    threads = sorted(t.name for t in threading.enumerate() if t not in base.threads)
    return fds, threads


def _assert_nothing_new(base: Baseline, seconds: float = 5.0) -> None:
    """Poll up to ``seconds`` until nothing is open that was not open at the baseline."""
    deadline = time.monotonic() + seconds
    new = _new_since(base)
    while new != ({}, []) and time.monotonic() < deadline:
        time.sleep(0.05)
        new = _new_since(base)
    assert new == ({}, []), f"left behind: descriptors {new[0]}, threads {new[1]}"


def _wait_for_idle(servers: Iterable[FaultServer], seconds: float = 5.0) -> None:
    """Wait until no connection thread of ``servers`` is alive (their faults are done)."""
    prefixes = tuple(f"FaultServer-{server.port}-conn" for server in servers)
    deadline = time.monotonic() + seconds
    while any(t.name.startswith(prefixes) for t in threading.enumerate()):
        assert time.monotonic() < deadline, "fault server connections did not finish"
        time.sleep(0.02)


# Each kind: the fault server's default (None: nothing listens on the port), per-call
# keyword arguments, and the requests class every failure of that kind must be. Every
# failure must also be a ConnectionManagerError.
KINDS: dict[str, tuple[Optional[f.Fault], dict[str, float], type[rex.RequestException]]] = {
    "refused_port": (None, {}, rex.ConnectionError),
    "close_without_answer": (f.close_without_answer(), {}, rex.ConnectionError),
    "reset_after_request": (f.reset_after_request(), {}, rex.ConnectionError),
    "garbage_status": (f.garbage_status(), {}, rex.ConnectionError),
    "truncated_body": (f.truncated_body(), {}, rex.ChunkedEncodingError),
    "hang": (f.hang(0.3), {"timeout": 0.02}, rex.ReadTimeout),
    "status_500": (f.respond(500), {}, rex.RetryError),
    # The call that opens the breaker raises its real error (a RetryError); the later
    # ones raise CircuitBreakerOpen (a ConnectionError), counted separately below.
    "breaker_open": (f.respond(500), {}, rex.RequestException),
}


def test_failing_calls_leave_no_descriptor_or_thread_behind() -> None:
    """300 failing calls of eight kinds through one manager, then close(): nothing left."""
    with ExitStack() as stack:
        servers = {
            kind: stack.enter_context(FaultServer(default=fault))
            for kind, (fault, _, _) in KINDS.items()
            if fault is not None
        }
        urls = {kind: server.url("/x") for kind, server in servers.items()}
        urls["refused_port"] = f"http://127.0.0.1:{free_port()}/x"

        def new_manager(clock: FakeClock) -> ConnectionManager:
            # Only the breaker_open server's endpoint has a breaker (threshold 2; it never
            # recovers on the fake clock), so the other kinds keep reaching their servers.
            breaker = {
                "circuit_breaker_failure_threshold": 2,
                "circuit_breaker_recovery_timeout": 1_000_000,
            }
            return ConnectionManager(
                max_retries=2,
                backoff_factor=0.1,
                circuit_breaker_failure_threshold=None,
                endpoint_configs={f"127.0.0.1:{servers['breaker_open'].port}": breaker},
                clock=clock,
            )

        def call(cm: ConnectionManager, kind: str) -> str:
            _, kwargs, requests_class = KINDS[kind]
            with pytest.raises(requests_class) as info:
                cm.get(urls[kind], **kwargs)
            assert isinstance(info.value, ConnectionManagerError)
            return type(info.value).__name__

        with new_manager(FakeClock()) as warm:
            for kind in KINDS:
                call(warm, kind)
        _wait_for_idle(servers.values())  # the warm-up's hang(0.3) connections
        baseline = _baseline()
        breaker_connections = servers["breaker_open"].connections

        clock = FakeClock()
        cm = new_manager(clock)
        kinds = list(KINDS)
        seen: dict[str, Counter[str]] = {kind: Counter() for kind in kinds}
        for n in range(300):
            kind = kinds[n % len(kinds)]
            seen[kind][call(cm, kind)] += 1
        cm.close()

        assert sum(sum(c.values()) for c in seen.values()) == 300
        # The breaker opened during the first call (its real error); every later call was
        # refused without touching the network.
        refused = seen["breaker_open"][CircuitBreakerOpen.__name__]
        assert refused == sum(seen["breaker_open"].values()) - 1, seen["breaker_open"]
        assert servers["breaker_open"].connections == breaker_connections + 2
        assert clock.sleeps, "retries backed off on the fake clock, not in real time"
        _assert_nothing_new(baseline)


class _KeepAlive(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: one server thread per open connection, until it closes."""

    protocol_version = "HTTP/1.1"
    timeout = 10  # a connection the client never closes ends the thread eventually

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        """Silence request logging."""


@contextmanager
def _keep_alive_server() -> Iterator[str]:
    """Serve :class:`_KeepAlive` on an ephemeral loopback port; yield a URL on it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/x"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _batch_and_session_then_close(url: str, hold_responses: bool, settle: float) -> None:
    baseline = _baseline()
    cm = ConnectionManager()
    results = cm.batch_request([("GET", url, {})] * 20, max_workers=5)
    assert [r.status_code for r in results] == [200] * 20  # type: ignore[union-attr]
    assert cm.session.get(url).text == "ok"
    fds, threads = _new_since(baseline)
    assert fds  # pooled keep-alive connections (both ends), open until close()
    assert threads  # the server's threads serving them
    if not hold_responses:
        del results
    cm.close()
    _assert_nothing_new(baseline, settle)


def test_close_leaves_no_thread_or_socket_behind() -> None:
    """batch_request (a thread pool) and cm.session calls, then close(): back to baseline.

    The keep-alive server holds a thread per open connection until the client closes it,
    so pooled connections that close() failed to release would show up as threads too.
    """
    with _keep_alive_server() as url:
        _batch_and_session_then_close(url, hold_responses=False, settle=5.0)


def test_close_releases_pooled_connections_even_while_responses_are_held() -> None:
    """close() releases idle pooled connections although the caller keeps the responses."""
    with _keep_alive_server() as url:
        _batch_and_session_then_close(url, hold_responses=True, settle=1.0)
