"""Configuration: validation of every keyword, and the frozen policy the pipeline reads.

All user input is checked and normalised here, once, at construction. The rest of the
library sees a :class:`Policy` and never re-validates.
"""

from __future__ import annotations

import importlib.util
import math
import os
import ssl
from dataclasses import dataclass
from typing import Any, Optional, Union
from urllib.parse import urlsplit

from urllib3.util.retry import Retry

__all__ = [
    "DEFAULT_STATUS_FORCELIST",
    "MAX_POOL_SIZE",
    "POLICY_KEYS",
    "SCOPED_KEYS",
    "STRATEGIES",
    "TLS_KEYS",
    "BreakerSettings",
    "BudgetSettings",
    "CertType",
    "Policy",
    "RateLimitSettings",
    "VerifyType",
    "build_policy",
    "check_cert",
    "check_verify",
    "host_key",
]

#: TLS verification: True, False, or a path to a CA bundle file or directory.
VerifyType = Union[bool, str]
#: A client certificate: a path to a PEM file, or a ``(cert, key)`` pair of paths.
CertType = Union[str, "tuple[str, str]"]

#: Statuses retried by default (for methods the retry policy allows).
DEFAULT_STATUS_FORCELIST = frozenset({429, 500, 502, 503, 504})

#: The rate-limit strategies: ``ratelimit``'s fixed window, ``limits``' moving window.
STRATEGIES = ("fixed-window", "sliding-window")

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: Largest ``pool_connections`` / ``pool_maxsize``: urllib3 allocates a pool's slots up front.
MAX_POOL_SIZE = 10_000
#: Largest ``retry_budget_burst``.
MAX_RETRY_BUDGET_BURST = 1_000_000

#: Keywords that give an endpoint its own limiter and breaker (and stats entry).
SCOPED_KEYS = frozenset(
    {
        "rate_limit_requests",
        "rate_limit_period",
        "rate_limit_max_wait",
        "rate_limit_strategy",
        "circuit_breaker_failure_threshold",
        "circuit_breaker_recovery_timeout",
        "circuit_breaker_half_open_max_calls",
        "retry_budget",
        "retry_budget_burst",
    }
)
#: TLS keywords; in an endpoint config they override the session's for matching hosts.
TLS_KEYS = frozenset({"verify", "cert", "ssl_context"})
#: The keywords :func:`build_policy` takes (an endpoint config may set any of them).
POLICY_KEYS = (
    SCOPED_KEYS
    | TLS_KEYS
    | frozenset(
        {
            "max_retries",
            "backoff_factor",
            "retry",
            "timeout",
            "connect_timeout",
            "read_timeout",
            "total_timeout",
            "retry_after_max",
        }
    )
)


@dataclass(frozen=True)
class RateLimitSettings:
    """A client-side rate limit: ``requests`` starts per ``period`` seconds, per host."""

    requests: int
    period: float
    max_wait: Optional[float]
    strategy: str


@dataclass(frozen=True)
class BudgetSettings:
    """A per-host retry budget: ``ratio`` retries per first attempt, bursts of ``burst``."""

    ratio: float
    burst: int


@dataclass(frozen=True)
class BreakerSettings:
    """Circuit breaker thresholds for one host."""

    failure_threshold: int
    recovery_timeout: float
    half_open_max_calls: int


