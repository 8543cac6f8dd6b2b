"""Time as the library sees it: injectable, so policies can be tested without sleeping."""

from __future__ import annotations

import threading
import time
from typing import Optional, Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """What the pipeline needs from time.

    ``monotonic`` times waits, windows and deadlines; ``time`` (wall clock, seconds since
    the epoch) times breaker openings, which may be shared between processes; ``sleep``
    waits, and returns early when ``wake`` is set (the manager sets it on close).
    """

    def monotonic(self) -> float:
        """Return a monotonic reading in seconds."""
        ...

    def time(self) -> float:
        """Return wall-clock seconds since the epoch."""
        ...

    def sleep(self, seconds: float, wake: Optional[threading.Event] = None) -> None:
        """Wait ``seconds``, or less when ``wake`` is set."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time`` and an interruptible sleep."""

    def monotonic(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()

    def time(self) -> float:
        """Return ``time.time()``."""
        return time.time()

    def sleep(self, seconds: float, wake: Optional[threading.Event] = None) -> None:
        """Sleep ``seconds``; return early when ``wake`` is set.

        Args:
            seconds: How long to wait; zero or less returns at once.
            wake: An event that ends the wait early.
        """
        if seconds <= 0:
            return
        if wake is None:
            time.sleep(seconds)
        else:
            wake.wait(seconds)
