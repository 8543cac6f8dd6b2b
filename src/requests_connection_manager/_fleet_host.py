"""One host's shared state as one process sees it: a cache kept fresh by pub/sub.

A :class:`FleetHost` holds this process's copy of the host's breaker hash (state,
consecutive failures, opening time, version) and pause. A healthy call reads only the copy:
**zero round trips**. The copy is refreshed

- by every script this process runs (each returns the hash as it left it);
- by the events channel, when another process changes the breaker or the pause (the
  :class:`~._fleet_threads.Subscriber` hands messages over by host key);
- by reading Redis (one ``EVALSHA``) when the copy is not known to be fresh: never read
  yet, read before the current subscription was confirmed (so a message may have been
  missed), or, while there is no subscription, older than :data:`POLL_INTERVAL` (polling).

A copy only moves forward: a view with a lower version than the one held is ignored, so a
message and a script reply may arrive in any order. Times from Redis are converted by
differences (``opened`` and ``pause`` against the ``now`` that came with them), so clocks
need not agree.

What is written, and when:

- a failure (or, with a failure-ratio rule, a slow success) is written **at once**
  (``OUTCOME``): it may open the breaker, and the call that opens it must know;
- a success writes nothing, unless this process's copy says a failure streak is running
  (then it resets it at once, so the next failure does not open the breaker early);
- with a failure-ratio rule, the counts of successes are batched and flushed by the
  ticker at most every :data:`FLUSH_INTERVAL`; a failure carries the batch with it, so the
  ratio it is judged on is the fleet's;
- half-open probes hold leases (``PROBE_ACQUIRE``), renewed by the ticker every
  ``LEASE_SECONDS / 3`` while in flight and given back with the probe's verdict;
- a pause (``Retry-After``, a spent server quota) is written at once and published.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._fleet_scripts import (
    OUTCOME,
    PAUSE,
    PROBE_ACQUIRE,
    PROBE_DONE,
    READ,
    RENEW,
    STREAK_NEWS_MS,
    SUCCESSES,
    HostKeys,
    View,
    parse_view,
)

if TYPE_CHECKING:
    from ._clock import Clock
    from ._shared import SharedLink
    from .config import BreakerConfig

__all__ = [
    "FLUSH_INTERVAL",
    "LEASE_SECONDS",
    "POLL_INTERVAL",
    "PROBE_CLOSED",
    "PROBE_GRANTED",
    "PROBE_REFUSED",
    "FleetHost",
]

#: Seconds a copy read while unsubscribed stays usable (polling).
POLL_INTERVAL = 0.1
#: The shortest interval, seconds, between two flushes of one host's batched counts.
FLUSH_INTERVAL = 0.1
#: A probe lease's life, seconds; renewed every third of it while the probe is in flight.
LEASE_SECONDS = 3.0
#: The breaker hash's time to live, ms (refreshed by every write).
KEY_TTL_MS = 86_400_000
#: The longest shared pause, ms (the same cap as a local pause: one hour).
MAX_PAUSE_MS = 3_600_000
#: Buckets of the shared failure-rate window (as the local window).
WINDOW_BUCKETS = 10

# A pause that ends at most this much later (seconds) than the one last shared or heard
# of is not written again (it still applies locally, exactly).
_PAUSE_SLACK = 0.1

PROBE_REFUSED = 0
PROBE_GRANTED = 1
PROBE_CLOSED = 2


class FleetHost:
    """The cached shared state of one host (see the module docstring).

    Args:
        link: The manager's shared link.
        host: The host key.
        clock: The manager's clock (Redis times are converted to it).
        on_pause: ``HostState.pause_until(until, now)``: how a shared pause reaches the host.
    """

    def __init__(
        self,
        link: SharedLink,
        host: str,
        clock: Clock,
        on_pause: Callable[[float, float], float],
    ) -> None:
        self.keys = HostKeys(link.prefix, host)
        self._link = link
        self._clock = clock
        self._on_pause = on_pause
        self._lock = threading.Lock()
        self._state = "closed"
        self._fails = 0
        self._gen = -1
        self._opened = 0.0  # wall time on the manager's clock; 0.0: never opened
        self._known = False
        self._epoch = -1
        self._fetched = -math.inf
        self._settings: Optional[BreakerConfig] = None
        self._follow: Optional[Callable[[], None]] = None
        self._pending = [0, 0, 0, 0]  # calls, failures, slow, failed-or-slow
        self._flushed = 0.0
        self._leases: list[str] = []
        self._renewed = 0.0
        self._shared_pause = 0.0  # monotonic (manager's clock) end of the pause last shared
        self._busy_until = 0.0  # monotonic: every probe lease was taken when last asked
        self._catch_up = math.inf  # monotonic: when to publish news this process held back

    # ------------------------------------------------------------------------- wiring
    def attach(self, settings: BreakerConfig, follow: Callable[[], None]) -> None:
        """Give the host its breaker: its settings, and what to call when the copy changes."""
        self._settings = settings
        self._follow = follow

    def snapshot(self) -> tuple[str, int, Optional[datetime]]:
        """The copy: ``(state, consecutive failures, opening time or None)``."""
        with self._lock:
            opened = self._opened
            return (
                self._state,
                self._fails,
                datetime.fromtimestamp(opened, timezone.utc) if opened else None,
            )

    def usable(self) -> bool:
        """Tell whether Redis is usable now (else: local state)."""
        return self._link.usable()

    def _fresh(self) -> bool:
        if not self._known:
            return False
        link = self._link
        if link.live:
            return self._epoch == link.epoch
        return time.monotonic() - self._fetched < POLL_INTERVAL

    def current(self) -> bool:
        """Make the copy fresh, reading Redis if needed.

        Returns:
            False when Redis is not usable now (decide on local state).
        """
        link = self._link
        if not link.usable():
            return False
        if self._fresh():
            return True
        return self._script(READ, [self.keys.breaker], []) is not None

    def apply(self, view: View, token: Optional[int] = None) -> None:
        """Take in a view from a script (``token``: the epoch it was read under) or a message."""
        clock = self._clock
        mono = clock.monotonic()
        if view.held_back and self._settings is not None:  # a script must run to send it
            self._catch_up = time.monotonic() + STREAK_NEWS_MS / 1000
        changed = False
        with self._lock:
            if view.gen >= self._gen:
                opened = clock.time() - (view.now - view.opened) / 1000 if view.opened else 0.0
                changed = view.state != self._state or view.gen != self._gen
                if changed:
                    self._busy_until = 0.0
                self._state, self._fails, self._gen = view.state, view.fails, view.gen
                self._opened = opened
            if token is not None:
                self._known, self._epoch, self._fetched = True, token, time.monotonic()
        pause = (view.pause - view.now) / 1000
        if pause > 0:
            with self._lock:
                self._shared_pause = max(self._shared_pause, mono + pause)
            self._on_pause(mono + pause, mono)
        follow = self._follow
        if follow is not None and (changed or token is not None):
            follow()  # after a read too: the breaker's state may have moved on locally

    # ------------------------------------------------------------------------ scripts
    def _script(self, script: Any, keys: list[str], args: list[Any]) -> Optional[tuple[int, int]]:
        """Run a breaker script on the call path and take in its view; None if Redis failed."""
        link = self._link
        token = link.token()
        reply = link.run(script, keys, [link.channel, self.keys.host, KEY_TTL_MS, *args])
        if reply is None:
            return None
        view, code, extra = parse_view(reply)
        self.apply(view, token)
        return code, extra

    def _window(self) -> tuple[str, float, int]:
        settings = self._settings
        assert settings is not None
        window_ms = max(WINDOW_BUCKETS, round(settings.window * 1000))
        rate = settings.failure_rate or 0.0
        return self.keys.window(window_ms), rate, max(1, window_ms // WINDOW_BUCKETS)

    def _take(self, add: tuple[int, int, int, int] = (0, 0, 0, 0)) -> list[int]:
        with self._lock:
            batch = [a + b for a, b in zip(self._pending, add)]
            self._pending = [0, 0, 0, 0]
        return batch

    def outcome(self, failed: bool, slow: bool) -> Optional[bool]:
        """A failure, or a slow success under a ratio rule: written at once.

        Returns:
            True when it opened the breaker, False when not, None when Redis failed.
        """
        settings = self._settings
        assert settings is not None
        window, rate, bucket_ms = self._window()
        batch = [0, 0, 0, 0]
        if rate:
            batch = self._take((1, int(failed), int(slow), int(failed or slow)))
        done = self._script(
            OUTCOME,
            [self.keys.breaker, window],
            [
                int(failed), settings.failure_threshold, rate, settings.minimum_calls,
                bucket_ms, WINDOW_BUCKETS, *batch,
            ],
        )  # fmt: skip
        return None if done is None else done[0] == 1

    def success(self, slow: bool) -> Optional[bool]:
        """A success: batched, unless it must reset a running streak or may trip the ratio.

        Returns:
            True when it opened the breaker (a slow success tipping the ratio), False when
            not, None when Redis failed.
        """
        settings = self._settings
        assert settings is not None
        ratio = settings.failure_rate is not None
        if slow and ratio:
            return self.outcome(failed=False, slow=True)
        if ratio:
            with self._lock:
                self._pending[0] += 1
        if not self._fails:
            return False
        return None if self._flush(reset=True) is None else False

    def _flush(self, reset: bool) -> Optional[tuple[int, int]]:
        """Send the batched counts; ``reset``: this success follows a streak we know of.

        A batch alone never resets a streak: its successes may predate the failures that
        started it (heard of later), and a streak is about consecutive failures.
        """
        window, _, bucket_ms = self._window()
        self._flushed = time.monotonic()
        batch = self._take()
        return self._script(
            SUCCESSES,
            [self.keys.breaker, window],
            [int(reset), bucket_ms, WINDOW_BUCKETS, *batch],
        )

    def acquire_probe(self) -> Optional[tuple[int, float]]:
        """Ask for a half-open probe lease (moving open to half-open when it is time).

        Returns:
            ``(PROBE_GRANTED | PROBE_REFUSED | PROBE_CLOSED, seconds to wait if refused)``,
            or None when Redis failed.
        """
        settings = self._settings
        assert settings is not None
        lease = self._link.unique()
        done = self._script(
            PROBE_ACQUIRE,
            [self.keys.breaker, self.keys.probes],
            [
                max(0, round(settings.recovery_timeout * 1000)),
                settings.half_open_max_calls,
                round(LEASE_SECONDS * 1000),
                lease,
            ],
        )
        if done is None:
            return None
        code, extra = done
        if code == PROBE_GRANTED:
            with self._lock:
                if not self._leases:
                    self._renewed = time.monotonic()
                self._leases.append(lease)
        return code, extra / 1000

    def probe_done(self, outcome: int) -> Optional[bool]:
        """Give back a probe lease with its verdict (1 success, 0 failure, -1 none).

        Returns:
            True when this probe decided (closed or opened the breaker again), False when
            not (its lease had expired, or another probe decided first), None when no
            lease is held or Redis failed (decide locally).
        """
        with self._lock:
            if not self._leases:
                return None
            lease = self._leases.pop()
        window, _, _ = self._window()
        done = self._script(
            PROBE_DONE, [self.keys.breaker, self.keys.probes, window], [lease, outcome]
        )
        return None if done is None else done[0] == 1

    def hold_off(self, seconds: float) -> None:
        """Every probe lease is taken: refuse locally for ``seconds`` (or until a change)."""
        with self._lock:
            self._busy_until = time.monotonic() + seconds

    def held_off(self) -> bool:
        """Tell whether a refusal for want of a lease still stands (no round trip)."""
        return time.monotonic() < self._busy_until

    def share_pause(self, seconds: float) -> None:
        """Pause the host for every process (one round trip, unless already shared)."""
        if not self._link.usable():
            return
        now = self._clock.monotonic()
        with self._lock:
            if now + seconds <= self._shared_pause + _PAUSE_SLACK:
                return
            self._shared_pause = now + seconds
        ms = max(1, round(seconds * 1000))
        self._script(PAUSE, [self.keys.breaker], [ms, MAX_PAUSE_MS])

    # -------------------------------------------------------------------- background
    def tick(self, now: float) -> None:
        """The ticker's work for this host: flush counts, renew leases (``now``: monotonic)."""
        if (any(self._pending) and now - self._flushed >= FLUSH_INTERVAL) or (
            now >= self._catch_up
        ):
            self._catch_up = math.inf
            self._flush(reset=False)
        if self._leases and now - self._renewed >= LEASE_SECONDS / 3:
            self._renewed = now
            with self._lock:
                leases = list(self._leases)
            if leases:
                self._link.run(RENEW, [self.keys.probes], [round(LEASE_SECONDS * 1000), *leases])