@dataclass(frozen=True)
class Policy:
    """Everything the pipeline needs to run one call. Immutable and shared by threads.

    Attributes:
        retry: The urllib3 ``Retry`` used as a pure policy object (never mutated).
        connect_timeout: Seconds to wait for a connection, or None for no limit.
        read_timeout: Seconds to wait between bytes from the server, or None.
        total_timeout: Deadline for a whole call (attempts, waits, body), or None.
        retry_after_max: Longest ``Retry-After`` the pipeline will wait for, in seconds.
        rate_limit: The per-host rate limit, or None when rate limiting is off.
        breaker: The per-host breaker settings, or None when the breaker is off.
        budget: The per-host retry budget, or None when retries are not budgeted.
        verify: TLS verification that overrides the session's (an endpoint's), or None.
        cert: A client certificate that overrides the session's (an endpoint's), or None.
        ssl_context: The ``ssl.SSLContext`` for HTTPS connections, or None for requests'.
        scope: Empty for the host's own limiter and breaker; an endpoint pattern when that
            endpoint has its own.
    """

    retry: Retry
    connect_timeout: Optional[float]
    read_timeout: Optional[float]
    total_timeout: Optional[float]
    retry_after_max: float
    rate_limit: Optional[RateLimitSettings]
    breaker: Optional[BreakerSettings]
    budget: Optional[BudgetSettings] = None
    verify: Optional[VerifyType] = None
    cert: Optional[CertType] = None
    ssl_context: Optional[ssl.SSLContext] = None
    scope: str = ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """``repr(value)``, except for ints too long to print (Python refuses > 4300 digits)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an int of {value.bit_length()} bits"
    return repr(value)


def check_int(name: str, value: Any, minimum: int, maximum: Optional[int] = None) -> int:
    """Return ``value`` if it is an int >= ``minimum`` (and <= ``maximum`` when given).

    Raises:
        TypeError: ``value`` is not an int (bools are refused).
        ValueError: ``value`` is out of range.
    """
    wanted = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int {wanted}, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an int {wanted}, got {_shown(value)}")
    return value


def check_number(
    name: str, value: Any, *, positive: bool = False, allow_none: bool = False
) -> Optional[float]:
    """Return ``value`` as a float if it is a finite number in range.

    Args:
        name: The parameter name, for the error message.
        value: The value to check.
        positive: Require ``> 0`` instead of ``>= 0``.
        allow_none: Let None through.

    Raises:
        TypeError: ``value`` is not a number.
        ValueError: ``value`` is negative, zero when ``positive``, NaN or infinite.
    """
    wanted = "a number > 0" if positive else "a number >= 0"
    if allow_none:
        wanted += " or None"
    if value is None and allow_none:
        return None
    if not _is_number(value):
        raise TypeError(f"{name} must be {wanted}, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be {wanted}, got a number too large") from None
    if math.isnan(number) or math.isinf(number) or number < 0 or (positive and number == 0):
        raise ValueError(f"{name} must be {wanted}, got {_shown(value)}")
    return number


def _check_timeout(name: str, value: Any) -> tuple[Optional[float], Optional[float]]:
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(f"{name} must be a number, None or a (connect, read) pair")
        return (
            check_number(f"{name}[0]", value[0], positive=True, allow_none=True),
            check_number(f"{name}[1]", value[1], positive=True, allow_none=True),
        )
    number = check_number(name, value, positive=True, allow_none=True)
    return number, number


def check_verify(name: str, value: Any) -> VerifyType:
    """Return ``value`` if it is a bool or the path of an existing CA bundle file or directory.

    Raises:
        TypeError: ``value`` is neither a bool nor a str.
        ValueError: The path does not exist.
    """
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be True, False or a CA bundle path, got {type(value).__name__}"
        )
    if not os.path.exists(value):
        raise ValueError(f"{name}: CA bundle path {value!r} does not exist")
    return value


def check_cert(name: str, value: Any) -> Optional[CertType]:
    """Return ``value`` if it is None, a PEM path, or a ``(cert, key)`` pair of paths.

    Raises:
        TypeError: ``value`` has another shape.
        ValueError: A path does not exist.
    """
    if value is None:
        return None
    paths = list(value) if isinstance(value, (tuple, list)) else [value]
    if len(paths) not in (1, 2) or not all(isinstance(p, str) for p in paths):
        raise TypeError(f"{name} must be a path or a (cert, key) pair of paths, or None")
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"{name}: file {path!r} does not exist")
    return (paths[0], paths[1]) if len(paths) == 2 else paths[0]


def build_policy(
    *,
    max_retries: Any = 3,
    backoff_factor: Any = 0.3,
    retry: Any = None,
    rate_limit_requests: Any = None,
    rate_limit_period: Any = 60,
    rate_limit_max_wait: Any = None,
    rate_limit_strategy: Any = "fixed-window",
    circuit_breaker_failure_threshold: Any = 5,
    circuit_breaker_recovery_timeout: Any = 60,
    circuit_breaker_half_open_max_calls: Any = 1,
    timeout: Any = 30,
    connect_timeout: Any = None,
    read_timeout: Any = None,
    total_timeout: Any = None,
    retry_after_max: Any = 120,
    retry_budget: Any = 0.2,
    retry_budget_burst: Any = 10,
    verify: Any = None,
    cert: Any = None,
    ssl_context: Any = None,
    scope: str = "",
) -> Policy:
    """Validate the policy keywords of :class:`ConnectionManager` and build a :class:`Policy`.

    Returns:
        The immutable policy.

    Raises:
        TypeError: A keyword has the wrong type; the message names it.
        ValueError: A keyword is out of range; the message names it and the range.
    """
    if retry is None:
        retries = check_int("max_retries", max_retries, 0)
        factor = check_number("backoff_factor", backoff_factor)
        assert factor is not None
        retry = Retry(
            total=retries,
            backoff_factor=factor,
            status_forcelist=DEFAULT_STATUS_FORCELIST,
            allowed_methods=Retry.DEFAULT_ALLOWED_METHODS,
            respect_retry_after_header=True,
            raise_on_status=True,
            raise_on_redirect=False,
        )
    elif not isinstance(retry, Retry):
        raise TypeError(f"retry must be a urllib3.util.Retry or None, got {type(retry).__name__}")
    else:
        # Still validate the two keywords it overrides, so typos are not silently ignored.
        check_int("max_retries", max_retries, 0)
        check_number("backoff_factor", backoff_factor)

    connect, read = _check_timeout("timeout", timeout)
    if connect_timeout is not None:
        connect = check_number("connect_timeout", connect_timeout, positive=True)
    if read_timeout is not None:
        read = check_number("read_timeout", read_timeout, positive=True)
    total = check_number("total_timeout", total_timeout, positive=True, allow_none=True)
    ra_max = check_number("retry_after_max", retry_after_max)
    assert ra_max is not None

    if rate_limit_strategy not in STRATEGIES:
        raise ValueError(
            f"rate_limit_strategy must be one of {', '.join(map(repr, STRATEGIES))}, "
            f"got {rate_limit_strategy!r}"
        )
    period = check_number("rate_limit_period", rate_limit_period, positive=True)
    assert period is not None
    max_wait = check_number("rate_limit_max_wait", rate_limit_max_wait, allow_none=True)
    limit: Optional[RateLimitSettings] = None
    if rate_limit_requests is not None:
        calls = check_int("rate_limit_requests", rate_limit_requests, 1)
        if rate_limit_strategy == "sliding-window" and not float(period).is_integer():
            raise ValueError(
                "rate_limit_period must be a whole number of seconds with "
                f"rate_limit_strategy='sliding-window', got {rate_limit_period!r}"
            )
        if rate_limit_strategy == "sliding-window" and importlib.util.find_spec("limits") is None:
            raise ValueError(
                "rate_limit_strategy='sliding-window' needs the 'limits' package: "
                "pip install 'requests-connection-manager[redis]'"
            )
        limit = RateLimitSettings(calls, period, max_wait, rate_limit_strategy)

    breaker: Optional[BreakerSettings] = None
    recovery = check_number(
        "circuit_breaker_recovery_timeout", circuit_breaker_recovery_timeout, positive=True
    )
    assert recovery is not None
    probes = check_int(
        "circuit_breaker_half_open_max_calls", circuit_breaker_half_open_max_calls, 1
    )
    if circuit_breaker_failure_threshold is not None:
        threshold = check_int(
            "circuit_breaker_failure_threshold", circuit_breaker_failure_threshold, 1
        )
        breaker = BreakerSettings(threshold, recovery, probes)

    budget: Optional[BudgetSettings] = None
    burst = check_int("retry_budget_burst", retry_budget_burst, 0, MAX_RETRY_BUDGET_BURST)
    if retry_budget is not None:
        ratio = check_number("retry_budget", retry_budget, allow_none=True)
        assert ratio is not None
        if ratio > 1:
            raise ValueError(
                f"retry_budget must be a number in [0, 1] or None, got {retry_budget!r}"
            )
        budget = BudgetSettings(ratio, burst)

    if verify is not None:
        verify = check_verify("verify", verify)
    cert = check_cert("cert", cert)
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError(
            f"ssl_context must be an ssl.SSLContext or None, got {type(ssl_context).__name__}"
        )

    return Policy(
        retry=retry,
        connect_timeout=connect,
        read_timeout=read,
        total_timeout=total,
        retry_after_max=ra_max,
        rate_limit=limit,
        breaker=breaker,
        budget=budget,
        verify=verify,
        cert=cert,
        ssl_context=ssl_context,
        scope=scope,
    )


def host_key(url: str) -> str:
    """Return the host key of ``url``: ``scheme://host:port``, lower-cased, port filled in.

    Args:
        url: An absolute URL.

    Returns:
        The key under which limiter, breaker, pause and stats are kept.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme, 0)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
