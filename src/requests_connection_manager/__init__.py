"""Production-grade connection management for code written against ``requests``.

``from requests_connection_manager import ConnectionManager`` gives a drop-in wrapper of
``requests.Session`` with pooled connections, retries with full-jitter backoff, a per-host
rate limiter, a per-host circuit breaker and one family of exceptions.
"""

from __future__ import annotations

import logging

from ._adapter import ResilientAdapter
from ._clock import Clock, SystemClock
from ._manager import ConnectionManager
from .exceptions import (
    CircuitBreakerOpen,
    ConnectionManagerError,
    MaxRetriesExceeded,
    RateLimitExceeded,
)
from .plugins import ErrorContext, HookType, PluginManager, RequestContext, ResponseContext
from .utils import (
    is_sensitive_field,
    redact_sensitive_data,
    safe_log_error,
    safe_log_request,
    safe_log_response,
)

__version__ = "2.0.0.dev0"

# A library logs; the application decides where to (no "No handlers" fallback to stderr).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "CircuitBreakerOpen",
    "Clock",
    "ConnectionManager",
    "ConnectionManagerError",
    "ErrorContext",
    "HookType",
    "MaxRetriesExceeded",
    "PluginManager",
    "RateLimitExceeded",
    "RequestContext",
    "ResilientAdapter",
    "ResponseContext",
    "SystemClock",
    "__version__",
    "is_sensitive_field",
    "redact_sensitive_data",
    "safe_log_error",
    "safe_log_request",
    "safe_log_response",
]
