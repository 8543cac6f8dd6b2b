"""The library's log lines: a subscriber of the event stream.

Logger ``requests_connection_manager``; nothing is formatted unless the level is enabled;
every URL is already redacted in the events.

======================== ========= ===================================================
event                    level     line
======================== ========= ===================================================
RetryScheduled           INFO      retrying GET <url> (attempt 1 failed: status 503);
                                   waiting 0.150 s
BreakerStateChanged      WARNING   circuit breaker for <host> opened (was closed)
                         INFO      circuit breaker for <host>: open -> half-open
HostPaused               INFO      <host> paused for 2.000 s (retry-after)
RetryDenied              INFO      not retrying <host> (attempt 1): retry budget spent
Refused                  DEBUG     <host> refused (breaker), retry after 12.000 s
SharedStateChanged       WARNING   shared state: Redis is unreachable or failing ...
======================== ========= ===================================================
"""

from __future__ import annotations

import logging
from typing import Any

from .events import (
    BreakerStateChanged,
    HostPaused,
    Refused,
    RetryDenied,
    RetryScheduled,
    SharedStateChanged,
)

__all__ = ["LogWriter"]

logger = logging.getLogger("requests_connection_manager")


class LogWriter:
    """Writes the events worth a log line (see the module docstring)."""

    #: The events that may make a log line (the bus hands it no other).
    event_types = frozenset(
        {RetryScheduled, BreakerStateChanged, HostPaused, RetryDenied, Refused, SharedStateChanged}
    )

    def __call__(self, event: Any) -> None:
        """Log ``event`` if it is one that is logged and its level is enabled."""
        kind = type(event)
        if kind is RetryScheduled:
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "retrying %s %s (attempt %d failed: %s); waiting %.3f s",
                    event.method,
                    event.url,
                    event.attempt,
                    event.outcome,
                    event.wait,
                )
        elif kind is BreakerStateChanged:
            _breaker(event)
        elif kind is HostPaused:
            if logger.isEnabledFor(logging.INFO):
                logger.info("%s paused for %.3f s (%s)", event.host, event.seconds, event.source)
        elif kind is RetryDenied:
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "not retrying %s (attempt %d): retry budget spent", event.host, event.attempt
                )
        elif kind is Refused:
            if logger.isEnabledFor(logging.DEBUG):
                after = (
                    "" if event.retry_after is None else f", retry after {event.retry_after:.3f} s"
                )
                logger.debug("%s refused (%s)%s", event.host, event.reason, after)
        elif kind is SharedStateChanged:
            _shared(event)


def _breaker(event: BreakerStateChanged) -> None:
    if event.new == "open":
        if logger.isEnabledFor(logging.WARNING):
            logger.warning("circuit breaker for %s opened (was %s)", event.host, event.old or "new")
    elif logger.isEnabledFor(logging.INFO):
        logger.info("circuit breaker for %s: %s -> %s", event.host, event.old or "new", event.new)


def _shared(event: SharedStateChanged) -> None:
    if event.healthy:
        logger.warning("shared state: Redis answers again; sharing resumed")
    else:
        logger.warning(
            "shared state: Redis is unreachable, failing or slow (%s); using local state until "
            "it answers again",
            event.cause or "error",
        )
