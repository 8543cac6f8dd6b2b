"""Configuration objects: frozen, validated values the pipeline reads.

The keywords of :class:`~requests_connection_manager.ConnectionManager` (the 1.0.0 front
door) are turned into these objects once, by :func:`build_policy`; an endpoint config is
the global :class:`Policy` with some parts replaced (:func:`dataclasses.replace`). Each
object validates itself in ``__post_init__``, naming the manager keyword a bad field comes
from, so building one by hand is as safe as passing keywords::

    from requests_connection_manager.config import BreakerConfig

    BreakerConfig(failure_threshold=3, failure_rate=0.25, minimum_calls=50)

Like urllib3's ``Retry``, they never change: one object is shared by every thread, and
``dataclasses.replace(config, field=value)`` makes a new, validated one.
"""

from __future__ import annotations

import importlib.util
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Optional

from urllib3.util.retry import Retry

from ._validate import (
    CertType,
    VerifyType,
    check_bool,
    check_cert,
    check_int,
    check_number,
    check_verify,
)

__all__ = [
    "DEFAULT_STATUS_FORCELIST",
    "MAX_POOL_SIZE",
    "POLICY_DEFAULTS",
    "STRATEGIES",
    "BreakerConfig",
    "BudgetConfig",
    "CertType",
    "Policy",
    "RateLimitConfig",
    "RetryConfig",
    "SignalsConfig",
    "TLSConfig",
    "TimeoutConfig",
    "VerifyType",
    "build_policy",
]

#: Statuses retried by default (for methods the retry policy allows).
DEFAULT_STATUS_FORCELIST = frozenset({429, 500, 502, 503, 504})
#: The rate-limit strategies: ``ratelimit``'s fixed window, ``limits``' moving window.
STRATEGIES = ("fixed-window", "sliding-window")
#: Largest ``pool_connections`` / ``pool_maxsize``: urllib3 allocates a pool's slots up front.
MAX_POOL_SIZE = 10_000
#: Largest ``retry_budget_burst``.
MAX_RETRY_BUDGET_BURST = 1_000_000
#: The range of ``circuit_breaker_window``, seconds: one millisecond to one day.
_MIN_WINDOW = 0.001
_MAX_WINDOW = 86_400.0
#: The header an idempotency key is sent in unless another is named.
DEFAULT_IDEMPOTENCY_HEADER = "Idempotency-Key"


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


@dataclass(frozen=True)
class RetryConfig:
    """When and how a failed attempt is retried.

    Attributes:
        max_retries: Retries after the first attempt (``max_retries``), >= 0.
        backoff_factor: Backoff base in seconds (``backoff_factor``): retry ``n`` waits a
            random time in ``[0, backoff_factor * 2 ** (n - 1)]`` (full jitter).
        retry: A urllib3 ``Retry`` used as the policy instead of the two above (``retry``).
        retry_after_max: Longest ``Retry-After`` honoured, seconds (``retry_after_max``).
        idempotency_keys: Send an ``Idempotency-Key`` with POST and PATCH and retry them
            like idempotent methods (``idempotency_keys``).
        idempotency_header: The header name of the key (``idempotency_key_header``).
    """

    max_retries: int = 3
    backoff_factor: float = 0.3
    retry: Optional[Retry] = None
    retry_after_max: float = 120
    idempotency_keys: bool = False
    idempotency_header: str = DEFAULT_IDEMPOTENCY_HEADER
    policy: Retry = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_int("max_retries", self.max_retries, 0)
        _set(self, "backoff_factor", check_number("backoff_factor", self.backoff_factor))
        _set(self, "retry_after_max", check_number("retry_after_max", self.retry_after_max))
        check_bool("idempotency_keys", self.idempotency_keys)
        header: Any = self.idempotency_header
        if not isinstance(header, str) or not header.strip():
            raise ValueError("idempotency_key_header must be a non-empty header name")
        retry = self.retry
        if retry is None:
            retry = Retry(
                total=self.max_retries,
                backoff_factor=self.backoff_factor,
                status_forcelist=DEFAULT_STATUS_FORCELIST,
                allowed_methods=Retry.DEFAULT_ALLOWED_METHODS,
                respect_retry_after_header=True,
                raise_on_status=True,
                raise_on_redirect=False,
            )
        elif not isinstance(retry, Retry):
            raise TypeError(
                f"retry must be a urllib3.util.Retry or None, got {type(retry).__name__}"
            )
        _set(self, "policy", retry)


