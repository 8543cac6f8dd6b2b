"""Production-grade connection management for code written against ``requests``.

``from requests_connection_manager import ConnectionManager`` gives a drop-in wrapper of
``requests.Session`` with pooled connections, retries with full-jitter backoff, a per-host
rate limiter, a per-host circuit breaker, server-advised quotas and one family of
exceptions.

Public modules: this package, :mod:`.exceptions`, :mod:`.plugins` and :mod:`.utils`
(where requests-connection-manager 1.0.0 had them), :mod:`.config` (the frozen
configuration objects) and :mod:`.events` (the event stream). Everything else is private.
"""

from __future__ import annotations

import logging

from ._clock import Clock, SystemClock
from ._manager import ConnectionManager
from ._pipeline import ResilientAdapter
from ._session import ConnectionManagerMixin
from .config import (
    BreakerConfig,
    BudgetConfig,
    Policy,
    RateLimitConfig,
    RetryConfig,
    SignalsConfig,
    TimeoutConfig,
    TLSConfig,
)
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
    "BreakerConfig",
    "BudgetConfig",
    "CircuitBreakerOpen",
    "Clock",
    "ConnectionManager",
    "ConnectionManagerError",
    "ConnectionManagerMixin",
    "ErrorContext",
    "HookType",
    "MaxRetriesExceeded",
    "PluginManager",
    "Policy",
    "RateLimitConfig",
    "RateLimitExceeded",
    "RequestContext",
    "ResilientAdapter",
    "ResponseContext",
    "RetryConfig",
    "SignalsConfig",
    "SystemClock",
    "TLSConfig",
    "TimeoutConfig",
    "__version__",
    "is_sensitive_field",
    "redact_sensitive_data",
    "safe_log_error",
    "safe_log_request",
    "safe_log_response",
]
