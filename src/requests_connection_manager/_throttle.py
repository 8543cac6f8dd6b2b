"""Adaptive client-side throttling: refuse locally what an overloaded backend would refuse.

Google's SRE book ("Handling Overload", client-side throttling): each client keeps, per
backend and over the last two minutes,

- ``requests``: attempts the application tried to send, *including those this throttle
  refused locally*;
- ``accepts``: attempts the backend accepted;

and refuses a new attempt locally with probability::

    max(0, (requests - K * accepts) / (requests + 1))

(here never above ``max_probability``, 1 by default). While the backend accepts everything
the probability is 0. When it starts refusing, the client keeps sending about ``K`` times
what the backend accepts and refuses the rest itself, for free. Refused attempts still
count as requests, so the longer the backend refuses, the more the client refuses: for a
backend accepting nothing the probability tends to ``R / (R + 1)``, R being the attempts
in a window. ``K = 2`` (the book's value) spends up to one wasted attempt per accepted one
to notice recovery; a smaller K is more aggressive, ``K = 1`` the limit (the probability
can only be positive when something was refused).

Recovery is slow after a long outage. Once the probability is near 1, a recovered backend
receives only a ``1 / (R + 1)`` share of the demand, and each accept lowers the
probability by only ``K / (R + 1)``, so that share grows about e-fold every ``window / K``
seconds. Measured with the defaults (see the tests), half the demand gets through again
5.5 minutes (20 attempts/s) to 9 minutes (100 attempts/s) after the backend recovers.
``max_probability`` bounds that: Envoy's admission-control filter, built on this formula,
caps it with ``max_rejection_probability`` (80 % by default). With a cap of 0.8 the same
measurements give half the demand after about 1.5 minutes and nearly all of it within 3,
at the price of still sending a fifth of the demand to a backend that accepts nothing.
The default (1.0) is the book's formula, uncapped.

Bookkeeping, per attempt (first attempts and retries alike):

1. :meth:`AdaptiveThrottle.should_reject` draws against the probability computed from the
   window *before* this attempt, then counts the attempt as one request whether it is
   refused or admitted. Call it as the last admission step, just before the attempt
   would go on the wire, so an attempt refused by something else is not counted.
2. For an admitted attempt, :meth:`AdaptiveThrottle.record_outcome` counts one accept
   when the backend accepted it. It never counts a request: an admitted attempt is one
   request and at most one accept. A refused attempt gets no outcome.

What "accepted" means is the caller's decision: any response that is not an overload
signal (429, 503, or whatever the backend uses to shed load). A connection error or a
timeout is not an accept. Outcomes that never come (an attempt abandoned by its caller)
only make the client a little more careful.

Requests are filed under the time of admission, accepts under the time of the outcome;
both fall in the same bucket unless an attempt straddles a bucket edge, which shifts an
accept by one bucket (10 s by default) at most. Window granularity and error bound: see
:mod:`._buckets` (with the defaults, the window spans 110 to 120 s).
"""

from __future__ import annotations

import random
import threading
from typing import Optional

from ._buckets import BucketRing
from ._validate import check_number

__all__ = ["AdaptiveThrottle"]

DEFAULT_K = 2.0
"""The SRE book's multiplier: the client sends up to twice what the backend accepts."""
DEFAULT_WINDOW = 120.0
"""The SRE book's history: the last two minutes."""
DEFAULT_BUCKETS = 12
"""Ten-second buckets over the default window."""
DEFAULT_MAX_PROBABILITY = 1.0
"""No cap beyond the formula's own (it stays below 1)."""


class AdaptiveThrottle:
    """One backend's client-side throttle (the SRE formula over a sliding window).

    Thread-safe: every method takes one short lock and does O(``buckets``) work.
    Memory is fixed: ``buckets`` pairs of counters.

    Args:
        k: The multiplier K, >= 1.
        window: How much history counts, in seconds, > 0.
        buckets: How many buckets the window is cut into, >= 1.
        rng: The source of the random draws; a fresh ``random.Random()`` by default.
            Pass a seeded one for reproducible tests.
        max_probability: The highest refusal probability, in ``(0, 1]``; 1 leaves the
            formula uncapped.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument is out of range.
    """

    __slots__ = ("_lock", "_ring", "_rng", "k", "max_probability")

    def __init__(
        self,
        k: float = DEFAULT_K,
        window: float = DEFAULT_WINDOW,
        buckets: int = DEFAULT_BUCKETS,
        rng: Optional[random.Random] = None,
        max_probability: float = DEFAULT_MAX_PROBABILITY,
    ) -> None:
        multiplier = check_number("k", k, positive=True)
        assert multiplier is not None
        if multiplier < 1.0:
            raise ValueError(f"k must be a number >= 1, got {k!r}")
        self.k = multiplier
        cap = check_number("max_probability", max_probability, positive=True)
        assert cap is not None
        if cap > 1.0:
            raise ValueError(f"max_probability must be a number in (0, 1], got {cap!r}")
        self.max_probability = cap
        # Fields: requests, accepts.
        self._ring = BucketRing(window, buckets, 2)
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()

    @property
    def window(self) -> float:
        """The window's length in seconds."""
        return self._ring.window

    def _probability(self, now: float) -> float:
        requests, accepts = self._ring.totals(now)
        p = (requests - self.k * accepts) / (requests + 1)
        return min(self.max_probability, max(0.0, p))

    def counts(self, now: float) -> tuple[int, int]:
        """Return ``(requests, accepts)`` over the window ending at ``now``."""
        with self._lock:
            requests, accepts = self._ring.totals(now)
        return requests, accepts

    def probability(self, now: float) -> float:
        """Return the probability that an attempt made at ``now`` is refused, in ``[0, 1)``."""
        with self._lock:
            return self._probability(now)

    def should_reject(self, now: float) -> bool:
        """Decide whether to refuse an attempt locally, and count it as a request.

        Args:
            now: The time of the attempt, monotonic seconds.

        Returns:
            True to refuse the attempt without sending it (no outcome is recorded then);
            False to send it and report its outcome with :meth:`record_outcome`.
        """
        with self._lock:
            p = self._probability(now)
            reject = p > 0.0 and self._rng.random() < p
            self._ring.add(now, (1, 0))
        return reject

    def record_outcome(self, now: float, accepted: bool) -> None:
        """Report the outcome of an attempt :meth:`should_reject` admitted.

        Args:
            now: When the outcome arrived, monotonic seconds.
            accepted: The backend accepted the attempt (it was not refused for overload).
        """
        if accepted:
            with self._lock:
                self._ring.add(now, (0, 1))
