"""A host's server-advised quota: never send more than the server said remains.

The parser (:mod:`._quota_headers`) reads what one response says: ``remaining`` requests
until the quota resets in ``reset_after`` seconds. This module keeps, per host, what is
left of that between two responses:

- when a response says ``remaining = r``, the attempts still in flight to the host may or
  may not have been counted by the server; they are assumed *not* counted (the safe
  side), so ``left = r - (attempts in flight)``;
- each attempt admitted takes one from ``left``; when nothing is left the attempt waits
  for the reset, like every other caller of the host;
- a burst that fits in what is left is never slowed down: there is no pacing, only a
  count (GitHub's 5,000 an hour must not turn 100 quick calls into 70 s);
- at the reset the count is forgotten: until the next response says otherwise, the host is
  not limited by it. A quota whose reset time is unknown is never waited on (it could be
  forever); it is forgotten after :data:`UNKNOWN_RESET_TTL` seconds.

A response with ``remaining = 0`` pauses the host until the reset (the pipeline does that,
as for a ``Retry-After``); this count is what keeps the threads of one process from
overshooting *before* the server has to say 0.
"""

from __future__ import annotations

import threading
from typing import Optional

__all__ = ["UNKNOWN_RESET_TTL", "QuotaState"]

#: Seconds a count without a known reset time is trusted.
UNKNOWN_RESET_TTL = 60.0


class QuotaState:
    """What is left of one host's advertised quota. Thread-safe; O(1) per operation."""

    __slots__ = ("_left", "_lock", "_reset_at")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left: Optional[int] = None
        self._reset_at = 0.0

    def update(
        self, now: float, remaining: int, reset_after: Optional[float], in_flight: int
    ) -> None:
        """Take in what a response said.

        Args:
            now: Monotonic time the response arrived.
            remaining: Requests the server said remain (>= 0).
            reset_after: Seconds until the server's quota resets, or None if unknown.
            in_flight: Attempts to the host still on the wire (not counting the one that
                brought this response).
        """
        with self._lock:
            self._left = max(0, remaining - max(0, in_flight))
            ttl = UNKNOWN_RESET_TTL if reset_after is None else reset_after
            self._reset_at = now + ttl
            if reset_after is None and self._left <= 0:
                self._left = None  # nothing left, and no reset to wait for: do not count

    def take(self, now: float) -> float:
        """Take one request from what is left.

        Args:
            now: Monotonic time of the attempt.

        Returns:
            0.0 when the attempt may go (one was taken, or no quota is known); otherwise
            the seconds until the reset, when the attempt may try again.
        """
        with self._lock:
            left = self._left
            if left is None:
                return 0.0
            if now >= self._reset_at:
                self._left = None
                return 0.0
            if left > 0:
                self._left = left - 1
                return 0.0
            return self._reset_at - now

    def known(self, now: float) -> Optional[int]:
        """Return what is left, or None when no quota is known at ``now``."""
        with self._lock:
            if self._left is None or now >= self._reset_at:
                return None
            return self._left

    def quiet(self, now: float) -> bool:
        """Tell whether forgetting this state could not let an extra request through."""
        return self.known(now) is None

    def reinit_after_fork(self) -> None:
        """Give the state a fresh lock in a forked child."""
        self._lock = threading.Lock()
