"""A fake clock: time moves only when something sleeps or a test advances it."""

from __future__ import annotations

import threading
from typing import Optional


class FakeClock:
    """Implements the library's ``Clock`` protocol without real waiting.

    ``sleep`` records the requested duration and advances both clocks at once, so a
    retry schedule or a breaker timeout runs instantly and can be asserted exactly.
    """

    def __init__(self, start: float = 1_000.0, wall: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._mono = start
        self._wall = wall
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """Return the fake monotonic time."""
        with self._lock:
            return self._mono

    def time(self) -> float:
        """Return the fake wall time."""
        with self._lock:
            return self._wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        with self._lock:
            self._mono += seconds
            self._wall += seconds

    def sleep(self, seconds: float, wake: Optional[threading.Event] = None) -> None:
        """Record the sleep and advance time by it, instantly."""
        if seconds <= 0:
            return
        with self._lock:
            self.sleeps.append(seconds)
            self._mono += seconds
            self._wall += seconds
