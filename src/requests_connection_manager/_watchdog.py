"""The deadline of an attempt, enforced on the socket whatever the server does.

Socket timeouts bound each read, not a sequence of reads: a server that drips its status
line and headers one byte at a time never trips a read timeout, and the TLS handshake and
the request upload are no better. To bound the *whole* attempt by ``total_timeout``
without a thread per call, one watchdog thread per transport keeps the deadlines of the
attempts in flight in a heap and, when one passes, shuts down the socket of that attempt's
connection (``shutdown(SHUT_RDWR)``, never ``close()`` from another thread). The blocked
read returns at once; the pipeline sees that the watchdog fired and reports the caller's
deadline, not a failure of the host.

How a connection finds its attempt: the attempt sets :data:`CURRENT` (a context variable)
around ``HTTPAdapter.send``; the connection classes of :mod:`._transport` attach
themselves to it when they open a socket (before TLS) and when they send a request on a
reused one. A connection that goes back to its pool is detached first (under the
watchdog's lock), so the watchdog can never cut a connection another request has taken.

The thread starts with the first watched attempt, sleeps while nothing is watched, and
stops with :meth:`Watchdog.close`. After ``os.fork()`` the child starts with no thread and
an empty heap.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import socket
import threading
from typing import Any, Callable, Optional

__all__ = ["CURRENT", "Watch", "Watchdog"]

# The longest the thread sleeps without looking (it is woken for every earlier deadline).
_IDLE_WAIT = 5.0


class Watch:
    """What one attempt's connections need to know: its deadline and its manager.

    Attributes:
        deadline: Monotonic time at which the attempt's connections are cut, or None.
        closed: Set when the manager closes; a wait for a pooled connection ends.
        clock: Monotonic seconds (the manager's clock).
        ssl_context: The ``ssl.SSLContext`` of the attempt, for the pool key, or None.
        fired: True once the deadline passed while the attempt was in flight.
    """

    __slots__ = (
        "_conns",
        "_watchdog",
        "active",
        "clock",
        "closed",
        "deadline",
        "fired",
        "ssl_context",
    )

    def __init__(
        self,
        watchdog: Optional[Watchdog],
        deadline: Optional[float],
        closed: threading.Event,
        clock: Callable[[], float],
        ssl_context: Any = None,
    ) -> None:
        self._watchdog = watchdog
        self._conns: list[Any] = []
        self.deadline = deadline
        self.closed = closed
        self.clock = clock
        self.ssl_context = ssl_context
        self.active = True
        self.fired = False

    def attach(self, conn: Any) -> None:
        """Watch ``conn`` (a urllib3 connection) for the rest of the attempt."""
        watchdog = self._watchdog
        if watchdog is None:
            return
        with watchdog.lock:
            if not self.active:
                return
            conn._rcm_watch = self
            if conn not in self._conns:
                self._conns.append(conn)

    def detach(self, conn: Any) -> None:
        """Stop watching ``conn``: it is going back to its pool."""
        watchdog = self._watchdog
        if watchdog is None:
            return
        with watchdog.lock:
            if getattr(conn, "_rcm_watch", None) is self:
                conn._rcm_watch = None

    def end(self) -> None:
        """The attempt is over: its connections are no longer watched."""
        watchdog = self._watchdog
        if watchdog is None:
            return
        with watchdog.lock:
            self.active = False
            for conn in self._conns:
                if getattr(conn, "_rcm_watch", None) is self:
                    conn._rcm_watch = None
            self._conns.clear()

    def _fire(self) -> None:
        """Cut every connection still attached (under the watchdog's lock)."""
        if not self.active:
            return
        self.fired = True
        for conn in self._conns:
            if getattr(conn, "_rcm_watch", None) is not self:
                continue  # back in its pool, or taken by another attempt
            sock = getattr(conn, "sock", None) or getattr(conn, "_rcm_sock", None)
            if isinstance(sock, socket.socket):
                # The base class's shutdown, on an SSLSocket too: it leaves the TLS object
                # alone and only wakes the blocked read. A closed socket: nothing to wake.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


#: The watch of the attempt running in this context, if it has a deadline.
CURRENT: contextvars.ContextVar[Optional[Watch]] = contextvars.ContextVar("rcm_watch", default=None)


class Watchdog:
    """One thread that cuts the connections of attempts past their deadline.

    Args:
        clock: Returns monotonic seconds (the manager's clock).
        name: The thread's name.
    """

    def __init__(self, clock: Callable[[], float], name: str = "rcm-watchdog") -> None:
        self._clock = clock
        self._name = name
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._heap: list[tuple[float, int, Watch]] = []
        self._seq = itertools.count()
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def watch(self, deadline: float, closed: threading.Event, ssl_context: Any = None) -> Watch:
        """Start watching an attempt that must end by ``deadline`` (monotonic seconds)."""
        watch = Watch(self, deadline, closed, self._clock, ssl_context)
        with self.lock:
            if self._closed:
                return watch  # a closing transport: nothing will be sent anyway
            heapq.heappush(self._heap, (deadline, next(self._seq), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0][2] is watch:
                self._wake.notify()
        return watch

    def _run(self) -> None:
        with self.lock:
            while not self._closed:
                while self._heap and not self._heap[0][2].active:
                    heapq.heappop(self._heap)  # ended before its deadline
                if not self._heap:
                    self._wake.wait(_IDLE_WAIT)
                    continue
                deadline, _, watch = self._heap[0]
                delay = deadline - self._clock()
                if delay > 0:
                    self._wake.wait(min(delay, _IDLE_WAIT))
                    continue
                heapq.heappop(self._heap)
                watch._fire()

    def close(self) -> None:
        """Stop the thread (attempts in flight keep their socket timeouts)."""
        with self.lock:
            self._closed = True
            self._heap.clear()
            self._wake.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def reinit_after_fork(self) -> None:
        """In a forked child: no thread, nothing watched, a fresh lock."""
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._heap = []
        self._thread = None
