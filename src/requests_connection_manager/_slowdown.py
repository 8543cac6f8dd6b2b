"""A shared, growing pause for a host that answers 429 without saying how long to wait.

When a 429 carries ``Retry-After`` or rate-limit headers, the host is paused for exactly
that long, for every caller. Some APIs send a bare 429. Each caller then retries on its own
short backoff and the process keeps knocking on a host that has said it is overloaded.
:class:`HostSlowdown` gives such a host a pause of its own, shared by every caller, that
grows while it does not help and shrinks again once the host answers.

The state machine, for one host:

- **Level.** Level 0: no slowdown. At level ``n >= 1`` a hint-less 429 pauses the host for
  ``min(maximum, initial * multiplier ** (n - 1))`` seconds, less up to ``jitter`` of it.
- **One growth per pause.** :meth:`HostSlowdown.on_throttled` takes the time the attempt
  was *sent*. A 429 for an attempt sent before the current pause ended (sent before it
  began, or sent during it by a caller that did not wait) is already accounted for: it
  changes nothing and gets the pause's remaining time. So when N threads' attempts all
  come back 429, only the first starts a new pause.
- **Grow only when the pause did not help.** A fresh 429 (attempt sent after the pause
  ended) raises the level when no attempt sent after the pause has succeeded: the pause
  was too short for the server's window to reset. When one has succeeded, the pause
  worked and the traffic that followed used up the quota again, so the host is paused
  again at the same level. Growing on every 429 would climb to ``maximum`` against any
  fixed-window limit and starve the client (against 10 requests/s, a 30 s pause after
  each burst of 10 successes), where this settles near the shortest level whose pauses
  outlast the server's window (or at the cap).
- **Decay.** :meth:`HostSlowdown.on_success` for an attempt sent after the pause ended
  steps the level down by one for every ``cooldown`` seconds since the pause ended with
  no new pause. A host that recovered (or a demand that fell back under the quota) is
  back at level 0 after ``level * cooldown`` seconds of successes, and a later isolated
  429 costs only a short pause again.

Measured against bare-429 fixed-window limits with a demand of 100 attempts/s (see the
tests): under 10 requests/s the level settles at 3 at most and the client gets 62-71 % of
the quota with one 429 every 1.5 s (instead of 90 429s a second); under 60 requests per
minute it gets the whole quota with about four 429s a minute.

Why these defaults:

- ``initial`` 0.5 s and ``multiplier`` 2: most quotas are per second or per minute; two
  pauses (0.5 s, then 1 s) outlast a one-second window, and seven (61.5 s in all, the
  last one capped) a one-minute window. Exponential doubling is the backoff of the AWS SDKs
  (``b * 2**n``), urllib3 and Envoy. botocore's adaptive mode instead multiplies its
  *rate* by CUBIC's beta 0.7 on each throttle, about a 1.43x longer gap: a pause is a
  blunter tool than a rate and each step costs a round of 429s, so doubling climbs the
  ladder in half the steps, and the no-growth-after-success rule stops it overshooting.
- ``maximum`` 30 s: the ceiling of the ladder; the pipeline should pass
  ``min(maximum, retry_after_max)``, and a pause that does not fit the caller's deadline
  fails the call as a long ``Retry-After`` does. Envoy's ``rate_limited_retry_back_off``
  likewise caps server-advised waits with ``max_interval`` and, when no reset header
  applies, falls back to its ordinary jittered exponential back-off.
- ``jitter`` 0.5 ("equal jitter"): each pause lies in ``(base / 2, base]``, never above
  the cap nor below half the level. Threads of one process share one pause; the jitter
  keeps separate processes hitting the same API from resuming in step.
- ``cooldown`` 5 s: in botocore's CUBIC the rate is back at its pre-throttle value
  ``cbrt(W_max * (1 - beta) / C)`` seconds after a throttle (beta 0.7, C 0.4): 2 s at
  10 requests/s, 4.2 s at 100. Stepping down one level per 5 s of successes recovers on
  that timescale, a little more cautiously.

Time is passed in (monotonic seconds); nothing here reads a clock or sleeps. Thread-safe:
each method takes one short lock. O(1) memory and time.
"""

from __future__ import annotations

import math
import random
import threading
from typing import Optional

from ._validate import check_number

__all__ = ["HostSlowdown"]

DEFAULT_INITIAL = 0.5
"""The first pause, in seconds."""
DEFAULT_MAXIMUM = 30.0
"""The longest pause, in seconds."""
DEFAULT_MULTIPLIER = 2.0
"""Growth of the pause per level."""
DEFAULT_JITTER = 0.5
"""Up to half of each pause is taken off at random."""
DEFAULT_COOLDOWN = 5.0
"""Seconds of successes per level of decay."""


