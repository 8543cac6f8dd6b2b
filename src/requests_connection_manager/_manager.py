"""``ConnectionManager``: a ``requests.Session`` with the resilient pipeline mounted.

The manager validates its keywords once (into the frozen objects of :mod:`.config`),
builds one :class:`~._engine.Engine` (settings, host table, admission, event stream),
owns one :class:`~._session.ManagedSession` with a :class:`~._pipeline.ResilientAdapter`
mounted for ``http://`` and ``https://``, and offers the ``requests`` verbs plus the whole
API of requests-connection-manager 1.0.0 (:class:`~._legacy.LegacyAPI`). Every protection
lives in the adapter and the session, so ``cm.session`` can be handed to third-party code
and still gets all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

from urllib3.util import Timeout as TimeoutSauce

from ._auth import DEFAULT_API_KEY_HEADER
from ._engine import build_engine, keywords_of
from ._legacy import LegacyAPI
from ._session import ManagedSession
from ._validate import CertType, VerifyType
from ._verbs import HTTPVerbs
from .config import DEFAULT_IDEMPOTENCY_HEADER, Policy

if TYPE_CHECKING:
    import ssl
    from types import TracebackType

    import requests
    from requests import Response
    from urllib3.util.retry import Retry

    from ._clock import Clock
    from ._engine import Engine
    from ._pipeline import ResilientAdapter
    from ._prometheus import PrometheusCollector
    from .events import Subscriber

__all__ = ["ConnectionManager"]


class ConnectionManager(LegacyAPI, HTTPVerbs):
    """Connection pooling, retries, rate limiting and circuit breaking for ``requests``.

    Use it like a ``requests.Session``::

        with ConnectionManager(rate_limit_requests=100, rate_limit_period=60) as cm:
            r = cm.get("https://api.example.com/items", params={"page": 1})

    Every keyword is validated here; a bad value raises ``ValueError`` or ``TypeError``
    naming the parameter. The first twenty may be passed by position, in the order of
    requests-connection-manager 1.0.0. The policy keywords become the frozen objects of
    :mod:`requests_connection_manager.config` (``cm.policy``).

    Args:
        pool_connections: Host pools to keep (``HTTPAdapter``), 1 to 10,000.
        pool_maxsize: Connections kept per host pool, 1 to 10,000.
        max_retries: Retries after the first attempt, >= 0. Ignored when ``retry`` is given.
        backoff_factor: Backoff base in seconds, >= 0: retry ``n`` waits a random time in
            ``[0, backoff_factor * 2 ** (n - 1)]`` (full jitter), capped at the policy's
            ``backoff_max``.
        rate_limit_requests: Requests allowed per ``rate_limit_period`` per host; None
            (the default) turns rate limiting off.
        rate_limit_period: The rate-limit window in seconds, > 0.
        circuit_breaker_failure_threshold: Consecutive failed attempts that open a host's
            breaker, >= 1; None turns the breaker off.
        circuit_breaker_recovery_timeout: Seconds a breaker stays open before probing, > 0.
        timeout: Connect and read timeout in seconds (a number, a ``(connect, read)``
            pair, or None for none).
        endpoint_configs: Pattern to config dict. A pattern matches a request's host
            (``api.example.com``, ``*.example.com``), optionally with a scheme, port and
            path prefix (``https://api.example.com:8443/v2``); the most specific one wins.
            A config may set any policy, TLS or credential keyword of this constructor.
        api_key: Sent in the ``api_key_header`` header to the origin each call asks for.
        api_key_header: The API key's header name.
        bearer_token: Sent as ``Authorization: Bearer <token>``.
        oauth2_token: Sent as ``Authorization: Bearer <token>``.
        basic_auth: ``(username, password)`` for HTTP basic auth.
        verify: TLS verification: True, False, or the path of a CA bundle.
        cert: Client certificate: a PEM path or a ``(cert, key)`` pair of paths.
        connect_timeout: Overrides the connect part of ``timeout``.
        read_timeout: Overrides the read part of ``timeout``.
        ssl_context: An ``ssl.SSLContext`` used for HTTPS connections.
        pool_block: Wait for a free pooled connection instead of opening an extra one
            (never past ``total_timeout`` or :meth:`close`).
        retry: A ``urllib3.util.Retry`` used as the retry policy instead of
            ``max_retries``/``backoff_factor``.
        rate_limit_max_wait: Longest wait for a rate-limit permit: None waits as long as
            needed (still bounded by ``total_timeout``), 0 fails fast.
        rate_limit_strategy: ``"fixed-window"`` (``ratelimit``) or ``"sliding-window"``
            (``limits``' moving window; needs the ``redis`` extra or ``limits``).
        circuit_breaker_half_open_max_calls: Concurrent probes admitted while half-open.
        circuit_breaker_failure_rate: The breaker also opens when this share of attempts
            failed over ``circuit_breaker_window`` seconds (at least
            ``circuit_breaker_minimum_calls`` of them), in ``(0, 1]``; None: no ratio rule.
        circuit_breaker_minimum_calls: Attempts in the window before the ratio is judged.
        circuit_breaker_window: The ratio's sliding window in seconds.
        circuit_breaker_slow_call_duration: An attempt slower than this (seconds) counts as
            failed for the ratio; None: speed does not count.
        total_timeout: Deadline in seconds for a whole call: attempts, waits, backoff and
            (unless streaming) the body. None: no deadline.
        retry_after_max: Longest ``Retry-After`` (or server quota reset) honoured, in
            seconds; a longer one raises ``RateLimitExceeded`` at once.
        retry_budget: Per host, the share of first attempts that may be retried in the
            long run, in ``[0, 1]`` (a token bucket: each first attempt adds this much, each
            retry after a failure takes one); None: retries are limited only by the policy.
        retry_budget_burst: Per host, retries allowed back to back after a healthy
            period (the bucket size), >= 0.
        respect_rate_limit_headers: Pace each host to the quota its ``RateLimit`` /
            ``X-RateLimit-*`` headers advertise (never send more than remains; wait for the
            reset at 0).
        adaptive_throttling: Reject attempts locally, without traffic, with the probability
            of Google SRE's client-side throttling while a host refuses many of them.
        adaptive_throttling_k: The multiplier ``K`` of that formula, >= 1.
        adaptive_throttling_max_probability: The highest share of attempts the throttle
            rejects, in ``(0, 1]``; below 1 (Envoy's admission control uses 0.8) a host
            that recovers gets traffic back sooner, at the price of always sending it a
            share of the demand.
        idempotency_keys: Send an ``Idempotency-Key`` (one per call, the same on every
            attempt and redirect hop) with POST and PATCH, and retry them like PUT.
        idempotency_key_header: The header the key is sent in.
        redis_url: ``redis://...``, ``redis+cluster://h1:p1,h2:p2`` or
            ``redis+sentinel://h:p[,h2:p2]/service``: share rate limits, breaker state and
            server-asked pauses with every process using the same Redis and
            ``redis_prefix`` (needs the ``redis`` extra). Redis unreachable or slow: calls
            go on with local state, one warning per outage. A refused password or ACL:
            ``ValueError``.
        redis_client: A ``redis.Redis``, ``redis.cluster.RedisCluster`` or
            ``Sentinel(...).master_for(...)`` client to use instead of ``redis_url``.
        redis_prefix: Namespace of every Redis key this manager uses.
        clock: A clock for waits and deadlines (tests); the system clock by default.
        on_event: Called with every event of the manager (:mod:`.events`).
        tracer_provider: The OpenTelemetry tracer provider of the spans; None: the global
            one (a no-op until the application configures an SDK).
        meter_provider: The OpenTelemetry meter provider of the metrics; None: the global
            one.
        telemetry: Publish OpenTelemetry spans and metrics (see ``docs/observability.md``);
            without ``opentelemetry-api`` installed (the ``otel`` extra) there are none.

    Raises:
        TypeError: A keyword has the wrong type.
        ValueError: A keyword is out of range.
    """

    _session: ManagedSession

    @keywords_of
    def __init__(
        self,
        pool_connections: int = 10,
        pool_maxsize: int = 10,
        max_retries: int = 3,
        backoff_factor: float = 0.3,
        rate_limit_requests: Optional[int] = None,
        rate_limit_period: float = 60,
        circuit_breaker_failure_threshold: Optional[int] = 5,
        circuit_breaker_recovery_timeout: float = 60,
        timeout: Union[float, tuple[Optional[float], Optional[float]], None] = 30,
        endpoint_configs: Optional[dict[str, dict[str, Any]]] = None,
        api_key: Optional[str] = None,
        api_key_header: str = DEFAULT_API_KEY_HEADER,
        bearer_token: Optional[str] = None,
        oauth2_token: Optional[str] = None,
        basic_auth: Optional[tuple[str, str]] = None,
        verify: VerifyType = True,
        cert: Optional[CertType] = None,
        connect_timeout: Optional[float] = None,
        read_timeout: Optional[float] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        *,
        pool_block: bool = False,
        retry: Optional[Retry] = None,
        rate_limit_max_wait: Optional[float] = None,
        rate_limit_strategy: str = "fixed-window",
        circuit_breaker_half_open_max_calls: int = 1,
        circuit_breaker_failure_rate: Optional[float] = 0.5,
        circuit_breaker_minimum_calls: int = 20,
        circuit_breaker_window: float = 30,
        circuit_breaker_slow_call_duration: Optional[float] = None,
        total_timeout: Optional[float] = None,
        retry_after_max: float = 120,
        retry_budget: Optional[float] = 0.2,
        retry_budget_burst: int = 10,
        respect_rate_limit_headers: bool = True,
        adaptive_throttling: bool = False,
        adaptive_throttling_k: float = 2.0,
        adaptive_throttling_max_probability: float = 1.0,
        idempotency_keys: bool = False,
        idempotency_key_header: str = DEFAULT_IDEMPOTENCY_HEADER,
        redis_url: Optional[str] = None,
        redis_client: Optional[Any] = None,
        redis_prefix: str = "rcm",
        clock: Optional[Clock] = None,
        on_event: Optional[Subscriber] = None,
        tracer_provider: Optional[Any] = None,
        meter_provider: Optional[Any] = None,
        telemetry: bool = True,
    ) -> None:
        given = dict(locals())
        del given["self"]
        self._engine, pools, (verify, cert) = build_engine(given)
        self._session = ManagedSession(engine=self._engine, owns_engine=True, **pools)
        self._session.verify = verify
        self._session.cert = cert

    # ------------------------------------------------------------------ session surface
    @property
    def session(self) -> requests.Session:
        """The ``requests.Session`` this manager owns; calls through it are protected too."""
        return self._session

    @property
    def adapter(self) -> ResilientAdapter:
        """The transport adapter running the pipeline; mount it on a session of your own."""
        adapter = self._session._rcm_adapter
        assert adapter is not None
        return adapter

    @property
    def policy(self) -> Policy:
        """The global policy (frozen): what the keywords became."""
        return self._engine.settings.policy

    def policy_for(self, url: str) -> Policy:
        """The policy a request to ``url`` runs with (its endpoint's, or the global one)."""
        return self._engine.settings.policy_for_url(url)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._engine.closed.is_set()

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(event)`` for every event from now on (see :mod:`.events`)."""
        self._engine.bus.subscribe(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop calling ``subscriber``; one that is not subscribed is ignored."""
        self._engine.bus.unsubscribe(subscriber)

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        """Send a request through the pipeline; the arguments are those of ``requests``.

        ``timeout=`` overrides the manager's timeouts for this call; ``timeout=None``
        explicitly means no connect/read timeout (``total_timeout`` still applies).

        Returns:
            The response (or an error hook's fallback response).

        Raises:
            ConnectionManagerError: Every failure, also an instance of the matching
                requests exception.
        """
        if "timeout" in kwargs and kwargs["timeout"] is None:
            kwargs["timeout"] = TimeoutSauce(connect=None, read=None)
        return self._session.request(method=method, url=url, **kwargs)

    # ------------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close pooled connections, wake waiting calls and refuse new ones. Idempotent."""
        self._engine.closed.set()
        self._session.close()
        self._engine.close()

    def __enter__(self) -> ConnectionManager:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<ConnectionManager {state} hosts={len(self._engine.hosts.states())}>"

    # ---------------------------------------------------------------------------- stats
    def get_stats(self) -> dict[str, Any]:
        """Return a snapshot of the manager's counters and settings.

        The keys of requests-connection-manager 1.0.0 are kept, with true values, and
        ``hosts`` maps each tracked host key to its counters: ``requests``, ``attempts``,
        ``retries``, ``failures``, ``rejected_open``, ``rejected_local``, ``throttled``,
        ``throttle_wait_seconds``, ``breaker_opened``, ``retries_denied`` (by the retry
        budget), ``paused``, and its state: ``breaker_state``, ``paused_for``,
        ``quota_remaining`` (what is left of the quota the server advertised, or None),
        ``throttle_probability`` (with adaptive throttling). A host whose endpoint config
        has its own limiter and breaker is listed as ``"<host key> [<pattern>]"``.

        Returns:
            A new dict; changing it changes nothing.
        """
        legacy = {
            "rate_limit_requests": self.rate_limit_requests,
            "rate_limit_period": self.rate_limit_period,
            "timeout": self.timeout,
            "requests_made": self._session.calls,
            "ssl_verification": self._session.verify,
            "client_certificate_configured": self._session.cert is not None,
        }
        return _manager_stats(self._engine, legacy)

    def prometheus_collector(self, prefix: str = "rcm") -> PrometheusCollector:
        """A ``prometheus_client`` collector of :meth:`get_stats`, per host (a label).

        Register it once: ``REGISTRY.register(cm.prometheus_collector())``. Each scrape
        reads the stats once; the metrics are listed in ``docs/observability.md``.

        Args:
            prefix: The metric name prefix; give each manager sharing a registry its own.

        Returns:
            The collector (it holds this manager weakly).

        Raises:
            ImportError: ``prometheus_client`` is not installed (the ``prometheus`` extra).
            ValueError: ``prefix`` is not a valid metric name.
        """
        from ._prometheus import PrometheusCollector

        return PrometheusCollector(self, prefix)


def _manager_stats(engine: Engine, legacy: dict[str, Any]) -> dict[str, Any]:
    """Build ``get_stats()``: 1.0.0's keys (``legacy`` and the breaker summary), the hosts.

    Args:
        engine: The manager's engine.
        legacy: The 1.0.0 keys the manager knows (session settings, rate limit, calls).

    Returns:
        A new dict.
    """
    now = engine.clock.monotonic()
    states = engine.hosts.states()
    breakers = [s.breaker for s in states if s.breaker is not None]
    names = {b.state for b in breakers}
    policy = engine.settings.policy
    if policy.breaker is None and not breakers:
        overall = "disabled"
    elif "open" in names:
        overall = "open"
    elif "half-open" in names:
        overall = "half-open"
    else:
        overall = "closed"
    shared = engine.shared
    return {
        "circuit_breaker_state": overall,
        "circuit_breaker_failure_count": sum(b.failure_count for b in breakers),
        **legacy,
        "connect_timeout": policy.timeouts.connect,
        "read_timeout": policy.timeouts.read,
        "total_timeout": policy.timeouts.total,
        "ssl_context_configured": policy.tls.ssl_context is not None,
        "registered_hooks": engine.plugins.list_hooks(),
        "shared_state": {"enabled": False} if shared is None else shared.status(),
        "hosts": {s.key: s.snapshot(now) for s in states},
    }
