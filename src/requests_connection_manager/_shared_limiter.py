"""A shared rate limit: permits from one Redis window, taken a lease at a time.

A permit per round trip is exact, but it puts a Redis round trip (100 to 250 µs on loopback,
a millisecond or more across a network) into every call. So a process that calls a host
steadily takes its permits in *leases*: one script grants several permits, which the
process hands to its own calls without asking Redis again until they are spent or the
lease ends. How it stays exact (never more than ``limit`` permits used in a window, across
every process):

- a lease's permits count in Redis from the moment they are granted: every other process
  sees them as taken;
- sliding window: they are stamped with the lease's end and used only before it, so each
  one stays in the window for at least a whole period after its use. The process times
  the lease from before it sent the script, on a clock that also runs while the machine
  is suspended (``CLOCK_BOOTTIME`` on Linux; elsewhere the monotonic clock), and ends it
  1 % early (clock rates drift by far less);
- fixed window: they belong to the window they were granted in, and the lease ends with it
  (a millisecond early: the script reads Redis's clock in whole milliseconds).

How it stays fair:

- a lease is at most half of what is free in the window, so the last permits of a window
  go one at a time, to whoever asks first;
- a lease is at most :data:`MAX_LEASE` permits, at most 1/16 of the limit (a limit under
  32 is never leased: every permit is its own round trip), and lasts at most
  :data:`LEASE_SECONDS`, at most a tenth of the period;
- its size follows this process's own pace: one permit first, then what the process used
  in one lease time at its last pace;
- unused permits are given back in the next script for this host, by the ticker once the
  lease ended, and when the manager closes (the link keeps a limiter that holds some until
  then, even when its host is forgotten); a forked child drops its parent's lease, and
  names its permits with ids of its own.

The cost: a permit used late in a lease stays counted up to a lease longer than it would
alone, and permits leased by a busy process wait for it near the limit. The quota is never
exceeded; near its limit it may be used a little less.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import _forksafe
from ._fleet_scripts import PERMIT_FIXED, PERMIT_SLIDING, HostKeys
from ._limiter import MIN_WAIT, Limiter

if TYPE_CHECKING:
    from ._shared import SharedLink
    from .config import RateLimitConfig

__all__ = ["LEASE_SECONDS", "MAX_LEASE", "SharedLimiter"]

#: The most permits one script grants to one process.
MAX_LEASE = 64
#: The longest a lease lasts, seconds (and never more than a tenth of the period).
LEASE_SECONDS = 0.1
# The share of a lease this process uses: it ends its leases this much early.
_LEASE_USED = 0.99
# A limit is leased in parts of at most 1/_SHARE of it.
_SHARE = 16


def _lease_clock() -> Callable[[], float]:
    """Seconds that also advance while the machine sleeps (Redis's clock does)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is None:  # pragma: no cover - not Linux
        return time.monotonic
    return functools.partial(time.clock_gettime, boottime)


class _Lease:
    """Permits granted by one script: ``used`` of ``granted`` handed out until ``ends``."""

    __slots__ = ("ends", "granted", "lease_id", "started", "used", "window")

    def __init__(
        self,
        lease_id: str,
        granted: int,
        started: float,
        ends: float,
        window: int,
        used: int = 1,  # the permit of the call that asked for it
    ) -> None:
        self.lease_id = lease_id
        self.granted = granted
        self.used = used
        self.started = started
        self.ends = ends
        self.window = window

    def take(self, now: float) -> bool:
        if self.used < self.granted and now < self.ends:
            self.used += 1
            return True
        return False


class SharedLimiter:
    """A rate limit kept in Redis, leased to this process, with an in-process twin.

    Args:
        link: The manager's link.
        settings: The limit.
        keys: The host's keys.
        local: The twin used while Redis is down.
        clock: Seconds for lease ends (by default one that runs during a suspend).
    """

    def __init__(
        self,
        link: SharedLink,
        settings: RateLimitConfig,
        keys: HostKeys,
        local: Limiter,
        clock: Optional[Callable[[], float]] = None,
    ) -> None:
        self._link = link
        self._local = local
        self._clock = clock or _lease_clock()
        self._limit = settings.requests
        self._period_ms = max(1, round(settings.period * 1000))
        self._sliding = settings.strategy == "sliding-window"
        if self._sliding:
            self._script = PERMIT_SLIDING
            self._key = keys.sliding(self._limit, self._period_ms)
        else:
            self._script = PERMIT_FIXED
            self._key = keys.fixed(self._limit, self._period_ms)
        self._cap = max(1, min(MAX_LEASE, self._limit // _SHARE))
        # Whole milliseconds in Redis; the local end is never later than Redis's stamp.
        self._lease_ms = max(1, math.floor(min(LEASE_SECONDS, settings.period / 10) * 1000))
        self._lock = threading.Lock()
        self._lease: Optional[_Lease] = None
        self._asking = False  # one thread asks for a lease at a time
        _forksafe.register(self)

    # ------------------------------------------------------------------ the call path
    def try_acquire(self) -> float:
        """Take a permit: from this process's lease, else from Redis (or the local twin)."""
        with self._lock:
            now = self._clock()  # read here: a thread held up before the lock reads it late
            lease = self._lease
            if lease is not None and lease.take(now):
                return 0.0
            asking = not self._asking
            if asking:  # this thread asks for the next lease and gives this one back
                self._asking = True
                self._lease = None
                wanted = self._wanted(lease, now)
            else:  # another thread is asking: this call takes one permit of its own
                lease, wanted = None, 1
        try:
            return self._ask(wanted, lease, install=asking)
        finally:
            if asking:
                with self._lock:
                    self._asking = False

    def _wanted(self, last: Optional[_Lease], now: float) -> int:
        """The next lease's size: what this process used in one lease time, at its pace."""
        if last is None or self._cap == 1:
            return 1
        if last.used < last.granted:  # it ended before it was spent
            return max(1, min(self._cap, last.used))
        elapsed = now - last.started
        pace = last.granted * self._lease_ms / 1000 / max(elapsed, 1e-6)
        return max(1, min(self._cap, math.ceil(pace)))

    def _ask(self, wanted: int, back: Optional[_Lease], install: bool) -> float:
        link = self._link
        if not link.usable():  # local state; a give-back has nothing to give back to
            return self._local.try_acquire() if wanted else 0.0
        started = self._clock()
        lease_id = link.unique() if self._sliding and wanted else ""
        reply = link.run(self._script, [self._key], self._args(wanted, lease_id, back))
        if not wanted:
            return 0.0
        if reply is None:  # Redis failed just now: the link fails over to local state
            return self._local.try_acquire()
        granted = int(reply[0])
        if granted == 0:
            return max(int(reply[2]) / 1000, MIN_WAIT)
        if install:
            lease_ms = self._lease_ms
            if not self._sliding:  # the window's end, less the ms Redis's clock was rounded by
                lease_ms = min(lease_ms, int(reply[2]) - 1)
            ends = started + lease_ms / 1000 * _LEASE_USED
            window = -1 if self._sliding else int(reply[3])
            with self._lock:
                self._lease = _Lease(lease_id, granted, started, ends, window)
            if granted > 1:
                link.hold(self)
        return 0.0

    def _args(self, wanted: int, lease_id: str, back: Optional[_Lease]) -> list[Any]:
        unused = 0 if back is None else back.granted - back.used
        if self._sliding:
            if unused > 0 and back is not None:
                give = [back.lease_id, back.used + 1, back.granted]
            else:
                give = ["", 0, 0]
            return [self._limit, self._period_ms, wanted, lease_id, self._lease_ms, *give]
        window = -1 if back is None else back.window
        return [self._limit, self._period_ms, wanted, window, unused]

    # ------------------------------------------------------------------ off the call path
    def tick(self) -> None:
        """The ticker's work: give back the unused permits of a lease that ended."""
        self._give_back(ended_only=True)

    def close(self) -> None:
        """The manager closes: give back the unused permits of the current lease."""
        self._give_back(ended_only=False)

    def _give_back(self, ended_only: bool) -> None:
        with self._lock:
            lease = self._lease
            if (
                self._asking
                or lease is None
                or lease.used >= lease.granted
                or (ended_only and self._clock() < lease.ends)
            ):
                return
            self._asking = True
            # What it used stays, for the next lease's size; nothing is left to hand out.
            self._lease = _Lease(
                lease.lease_id, lease.used, lease.started, lease.ends, lease.window, lease.used
            )
        try:
            self._ask(0, lease, install=False)
        finally:
            with self._lock:
                self._asking = False

    def reinit_after_fork(self) -> None:
        """In a forked child: a fresh lock, and no lease (the parent's permits are its own)."""
        self._lock = threading.Lock()
        self._lease = None
        self._asking = False

    def holds(self) -> bool:
        """Tell whether this limiter may hold leased permits it has not used."""
        lease = self._lease
        return lease is not None and lease.used < lease.granted

    def quiet(self) -> bool:
        """The shared window lives in Redis; only the local twin's matters here."""
        return self._local.quiet()