@dataclass(frozen=True)
class TimeoutConfig:
    """How long a request may take.

    Attributes:
        connect: Seconds to establish a connection, or None for no limit.
        read: Seconds to wait between bytes from the server, or None.
        total: Deadline for a whole call (attempts, waits, body) in seconds, or None.
    """

    connect: Optional[float] = 30
    read: Optional[float] = 30
    total: Optional[float] = None

    def __post_init__(self) -> None:
        _set(
            self,
            "connect",
            check_number("connect_timeout", self.connect, positive=True, allow_none=True),
        )
        _set(self, "read", check_number("read_timeout", self.read, positive=True, allow_none=True))
        _set(
            self, "total", check_number("total_timeout", self.total, positive=True, allow_none=True)
        )

    @classmethod
    def from_keywords(
        cls,
        timeout: Any,
        connect_timeout: Any = None,
        read_timeout: Any = None,
        total_timeout: Any = None,
    ) -> TimeoutConfig:
        """Build from the manager's ``timeout`` and the three keywords that refine it.

        ``timeout`` is a number (both parts), a ``(connect, read)`` pair or None (no limit);
        ``connect_timeout`` and ``read_timeout`` override its parts when not None.
        """
        if isinstance(timeout, tuple):
            if len(timeout) != 2:
                raise ValueError("timeout must be a number, None or a (connect, read) pair")
            connect = check_number("timeout[0]", timeout[0], positive=True, allow_none=True)
            read = check_number("timeout[1]", timeout[1], positive=True, allow_none=True)
        else:
            connect = read = check_number("timeout", timeout, positive=True, allow_none=True)
        if connect_timeout is not None:
            connect = check_number("connect_timeout", connect_timeout, positive=True)
        if read_timeout is not None:
            read = check_number("read_timeout", read_timeout, positive=True)
        return cls(connect, read, total_timeout)


@dataclass(frozen=True)
class RateLimitConfig:
    """A client-side rate limit, per host.

    Attributes:
        requests: Attempts allowed per ``period`` (``rate_limit_requests``), >= 1.
        period: The window in seconds (``rate_limit_period``), > 0.
        max_wait: Longest wait for a permit (``rate_limit_max_wait``): None waits as long
            as needed (bounded by the deadline), 0 fails fast.
        strategy: ``"fixed-window"`` or ``"sliding-window"`` (``rate_limit_strategy``).
    """

    requests: int
    period: float = 60
    max_wait: Optional[float] = None
    strategy: str = "fixed-window"

    def __post_init__(self) -> None:
        check_int("rate_limit_requests", self.requests, 1)
        _set(self, "period", check_number("rate_limit_period", self.period, positive=True))
        _set(self, "max_wait", check_number("rate_limit_max_wait", self.max_wait, allow_none=True))
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"rate_limit_strategy must be one of {', '.join(map(repr, STRATEGIES))}, "
                f"got {self.strategy!r}"
            )
        if self.strategy == "sliding-window":
            if not float(self.period).is_integer():
                raise ValueError(
                    "rate_limit_period must be a whole number of seconds with "
                    f"rate_limit_strategy='sliding-window', got {self.period!r}"
                )
            if importlib.util.find_spec("limits") is None:
                raise ValueError(
                    "rate_limit_strategy='sliding-window' needs the 'limits' package: "
                    "pip install 'requests-connection-manager[redis]'"
                )


