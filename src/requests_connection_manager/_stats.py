"""The per-host counters of ``get_stats()``: a subscriber of the event stream.

Each event adds to the counters of its host (found in the host table, so the counters
are dropped with the host when the table evicts it):

==================== ==============================================================
counter              events
==================== ==============================================================
requests             ``RequestStarted`` (one per redirect hop, refused ones included)
attempts, retries    ``AttemptStarted`` (retries: attempt 2 and up)
failures             ``AttemptFinished`` with the verdict ``"failure"``
rejected_open        ``Refused`` by the breaker
rejected_local       ``Refused`` by adaptive throttling
throttled            ``Refused`` by a rate limit, a pause or throttling; ``Waited`` for
                     a pause or a rate-limit permit
throttle_wait_seconds ``Waited`` for a pause or a rate-limit permit (seconds)
retries_denied       ``RetryDenied`` (retry budget)
breaker_opened       ``BreakerStateChanged`` to ``"open"``
paused               ``HostPaused``
==================== ==============================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .events import (
    AttemptFinished,
    AttemptStarted,
    BreakerStateChanged,
    HostPaused,
    Refused,
    RequestStarted,
    RetryDenied,
    Waited,
)

if TYPE_CHECKING:
    from ._hosts import HostRegistry, HostStats

__all__ = ["StatsRecorder"]

_THROTTLE_REASONS = frozenset({"rate_limit", "pause", "throttle", "quota"})


class StatsRecorder:
    """Counts events per host into the host table's counters.

    Args:
        hosts: The host table.
    """

    def __init__(self, hosts: HostRegistry) -> None:
        self._hosts = hosts
        self._handlers: dict[type, Callable[[HostStats, Any], None]] = {
            RequestStarted: lambda stats, e: stats.add("requests"),
            AttemptStarted: _attempt_started,
            AttemptFinished: _attempt_finished,
            Refused: _refused,
            Waited: _waited,
            RetryDenied: lambda stats, e: stats.add("retries_denied"),
            BreakerStateChanged: _breaker_changed,
            HostPaused: lambda stats, e: stats.add("paused"),
        }
        #: The events this subscriber counts (the bus hands it no other).
        self.event_types = frozenset(self._handlers)

    def __call__(self, event: Any) -> None:
        """Count ``event`` for its host (events of hosts no longer tracked are dropped)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return
        state = self._hosts.peek(event.host)
        if state is not None:
            handler(state.stats, event)


def _attempt_started(stats: HostStats, event: AttemptStarted) -> None:
    stats.add("attempts", other="retries" if event.attempt > 1 else None)


def _attempt_finished(stats: HostStats, event: AttemptFinished) -> None:
    if event.verdict == "failure":
        stats.add("failures")


def _refused(stats: HostStats, event: Refused) -> None:
    if event.reason == "breaker":
        stats.add("rejected_open")
    elif event.reason == "throttle":
        stats.add("rejected_local", other="throttled")
    elif event.reason in _THROTTLE_REASONS or event.reason == "retry_after":
        stats.add("throttled")


def _waited(stats: HostStats, event: Waited) -> None:
    if event.reason in _THROTTLE_REASONS:
        stats.add("throttle_wait_seconds", event.seconds, other="throttled")


def _breaker_changed(stats: HostStats, event: BreakerStateChanged) -> None:
    if event.new == "open":
        stats.add("breaker_opened")