def _positive(name: str, value: float) -> float:
    number = check_number(name, value, positive=True)
    assert number is not None
    return number


class HostSlowdown:
    """One host's pause after hint-less 429s: grows when it does not help, decays on success.

    Args:
        initial: The pause at level 1, in seconds, > 0.
        maximum: The longest pause, in seconds, >= ``initial``.
        multiplier: Growth per level, > 1.
        jitter: The share of each pause that may be taken off at random, in ``[0, 1]``.
        cooldown: Seconds of successes that take the level down by one, > 0.
        rng: The source of the jitter; a fresh ``random.Random()`` by default.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument is out of range.
    """

    __slots__ = (
        "_answered",
        "_level",
        "_lock",
        "_quiet_since",
        "_rng",
        "_until",
        "cooldown",
        "initial",
        "jitter",
        "max_level",
        "maximum",
        "multiplier",
    )

    def __init__(
        self,
        initial: float = DEFAULT_INITIAL,
        maximum: float = DEFAULT_MAXIMUM,
        multiplier: float = DEFAULT_MULTIPLIER,
        jitter: float = DEFAULT_JITTER,
        cooldown: float = DEFAULT_COOLDOWN,
        rng: Optional[random.Random] = None,
    ) -> None:
        self.initial = _positive("initial", initial)
        self.maximum = _positive("maximum", maximum)
        if self.maximum < self.initial:
            raise ValueError(f"maximum must be >= initial ({self.initial!r}), got {maximum!r}")
        self.multiplier = _positive("multiplier", multiplier)
        if self.multiplier <= 1.0:
            raise ValueError(f"multiplier must be a number > 1, got {multiplier!r}")
        spread = check_number("jitter", jitter)
        assert spread is not None
        if spread > 1.0:
            raise ValueError(f"jitter must be a number in [0, 1], got {jitter!r}")
        self.jitter = spread
        self.cooldown = _positive("cooldown", cooldown)
        self._rng = rng if rng is not None else random.Random()
        # The first level whose pause reaches the cap: growing past it would change nothing
        # but the time decay takes to bring the pause down.
        level, pause = 1, self.initial
        while pause < self.maximum:
            pause *= self.multiplier
            level += 1
        self.max_level = level
        self._lock = threading.Lock()
        self._level = 0
        self._until = -math.inf  # when the current (or last) pause ends
        self._answered = False  # an attempt sent after that succeeded
        self._quiet_since = -math.inf  # decay counts from here

    @property
    def level(self) -> int:
        """The current level: 0 when the host is not slowed down."""
        return self._level

    @property
    def paused_until(self) -> float:
        """When the current (or last) pause ends, monotonic seconds; ``-inf`` before any."""
        return self._until

    def base_pause(self, level: int) -> float:
        """Return the pause at ``level`` before jitter (0 at level 0)."""
        if level <= 0:
            return 0.0
        return min(self.maximum, self.initial * self.multiplier ** (level - 1))

    def remaining(self, now: float) -> float:
        """Return how long the host stays paused from ``now``, 0 when it is not."""
        # Clamped: ``(now + pause) - now`` may round to a hair above ``pause``.
        return min(self.maximum, max(0.0, self._until - now))

    def on_throttled(self, now: float, sent_at: float) -> float:
        """Report a 429 that carried no hint of how long to wait.

        Args:
            now: When the 429 arrived, monotonic seconds.
            sent_at: When the attempt that got it was sent.

        Returns:
            How long the host is paused from ``now``, for every caller: a new pause when
            this 429 is fresh news, else what remains of the current one (possibly 0).
        """
        with self._lock:
            if sent_at < self._until:
                return self.remaining(now)
            if self._level == 0 or not self._answered:
                self._level = min(self._level + 1, self.max_level)
            pause = self.base_pause(self._level) * (1.0 - self.jitter * self._rng.random())
            self._until = now + pause
            self._answered = False
            self._quiet_since = self._until
            return pause

    def on_success(self, now: float, sent_at: Optional[float] = None) -> None:
        """Report an attempt the host answered without throttling.

        Args:
            now: When the answer arrived, monotonic seconds.
            sent_at: When the attempt was sent; None for "just now". An attempt sent
                before the current pause ended says nothing about the pause and is
                ignored.
        """
        sent = now if sent_at is None else sent_at
        with self._lock:
            if sent < self._until:
                return
            self._answered = True
            if self._level == 0:
                return
            steps = math.floor((now - self._quiet_since) / self.cooldown)
            if steps > 0:
                self._level = max(0, self._level - steps)
                self._quiet_since += steps * self.cooldown