@dataclass(frozen=True)
class BreakerConfig:
    """A host's circuit breaker: when it opens, how long it stays open, how it probes.

    It opens on ``failure_threshold`` consecutive failed attempts, **or** when, over the
    last ``window`` seconds, at least ``minimum_calls`` attempts were made and the share
    that failed (slow ones included, see ``slow_call_duration``) reaches ``failure_rate``.

    Attributes:
        failure_threshold: Consecutive failed attempts that open it
            (``circuit_breaker_failure_threshold``), >= 1.
        recovery_timeout: Seconds it stays open before probing
            (``circuit_breaker_recovery_timeout``), > 0.
        half_open_max_calls: Concurrent probes while half-open
            (``circuit_breaker_half_open_max_calls``), >= 1.
        failure_rate: The failure ratio that opens it, in ``(0, 1]``, or None for no ratio
            rule (``circuit_breaker_failure_rate``).
        minimum_calls: Attempts in the window before the ratio is judged
            (``circuit_breaker_minimum_calls``), >= 1.
        window: The ratio's sliding window in seconds (``circuit_breaker_window``), > 0.
        slow_call_duration: An attempt slower than this many seconds counts as failed for
            the ratio, or None (``circuit_breaker_slow_call_duration``).
    """

    failure_threshold: int = 5
    recovery_timeout: float = 60
    half_open_max_calls: int = 1
    failure_rate: Optional[float] = 0.5
    minimum_calls: int = 20
    window: float = 30
    slow_call_duration: Optional[float] = None

    def __post_init__(self) -> None:
        check_int("circuit_breaker_failure_threshold", self.failure_threshold, 1)
        recovery = check_number(
            "circuit_breaker_recovery_timeout", self.recovery_timeout, positive=True
        )
        _set(self, "recovery_timeout", recovery)
        check_int("circuit_breaker_half_open_max_calls", self.half_open_max_calls, 1)
        rate = check_number(
            "circuit_breaker_failure_rate", self.failure_rate, positive=True, allow_none=True
        )
        if rate is not None and rate > 1:
            raise ValueError(
                "circuit_breaker_failure_rate must be a number in (0, 1] or None, "
                f"got {self.failure_rate!r}"
            )
        _set(self, "failure_rate", rate)
        check_int("circuit_breaker_minimum_calls", self.minimum_calls, 1, 1_000_000)
        window = check_number("circuit_breaker_window", self.window, positive=True)
        assert window is not None
        if not _MIN_WINDOW <= window <= _MAX_WINDOW:
            raise ValueError(
                f"circuit_breaker_window must be between {_MIN_WINDOW} and {_MAX_WINDOW:.0f} "
                f"seconds, got {self.window!r}"
            )
        _set(self, "window", window)
        slow = check_number(
            "circuit_breaker_slow_call_duration",
            self.slow_call_duration,
            positive=True,
            allow_none=True,
        )
        _set(self, "slow_call_duration", slow)


@dataclass(frozen=True)
class BudgetConfig:
    """A per-host retry budget: retries may not exceed a share of recent first attempts.

    Attributes:
        ratio: Tokens each first attempt deposits, in ``[0, 1]`` (``retry_budget``).
        burst: Bucket size: retries allowed back to back (``retry_budget_burst``).
    """

    ratio: float = 0.2
    burst: int = 10

    def __post_init__(self) -> None:
        ratio = check_number("retry_budget", self.ratio, allow_none=True)
        if ratio is None or ratio > 1:
            raise ValueError(f"retry_budget must be a number in [0, 1] or None, got {self.ratio!r}")
        _set(self, "ratio", ratio)
        check_int("retry_budget_burst", self.burst, 0, MAX_RETRY_BUDGET_BURST)


@dataclass(frozen=True)
class SignalsConfig:
    """What the pipeline learns from the server, and how it sheds load.

    Attributes:
        respect_rate_limit_headers: Pace a host to the quota its ``RateLimit`` /
            ``X-RateLimit-*`` headers advertise (``respect_rate_limit_headers``).
        adaptive_throttling: Reject attempts locally, with the probability of Google
            SRE's client-side throttling, while a host refuses many (``adaptive_throttling``).
        adaptive_throttling_k: The ``K`` of that formula, >= 1 (``adaptive_throttling_k``).
        max_wait: Longest a caller waits for a pause the server asked for (quota reset,
            ``Retry-After``, slow-down) (``rate_limit_max_wait``): None waits up to
            ``retry_after_max``, 0 fails fast with ``RateLimitExceeded``.
        adaptive_throttling_max_probability: The highest share of attempts the throttle
            rejects, in ``(0, 1]`` (``adaptive_throttling_max_probability``).
    """

    respect_rate_limit_headers: bool = True
    adaptive_throttling: bool = False
    adaptive_throttling_k: float = 2.0
    max_wait: Optional[float] = None
    adaptive_throttling_max_probability: float = 1.0

    def __post_init__(self) -> None:
        check_bool("respect_rate_limit_headers", self.respect_rate_limit_headers)
        check_bool("adaptive_throttling", self.adaptive_throttling)
        k = check_number("adaptive_throttling_k", self.adaptive_throttling_k, positive=True)
        if k is None or k < 1:
            raise ValueError(
                f"adaptive_throttling_k must be a number >= 1, got {self.adaptive_throttling_k!r}"
            )
        _set(self, "adaptive_throttling_k", k)
        _set(self, "max_wait", check_number("rate_limit_max_wait", self.max_wait, allow_none=True))
        cap = check_number(
            "adaptive_throttling_max_probability",
            self.adaptive_throttling_max_probability,
            positive=True,
        )
        if cap is None or cap > 1:
            raise ValueError(
                "adaptive_throttling_max_probability must be a number in (0, 1], "
                f"got {self.adaptive_throttling_max_probability!r}"
            )
        _set(self, "adaptive_throttling_max_probability", cap)


