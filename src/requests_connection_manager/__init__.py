"""Production-grade connection management for code written against ``requests``.

``from requests_connection_manager import ConnectionManager`` gives a drop-in wrapper of
``requests.Session`` with pooled connections, retries with full-jitter backoff, a per-host
rate limiter, a per-host circuit breaker and one family of exceptions.
"""

from __future__ import annotations

from .adapter import ResilientAdapter
from .clock import Clock, SystemClock
from .exceptions import (
    CircuitBreakerOpen,
    ConnectionManagerError,
    MaxRetriesExceeded,
    RateLimitExceeded,
)
from .manager import ConnectionManager

__version__ = "2.0.0.dev0"

__all__ = [
    "CircuitBreakerOpen",
    "Clock",
    "ConnectionManager",
    "ConnectionManagerError",
    "MaxRetriesExceeded",
    "RateLimitExceeded",
    "ResilientAdapter",
    "SystemClock",
    "__version__",
]
