"""The watchdog: one thread that cuts an attempt's connection when its deadline passes."""

from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from requests_connection_manager._watchdog import Watch, Watchdog

pytestmark = pytest.mark.timeout(10)


def _conn(sock: socket.socket) -> Any:
    return SimpleNamespace(sock=sock, _rcm_watch=None)


def test_a_read_blocked_past_the_deadline_is_woken() -> None:
    """A recv with a 30 s timeout returns at the 0.2 s deadline, with EOF, and says so."""
    ours, theirs = socket.socketpair()
    watchdog = Watchdog(time.monotonic)
    try:
        watch = watchdog.watch(time.monotonic() + 0.2, threading.Event())
        watch.attach(_conn(ours))
        ours.settimeout(30)
        assert ours.recv(1) == b""
        assert watch.fired
    finally:
        watchdog.close()
        ours.close()
        theirs.close()


def test_an_attempt_that_ended_is_not_cut() -> None:
    """After end(), the deadline passing leaves the socket alone."""
    ours, theirs = socket.socketpair()
    watchdog = Watchdog(time.monotonic)
    try:
        watch = watchdog.watch(time.monotonic() + 0.05, threading.Event())
        watch.attach(_conn(ours))
        watch.end()
        later = watchdog.watch(time.monotonic() + 0.3, threading.Event())  # a marker to wait on
        ours.settimeout(5)
        theirs.sendall(b"x")
        assert ours.recv(1) == b"x"
        while later.active and not later.fired:
            time.sleep(0.01)
        assert not watch.fired
        theirs.sendall(b"y")
        assert ours.recv(1) == b"y"
    finally:
        watchdog.close()
        ours.close()
        theirs.close()


def test_a_connection_back_in_its_pool_is_not_cut() -> None:
    """detach() (the pool took the connection back) protects it from a late deadline."""
    ours, theirs = socket.socketpair()
    watchdog = Watchdog(time.monotonic)
    try:
        watch = watchdog.watch(time.monotonic() + 0.1, threading.Event())
        conn = _conn(ours)
        watch.attach(conn)
        watch.detach(conn)
        deadline = time.monotonic() + 5
        while not watch.fired and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watch.fired  # the deadline passed ...
        theirs.sendall(b"z")
        ours.settimeout(5)
        assert ours.recv(1) == b"z"  # ... and the socket still works
    finally:
        watchdog.close()
        ours.close()
        theirs.close()


def test_a_watch_without_a_watchdog_keeps_only_the_deadline() -> None:
    """Under a fake clock there is no watchdog: attach/detach/end do nothing."""
    watch = Watch(None, 5.0, threading.Event(), time.monotonic)
    conn = _conn(socket.socket())
    try:
        watch.attach(conn)
        watch.detach(conn)
        watch.end()
        assert conn._rcm_watch is None
    finally:
        conn.sock.close()


def test_close_stops_the_thread_and_fork_starts_fresh() -> None:
    """close() ends the thread; reinit_after_fork() leaves no thread and nothing watched."""
    watchdog = Watchdog(time.monotonic, name="rcm-watchdog-under-test")
    watchdog.watch(time.monotonic() + 60, threading.Event())
    threads = [t for t in threading.enumerate() if t.name == "rcm-watchdog-under-test"]
    assert threads
    watchdog.close()
    for thread in threads:
        thread.join(5)
    assert not any(t.is_alive() for t in threads)
    watchdog.reinit_after_fork()
    assert watchdog._thread is None
    assert watchdog._heap == []