@dataclass(frozen=True)
class TLSConfig:
    """TLS settings of an endpoint; None leaves the session's (or the call's) in force.

    Attributes:
        verify: True, False, or a CA bundle path (``verify``).
        cert: A client certificate: a PEM path or a ``(cert, key)`` pair (``cert``).
        ssl_context: An ``ssl.SSLContext`` for HTTPS connections (``ssl_context``).
    """

    verify: Optional[VerifyType] = None
    cert: Optional[CertType] = None
    ssl_context: Optional[ssl.SSLContext] = None

    def __post_init__(self) -> None:
        if self.verify is not None:
            _set(self, "verify", check_verify("verify", self.verify))
        _set(self, "cert", check_cert("cert", self.cert))
        if self.ssl_context is not None and not isinstance(self.ssl_context, ssl.SSLContext):
            raise TypeError(
                "ssl_context must be an ssl.SSLContext or None, "
                f"got {type(self.ssl_context).__name__}"
            )


@dataclass(frozen=True)
class Policy:
    """Everything the pipeline needs to run one request to one host.

    Attributes:
        retries: Retries, backoff, Retry-After and idempotency keys.
        timeouts: Connect, read and total timeouts.
        rate_limit: The per-host client rate limit, or None (off).
        breaker: The per-host circuit breaker, or None (off).
        budget: The per-host retry budget, or None (retries limited by the policy only).
        signals: Server-advised quotas and adaptive throttling.
        tls: An endpoint's TLS overrides.
        scope: ``""`` for the host's own limiter and breaker; an endpoint pattern when
            that endpoint has its own.
    """

    retries: RetryConfig = field(default_factory=RetryConfig)
    timeouts: TimeoutConfig = field(default_factory=TimeoutConfig)
    rate_limit: Optional[RateLimitConfig] = None
    breaker: Optional[BreakerConfig] = field(default_factory=BreakerConfig)
    budget: Optional[BudgetConfig] = field(default_factory=BudgetConfig)
    signals: SignalsConfig = field(default_factory=SignalsConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    scope: str = ""

    def __post_init__(self) -> None:
        for name, kind, optional in (
            ("retries", RetryConfig, False),
            ("timeouts", TimeoutConfig, False),
            ("rate_limit", RateLimitConfig, True),
            ("breaker", BreakerConfig, True),
            ("budget", BudgetConfig, True),
            ("signals", SignalsConfig, False),
            ("tls", TLSConfig, False),
        ):
            value = getattr(self, name)
            if not (isinstance(value, kind) or (optional and value is None)):
                wanted = f"a {kind.__name__}" + (" or None" if optional else "")
                raise TypeError(f"Policy.{name} must be {wanted}, got {type(value).__name__}")


#: The policy keywords of the manager (and of an endpoint config), and their defaults.
POLICY_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "max_retries": 3,
        "backoff_factor": 0.3,
        "retry": None,
        "retry_after_max": 120,
        "idempotency_keys": False,
        "idempotency_key_header": DEFAULT_IDEMPOTENCY_HEADER,
        "timeout": 30,
        "connect_timeout": None,
        "read_timeout": None,
        "total_timeout": None,
        "rate_limit_requests": None,
        "rate_limit_period": 60,
        "rate_limit_max_wait": None,
        "rate_limit_strategy": "fixed-window",
        "circuit_breaker_failure_threshold": 5,
        "circuit_breaker_recovery_timeout": 60,
        "circuit_breaker_half_open_max_calls": 1,
        "circuit_breaker_failure_rate": 0.5,
        "circuit_breaker_minimum_calls": 20,
        "circuit_breaker_window": 30,
        "circuit_breaker_slow_call_duration": None,
        "retry_budget": 0.2,
        "retry_budget_burst": 10,
        "respect_rate_limit_headers": True,
        "adaptive_throttling": False,
        "adaptive_throttling_k": 2.0,
        "adaptive_throttling_max_probability": 1.0,
        "verify": None,
        "cert": None,
        "ssl_context": None,
    }
)


