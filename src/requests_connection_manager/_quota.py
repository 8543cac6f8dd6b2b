"""A host's server-advised quota: never send more than the server said remains.

The parser (:mod:`._quota_headers`) reads what one response says: ``remaining`` requests
until the quota resets in ``reset_after`` seconds, and the quota's size (``limit``). This
module keeps, per host, what is left of it between two responses:

- when a response says ``remaining = r``, the attempts still in flight to the host may or
  may not have been counted by the server; they are assumed *not* counted (the safe
  side): ``left = r - (attempts in flight)``;
- each attempt admitted takes one from ``left``; a burst that fits in what is left is
  never slowed down (there is no pacing, only a count: GitHub's 5,000 an hour must not
  turn 100 quick calls into 70 s);
- when nothing is left, the attempt waits for the reset, like every other caller of the
  host (the pipeline pauses the host, as for a ``Retry-After``);
- at the reset a new window starts with ``limit`` left (less the attempts still in
  flight, which may land in it) when the size is known, and no known reset time. If that
  is spent before any response tells more, an attempt waits while others are still in
  flight (their answers will say what remains): it is woken by the next answer
  (:meth:`QuotaState.wait_for_news`); with nothing in flight it goes (it is the one that
  asks). Without a known size, the count is simply forgotten at the reset.

A count is trusted for :data:`UNKNOWN_RESET_TTL` seconds when the server gave no reset.
"""

from __future__ import annotations

import threading
from typing import Optional

__all__ = ["UNKNOWN_RESET_TTL", "QuotaState"]

#: Seconds a count without a known reset time is trusted.
UNKNOWN_RESET_TTL = 60.0


class QuotaState:
    """What is left of one host's advertised quota. Thread-safe; O(1) per operation."""

    __slots__ = (
        "_expires",
        "_heard_sent",
        "_left",
        "_limit",
        "_lock",
        "_news",
        "_reset_at",
        "_window_start",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._news = threading.Condition(self._lock)
        self._left: Optional[int] = None
        self._limit: Optional[int] = None
        self._reset_at: Optional[float] = None  # the known reset of the current window
        self._expires = 0.0  # when the count is no longer trusted
        self._window_start = float("-inf")  # when the current window began, as seen here
        self._heard_sent = float("-inf")  # when the request of the answer held was sent

    def update(
        self,
        now: float,
        remaining: int,
        reset_after: Optional[float],
        in_flight: int,
        limit: Optional[int] = None,
        sent_at: float = float("inf"),
    ) -> bool:
        """Take in what a response said, unless it is older than the current window.

        Args:
            now: Monotonic time the response arrived.
            remaining: Requests the server said remain (>= 0).
            reset_after: Seconds until the server's quota resets, or None if unknown.
            in_flight: Attempts to the host still on the wire (not counting the one that
                brought this response).
            limit: The quota's size, if the server said.
            sent_at: Monotonic time its request was sent: an answer to a request sent
                before the current window began speaks of the window before, and is
                ignored (it would make the count start a window too early). An answer to
                a request sent before the one already heard arrived late: the server
                counted it earlier, so it can only lower what is left, never raise it.

        Returns:
            Whether the answer was taken in.
        """
        with self._lock:
            if sent_at < self._window_start:
                return False
            left = max(0, remaining - max(0, in_flight))
            if sent_at < self._heard_sent and self._left is not None:
                self._left = min(self._left, left)
                self._news.notify_all()
                return True
            if sent_at != float("inf"):
                self._heard_sent = sent_at
            self._left = left
            if limit is not None:
                self._limit = limit
            self._reset_at = None if reset_after is None else now + reset_after
            self._expires = now + (UNKNOWN_RESET_TTL if reset_after is None else reset_after)
            if reset_after is None and self._left <= 0:
                self._left = None  # nothing left and no reset to wait for: do not count
            self._news.notify_all()
            return True

    def settled(self) -> None:
        """An attempt ended (with or without news): wake those waiting for news."""
        with self._lock:
            self._news.notify_all()

    def wait_for_news(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds, in real time) for the next answer."""
        with self._lock:
            self._news.wait(timeout)

    def take(self, now: float, in_flight: int) -> tuple[float, bool]:
        """Take one request from what is left.

        Args:
            now: Monotonic time of the attempt.
            in_flight: Attempts to the host on the wire now.

        Returns:
            ``(0.0, False)`` when the attempt may go (one was taken, or no quota is known);
            ``(seconds, True)`` to wait for the known reset; ``(-1.0, False)`` to wait for
            the answers in flight to say what remains (:meth:`wait_for_news`). Then take
            again.
        """
        with self._lock:
            if now >= self._expires and self._left is not None:
                # The window is over: a new one starts, its reset unknown until told.
                # Attempts still in flight may land in the new window: count them in it.
                limit = self._limit
                if self._reset_at is not None and limit is not None:
                    self._left = max(0, limit - in_flight)
                else:
                    self._left = None
                self._window_start = self._expires
                self._heard_sent = float("-inf")
                self._reset_at = None
                self._expires = now + UNKNOWN_RESET_TTL
            left = self._left
            if left is None:
                return 0.0, False
            if left > 0:
                self._left = left - 1
                return 0.0, False
            if self._reset_at is not None:
                return self._reset_at - now, True
            if in_flight > 0:
                return -1.0, False
            return 0.0, False  # nobody will tell: this attempt asks

    def known(self, now: float) -> Optional[int]:
        """Return what is left, or None when no quota is known at ``now``."""
        with self._lock:
            if self._left is None or now >= self._expires:
                return None
            return self._left

    def quiet(self, now: float) -> bool:
        """Tell whether forgetting this state could not let an extra request through."""
        return self.known(now) is None

    def reinit_after_fork(self) -> None:
        """Give the state a fresh lock in a forked child."""
        self._lock = threading.Lock()
        self._news = threading.Condition(self._lock)
