"""A per-host retry budget: retries may not exceed a share of recent first attempts.

Retries multiply the load on a host that is already failing: with ``max_retries=3`` a host
failing every request gets four times its traffic. The budget caps that, in the manner of
Envoy's retry budget and the gRPC/AWS retry token buckets: every first attempt deposits
``ratio`` tokens, every retry spends one, and the bucket holds at most ``burst`` tokens.

- A healthy host keeps the bucket full, so an isolated failure (or a short burst of up to
  ``burst`` retries) is retried as usual.
- On a host failing everything, the bucket empties and retries settle at ``ratio`` per
  call: wire attempts per call tend to ``1 + ratio`` instead of ``1 + max_retries``.

The state is a number and a lock; no clock is involved, so the budget behaves the same
under a fake clock.
"""

from __future__ import annotations

import threading

__all__ = ["RetryBudget"]


class RetryBudget:
    """A token bucket of retries for one host.

    Args:
        ratio: Tokens deposited per first attempt, in ``[0, 1]``: the share of first
            attempts that may be retried in the long run.
        burst: Bucket size, >= 0: retries that may follow each other after a healthy
            period. The bucket starts full.
    """

    __slots__ = ("_lock", "_tokens", "burst", "ratio")

    def __init__(self, ratio: float, burst: float) -> None:
        self.ratio = ratio
        self.burst = burst
        self._tokens = float(burst)
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        """Retries currently available (fractional)."""
        return self._tokens

    def deposit(self) -> None:
        """Record a first attempt: add ``ratio`` tokens, up to ``burst``."""
        with self._lock:
            self._tokens = min(self.burst, self._tokens + self.ratio)

    def try_spend(self) -> bool:
        """Take one token for a retry; return False (and take nothing) when there is none."""
        with self._lock:
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False