def _rate_limit(kw: Mapping[str, Any]) -> Optional[RateLimitConfig]:
    fields = (kw["rate_limit_period"], kw["rate_limit_max_wait"], kw["rate_limit_strategy"])
    if kw["rate_limit_requests"] is None:
        period, max_wait, strategy = fields
        RateLimitConfig(1, period, max_wait)  # the others are still validated
        if strategy not in STRATEGIES:
            RateLimitConfig(1, period, max_wait, strategy)
        return None
    return RateLimitConfig(kw["rate_limit_requests"], *fields)


def _breaker(kw: Mapping[str, Any]) -> Optional[BreakerConfig]:
    fields = (
        kw["circuit_breaker_recovery_timeout"],
        kw["circuit_breaker_half_open_max_calls"],
        kw["circuit_breaker_failure_rate"],
        kw["circuit_breaker_minimum_calls"],
        kw["circuit_breaker_window"],
        kw["circuit_breaker_slow_call_duration"],
    )
    threshold = kw["circuit_breaker_failure_threshold"]
    if threshold is None:
        BreakerConfig(1, *fields)  # the others are still validated
        return None
    return BreakerConfig(threshold, *fields)


def _budget(kw: Mapping[str, Any]) -> Optional[BudgetConfig]:
    if kw["retry_budget"] is None:
        BudgetConfig(0.0, kw["retry_budget_burst"])  # the burst is still validated
        return None
    return BudgetConfig(kw["retry_budget"], kw["retry_budget_burst"])


def build_policy(scope: str = "", **keywords: Any) -> Policy:
    """Turn policy keywords (of the manager, or of an endpoint config) into a :class:`Policy`.

    Keywords not given take their default (:data:`POLICY_DEFAULTS`). A part that is off
    (``rate_limit_requests=None``, ``circuit_breaker_failure_threshold=None``,
    ``retry_budget=None``) is None in the policy; its other keywords are still validated,
    so a typo is never silently ignored.

    Args:
        scope: ``""``, or the endpoint pattern whose own limiter and breaker it builds.
        **keywords: Policy keywords (:data:`POLICY_DEFAULTS` names them).

    Returns:
        The validated, immutable policy.

    Raises:
        TypeError: A keyword is unknown or has the wrong type; the message names it.
        ValueError: A keyword is out of range; the message names it and the range.
    """
    unknown = sorted(set(keywords) - POLICY_DEFAULTS.keys())
    if unknown:
        raise TypeError(f"build_policy() got an unexpected keyword argument {unknown[0]!r}")
    kw = {**POLICY_DEFAULTS, **keywords}
    return Policy(
        RetryConfig(
            kw["max_retries"],
            kw["backoff_factor"],
            kw["retry"],
            kw["retry_after_max"],
            kw["idempotency_keys"],
            kw["idempotency_key_header"],
        ),
        TimeoutConfig.from_keywords(
            kw["timeout"], kw["connect_timeout"], kw["read_timeout"], kw["total_timeout"]
        ),
        _rate_limit(kw),
        _breaker(kw),
        _budget(kw),
        SignalsConfig(
            kw["respect_rate_limit_headers"],
            kw["adaptive_throttling"],
            kw["adaptive_throttling_k"],
            kw["rate_limit_max_wait"],
            kw["adaptive_throttling_max_probability"],
        ),
        TLSConfig(kw["verify"], kw["cert"], kw["ssl_context"]),
        scope,
    )
