"""Counters over a sliding time window, kept in a fixed ring of time buckets.

The window of ``window`` seconds is cut into ``buckets`` buckets of ``width = window /
buckets`` seconds, aligned on multiples of ``width``. An event at time ``t`` lands in the
bucket numbered ``floor(t / width)`` (its *epoch*), stored in slot ``epoch % buckets``. A
slot whose epoch is out of date is cleared when it is next written, so memory is
``buckets`` rows of counters whatever the traffic, an update is O(1) and a total is
O(buckets).

Error bound: a total at time ``now`` sums the current (partial) bucket and the
``buckets - 1`` before it. An event younger than ``window - width`` seconds is always
counted; an event ``window`` seconds old or older never is; one whose age lies in between
is counted or not depending on where ``now`` falls in its bucket. The window therefore
spans between ``window - width`` and ``window`` seconds, and more buckets narrow the gap.

Time is passed in (monotonic seconds); nothing here reads a clock. An event stamped older
than the window held by its slot (a late report from a slow thread) is dropped. The ring
has no lock: its owner holds one around every call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ._validate import check_int, check_number

__all__ = ["BucketRing"]


class BucketRing:
    """``fields`` integer counters per time bucket, over the last ``window`` seconds.

    Args:
        window: Length of the window in seconds, > 0.
        buckets: Number of buckets, >= 1.
        fields: Counters per bucket, >= 1.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument is out of range.
    """

    __slots__ = ("_counts", "_epochs", "buckets", "fields", "width", "window")

    def __init__(self, window: float, buckets: int, fields: int) -> None:
        number = check_number("window", window, positive=True)
        assert number is not None
        self.window = number
        self.buckets = check_int("buckets", buckets, 1)
        self.fields = check_int("fields", fields, 1)
        self.width = self.window / self.buckets
        self._epochs: list[int] = [0] * self.buckets
        self._counts: list[list[int]] = [[0] * self.fields for _ in range(self.buckets)]

    def epoch(self, now: float) -> int:
        """Return the number of the bucket that holds time ``now``."""
        return math.floor(now / self.width)

    def add(self, now: float, deltas: Sequence[int]) -> None:
        """Add ``deltas`` (one per field) to the bucket of time ``now``.

        Args:
            now: The event's time, monotonic seconds.
            deltas: How much to add to each counter; ``len(deltas) == fields``.
        """
        epoch = self.epoch(now)
        slot = epoch % self.buckets
        row = self._counts[slot]
        held = self._epochs[slot]
        if held == epoch:
            for i, delta in enumerate(deltas):
                row[i] += delta
        elif held < epoch or not any(row):
            self._epochs[slot] = epoch
            row[:] = deltas
        # else: the slot already holds a newer bucket; the event is older than the window.

    def totals(self, now: float) -> list[int]:
        """Return each counter summed over the buckets in the window ending at ``now``."""
        epoch = self.epoch(now)
        sums = [0] * self.fields
        for held, row in zip(self._epochs, self._counts):
            if epoch - self.buckets < held <= epoch:
                for i, count in enumerate(row):
                    sums[i] += count
        return sums

    def rows(self, now: float) -> list[tuple[int, ...]]:
        """Return the window's buckets, oldest first; a bucket with no events is all zeros.

        Always ``buckets`` rows: the last is the bucket of ``now``.
        """
        epoch = self.epoch(now)
        empty = (0,) * self.fields
        rows: list[tuple[int, ...]] = []
        for held in range(epoch - self.buckets + 1, epoch + 1):
            slot = held % self.buckets
            rows.append(tuple(self._counts[slot]) if self._epochs[slot] == held else empty)
        return rows

    def clear(self) -> None:
        """Forget every event."""
        for row in self._counts:
            row[:] = [0] * self.fields
