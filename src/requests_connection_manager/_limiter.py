"""Client-side rate limiters, one per host key, built once.

Both answer the same question without blocking: take a permit now, or say how long
until one may be free. Waiting is the pipeline's job (:mod:`._adapter`), so it can respect
``rate_limit_max_wait``, the call's deadline and the manager's close.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

from ratelimit import RateLimitException, limits

from .config import RateLimitConfig

__all__ = ["MIN_WAIT", "FixedWindowLimiter", "Limiter", "LimiterFactory", "SlidingWindowLimiter"]

#: Waits shorter than this are rounded up, so a waiting loop never spins.
MIN_WAIT = 0.001


class Limiter(Protocol):
    """A per-host limiter."""

    def try_acquire(self) -> float:
        """Take a permit if one is free.

        Returns:
            0.0 when a permit was taken, else the seconds until one may be free (> 0).
        """
        ...

    def quiet(self) -> bool:
        """Tell whether forgetting this limiter now could not let extra requests through."""
        ...


def _permit() -> None:
    """The guarded no-op: calling it through ``@limits`` is taking a permit."""


class FixedWindowLimiter:
    """``ratelimit``'s ``@limits`` fixed window: ``calls`` starts per ``period``.

    The window starts when the limiter is built and restarts at the first call after it
    ends, so up to ``2 * calls`` may start across a window edge (ratelimit's design).
    Its lock guards only the counter, never a request.
    """

    def __init__(self, calls: int, period: float, clock: Callable[[], float]) -> None:
        self._gate: Callable[[], Any] = limits(calls=calls, period=period, clock=clock)(_permit)
        self._clock = clock
        self._period = period
        self._last_permit = float("-inf")

    def try_acquire(self) -> float:
        """Take a permit, or return the seconds left in the current window."""
        try:
            self._gate()
        except RateLimitException as exc:
            return max(float(exc.period_remaining), MIN_WAIT)
        self._last_permit = self._clock()
        return 0.0

    def quiet(self) -> bool:
        """True once a whole period has passed since the last permit (the window is spent)."""
        return self._clock() - self._last_permit >= self._period


class SlidingWindowLimiter:
    """``limits``' moving window: never more than ``calls`` starts in any ``period``.

    ``limits`` reads the wall clock itself, so a fake clock does not drive it.
    """

    def __init__(self, strategy: Any, item: Any, key: str) -> None:
        self._strategy = strategy
        self._item = item
        self._key = key

    def try_acquire(self) -> float:
        """Take a permit, or return the seconds until the oldest start leaves the window."""
        if self._strategy.hit(self._item, self._key):
            return 0.0
        stats = self._strategy.get_window_stats(self._item, self._key)
        return max(float(stats.reset_time) - time.time(), MIN_WAIT)

    def quiet(self) -> bool:
        """Always True: the window lives in the ``limits`` storage under the host key."""
        return True


class LimiterFactory:
    """Builds the limiter each host key needs; owns the in-memory ``limits`` storage.

    ``limits`` is imported only when the sliding-window strategy is first used; it ships
    in the ``redis`` extra.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._moving_window: Any = None

    def _sliding_strategy(self) -> Any:
        if self._moving_window is None:
            try:
                from limits.storage import MemoryStorage
                from limits.strategies import MovingWindowRateLimiter
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "rate_limit_strategy='sliding-window' needs the 'limits' package: "
                    "pip install 'requests-connection-manager[redis]'"
                ) from exc
            self._moving_window = MovingWindowRateLimiter(MemoryStorage())
        return self._moving_window

    def build(self, settings: RateLimitConfig, key: str) -> Limiter:
        """Build the limiter ``settings`` asks for; build one per key and keep it.

        Args:
            settings: The rate limit.
            key: The host key, used as the limiter's identifier.

        Returns:
            A new limiter.
        """
        if settings.strategy == "sliding-window":
            from limits import RateLimitItemPerSecond

            item = RateLimitItemPerSecond(settings.requests, int(settings.period))
            return SlidingWindowLimiter(self._sliding_strategy(), item, key)
        return FixedWindowLimiter(settings.requests, settings.period, self._clock)
