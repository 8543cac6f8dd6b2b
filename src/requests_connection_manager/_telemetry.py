"""OpenTelemetry traces and metrics: a subscriber of the event stream.

Needs only ``opentelemetry-api`` (the ``otel`` extra); the SDK, its exporters and its
sampling are the application's choice. Without the API installed, or with
``telemetry=False``, nothing is subscribed and nothing is imported. With the API and no
SDK configured, the global providers are no-ops and a call costs a few microseconds more
(see ``docs/observability.md``).

**Traces** follow the OpenTelemetry HTTP client semantic conventions. One request (one
redirect hop of a call) is an ``INTERNAL`` span named ``rcm GET``, a child of whatever
span is current when the call is made; each physical attempt is a ``CLIENT`` span named
``GET`` under it::

    rcm GET                    INTERNAL  RequestStarted .. RequestFinished
    |- GET                     CLIENT    attempt 1: http.response.status_code=503
    |  (event rcm.retry, event rcm.wait reason=backoff)
    |- GET                     CLIENT    attempt 2: http.request.resend_count=1
    '- GET                     CLIENT    attempt 3: http.request.resend_count=2, 200

The W3C trace context of each attempt span is injected into that attempt's headers
(through ``AttemptStarted.headers`` and the global propagator), so the server sees the
attempt as its parent. Waits, retries, refusals, pauses and breaker transitions are span
events of the request span (of the attempt span when they happen during an attempt). A
call refused before any attempt (an open breaker, a fail-fast limiter) has a request span
with ``rcm.refusal.reason`` and no attempt span. The request span and then the attempt
span are the current span while the pipeline runs them, so log records and other
instrumentation of that thread see them.

Spans start and end in the thread that publishes the events (events are synchronous).
The state kept per request is keyed by ``request_id``, bounded
(:data:`MAX_OPEN_REQUESTS`), and dropped on ``RequestFinished``; a request whose
``RequestFinished`` never comes is ended when the bound pushes it out, or when the same
thread starts its next request.

**Metrics** (one instrument set per meter provider, shared by every manager):

=============================== ================ ======== ====================================
name                            instrument       unit     attributes
=============================== ================ ======== ====================================
``http.client.request.duration`` histogram       s        http.request.method, server.address,
                                                          server.port, url.scheme,
                                                          http.response.status_code, error.type
``rcm.request.duration``        histogram        s        http.request.method, rcm.host,
                                                          http.response.status_code,
                                                          error.type, rcm.retried
``rcm.retries``                 counter          {retry}  rcm.host, error.type
``rcm.refusals``                counter          {refusal} rcm.host, rcm.refusal.reason
``rcm.wait.duration``           histogram        s        rcm.host, rcm.wait.reason
``rcm.host.pauses``             counter          {pause}  rcm.host, rcm.pause.source
``rcm.breaker.state``           observable gauge {breaker} rcm.host, rcm.breaker.state
``rcm.breaker.transitions``     counter          {transition} rcm.host, rcm.breaker.state
``rcm.shared_state.healthy``    observable gauge 1        rcm.shared_state.prefix
``rcm.shared_state.outages``    counter          {outage} error.type
=============================== ================ ======== ====================================

No attribute carries a secret: URLs come redacted in the events, no header is recorded,
and host keys hold no credentials.
"""

from __future__ import annotations

import functools
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

from . import events

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opentelemetry.metrics import CallbackOptions, Meter, Observation
    from opentelemetry.trace import Span, Tracer

    from ._hosts import HostRegistry
    from ._shared import SharedLink

__all__ = [
    "HTTP_DURATION_BUCKETS",
    "MAX_OPEN_REQUESTS",
    "SCOPE",
    "Telemetry",
    "check_providers",
    "otel_available",
]

#: The instrumentation scope of every span and instrument.
SCOPE = "requests_connection_manager"
#: The semantic conventions the ``http.*``, ``server.*``, ``url.*`` attributes follow.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"
#: Requests whose ``RequestFinished`` has not come yet, kept at most (per manager).
MAX_OPEN_REQUESTS = 4096
#: Bucket boundaries advised for ``http.client.request.duration`` (semantic conventions).
HTTP_DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
#: Bucket boundaries advised for waits and whole requests (waits may last minutes).
WAIT_BUCKETS = (*HTTP_DURATION_BUCKETS, 30.0, 60.0, 120.0, 300.0)
#: The breaker states the gauge reports (one series each, 1 for the current state).
BREAKER_STATES = ("closed", "open", "half-open")
# Methods the semantic conventions know; any other is reported as "_OTHER".
_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Events that concern only a request already kept.
_PER_REQUEST = frozenset({events.AttemptStarted, events.AttemptFinished, events.RequestFinished})


class _Api(NamedTuple):
    """The parts of ``opentelemetry-api`` this module uses, imported once."""

    trace: Any
    metrics: Any
    context: Any
    propagate: Any
    suppress_key: Any
    metrics_state: Any


@functools.cache
def _api() -> Optional[_Api]:
    """Import ``opentelemetry-api`` once; None when it is not installed."""
    try:
        from opentelemetry import context, metrics, propagate, trace
    except ImportError:
        return None
    metrics_state: Any
    try:  # where the API keeps the global meter provider (read without a function call)
        from opentelemetry.metrics import _internal as metrics_state
    except ImportError:  # pragma: no cover - another layout of the API
        metrics_state = None
    return _Api(
        trace,
        metrics,
        context,
        propagate,
        getattr(context, "_SUPPRESS_INSTRUMENTATION_KEY", None),
        metrics_state,
    )


def otel_available() -> bool:
    """Tell whether ``opentelemetry-api`` can be imported."""
    return _api() is not None


def check_providers(tracer_provider: Any, meter_provider: Any) -> None:
    """Refuse a provider that is not one (checked whether or not the API is installed).

    Raises:
        TypeError: ``tracer_provider`` has no ``get_tracer()`` or ``meter_provider`` no
            ``get_meter()``.
    """
    for name, value, method in (
        ("tracer_provider", tracer_provider, "get_tracer"),
        ("meter_provider", meter_provider, "get_meter"),
    ):
        if value is not None and (
            isinstance(value, type) or not callable(getattr(value, method, None))
        ):
            raise TypeError(
                f"{name} must be None (the global provider) or an OpenTelemetry provider "
                f"with {method}(), got {type(value).__name__}"
            )


def _live(provider: Any) -> bool:
    """Tell whether a provider records anything.

    The API's own providers (the proxy that stands in until an SDK is configured, and the
    no-op ones) record nothing; any other (the SDK's, a vendor's) may.
    """
    module: str = type(provider).__module__
    return not module.startswith(("opentelemetry.trace", "opentelemetry.metrics"))


_MISSING = object()


def _global_provider(module: Any, name: str, public: Callable[[], Any]) -> Any:
    """The global provider the API holds, None while none is set (no SDK configured).

    Reads the API's module global (tens of nanoseconds, where the public getter looks up
    an environment variable on every call); falls back to the public getter if the API
    keeps it elsewhere. A provider named by ``OTEL_PYTHON_*_PROVIDER`` is loaded by the
    API when the manager gets its tracer and meter, so it is seen here too.
    """
    provider = getattr(module, name, _MISSING) if module is not None else _MISSING
    if provider is _MISSING:  # pragma: no cover - another layout of the API
        provider = public()
    return provider


# ------------------------------------------------------------------------------ identity
class _Origin(NamedTuple):
    scheme: str
    address: str
    port: int


@functools.lru_cache(maxsize=1024)
def _origin(host_key: str) -> _Origin:
    """``server.address``, ``server.port`` and ``url.scheme`` of a host key.

    A host key is ``scheme://host:port``, plus `` [pattern]`` for an endpoint with its own
    state; IPv6 hosts keep their brackets there and lose them here, as the conventions say.
    """
    scheme, _, rest = host_key.partition("://")
    rest = rest.split(" ", 1)[0]
    host, colon, port = rest.rpartition(":")
    if not colon or not port.isdigit():
        host, port = rest, str(_DEFAULT_PORTS.get(scheme, 0))
    return _Origin(scheme, host.strip("[]"), int(port))


def _method(method: str) -> tuple[str, Optional[str]]:
    """``(http.request.method, http.request.method_original or None)``."""
    if method in _KNOWN_METHODS:
        return method, None
    return "_OTHER", method


def _error_type(status: Optional[int], error: Optional[str]) -> Optional[str]:
    """``error.type``: the error's class name, or the status code of a 4xx/5xx answer."""
    if error:
        return error
    if status is not None and status >= 400:
        return str(status)
    return None


def _outcome_type(outcome: str) -> str:
    """``error.type`` of a ``RetryScheduled.outcome`` (``"status 503"`` -> ``"503"``)."""
    return outcome[7:] if outcome.startswith("status ") else outcome


# ---------------------------------------------------------------------------- metrics
class _Instruments:
    """The instruments of one meter provider, and the managers its gauges observe."""

    def __init__(self, meter: Meter) -> None:
        self.http_duration = _histogram(
            meter,
            "http.client.request.duration",
            "Duration of HTTP client requests (one per attempt on the wire).",
            HTTP_DURATION_BUCKETS,
        )
        self.request_duration = _histogram(
            meter,
            "rcm.request.duration",
            "Duration of requests through the pipeline: attempts, waits, backoff.",
            WAIT_BUCKETS,
        )
        self.retries = meter.create_counter(
            "rcm.retries", unit="{retry}", description="Retries scheduled after a failed attempt."
        )
        self.refusals = meter.create_counter(
            "rcm.refusals",
            unit="{refusal}",
            description="Requests or retries refused without traffic, by reason.",
        )
        self.waits = _histogram(
            meter,
            "rcm.wait.duration",
            "Time requests waited before an attempt, by reason.",
            WAIT_BUCKETS,
        )
        self.pauses = meter.create_counter(
            "rcm.host.pauses",
            unit="{pause}",
            description="Pauses of a host for every caller (Retry-After, quota, slow-down).",
        )
        self.transitions = meter.create_counter(
            "rcm.breaker.transitions",
            unit="{transition}",
            description="Circuit breaker state changes, by the new state.",
        )
        self.outages = meter.create_counter(
            "rcm.shared_state.outages",
            unit="{outage}",
            description="Times shared state (Redis) became unusable and calls went local.",
        )
        self._lock = threading.Lock()
        self._sources: weakref.WeakSet[Telemetry] = weakref.WeakSet()
        meter.create_observable_gauge(
            "rcm.breaker.state",
            callbacks=[self._breakers],
            unit="{breaker}",
            description="Circuit breakers per host in each state (1 for the current one).",
        )
        meter.create_observable_gauge(
            "rcm.shared_state.healthy",
            callbacks=[self._shared],
            unit="1",
            description="1 while shared state (Redis) is usable, 0 while calls go local.",
        )

    def add(self, source: Telemetry) -> None:
        """Have the gauges observe ``source``'s hosts and shared state (while it lives)."""
        with self._lock:
            self._sources.add(source)

    def _live(self) -> list[Telemetry]:
        with self._lock:
            return [s for s in self._sources if not s.closed.is_set()]

    def _breakers(self, options: CallbackOptions) -> Iterator[Observation]:
        observation = _observation()
        counts: dict[tuple[str, str], int] = {}
        for source in self._live():
            for state in source.hosts.states():
                breaker = state.breaker
                if breaker is None:
                    continue
                current = breaker.state
                for name in BREAKER_STATES:
                    key = (state.key, name)
                    counts[key] = counts.get(key, 0) + (current == name)
        for (host, name), value in counts.items():
            yield observation(value, {"rcm.host": host, "rcm.breaker.state": name})

    def _shared(self, options: CallbackOptions) -> Iterator[Observation]:
        observation = _observation()
        health: dict[str, int] = {}
        for source in self._live():
            shared = source.shared
            if shared is not None:
                status = shared.status()
                prefix = str(status["prefix"])
                health[prefix] = min(health.get(prefix, 1), int(bool(status["healthy"])))
        for prefix, value in health.items():
            yield observation(value, {"rcm.shared_state.prefix": prefix})

    def reinit_after_fork(self) -> None:
        """A fresh lock in a forked child."""
        self._lock = threading.Lock()


def _histogram(meter: Meter, name: str, description: str, buckets: tuple[float, ...]) -> Any:
    """A histogram in seconds with advised bucket boundaries (where the API can advise)."""
    try:
        return meter.create_histogram(
            name, unit="s", description=description, explicit_bucket_boundaries_advisory=buckets
        )
    except TypeError:  # opentelemetry-api < 1.30: no advice, the SDK's default buckets
        return meter.create_histogram(name, unit="s", description=description)


def _observation() -> Callable[..., Observation]:
    api = _api()
    assert api is not None
    observation: Callable[..., Observation] = api.metrics.Observation
    return observation


_GLOBAL = object()
_instrument_lock = threading.Lock()
_by_provider: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_global_instruments: list[_Instruments] = []


def _instruments_for(meter_provider: Any) -> _Instruments:
    """The instruments of ``meter_provider`` (None: the global one), built once per provider.

    Instruments are shared by every manager of a provider, so that two managers never
    register the same instrument twice (the SDK would keep only the first one's callbacks).
    """
    api = _api()
    assert api is not None
    from . import __version__

    def build() -> _Instruments:
        if meter_provider is None:
            meter = api.metrics.get_meter(SCOPE, __version__, schema_url=SCHEMA_URL)
        else:
            meter = meter_provider.get_meter(SCOPE, __version__, schema_url=SCHEMA_URL)
        instruments = _Instruments(meter)
        from . import _forksafe

        _forksafe.register(instruments)
        return instruments

    with _instrument_lock:
        if meter_provider is None:
            if not _global_instruments:
                _global_instruments.append(build())
            return _global_instruments[0]
        try:
            found = _by_provider.get(meter_provider)
        except TypeError:  # a provider that cannot be weakly referenced or hashed
            return build()
        if found is None:
            found = _by_provider[meter_provider] = build()
        return found


# ----------------------------------------------------------------------------- traces
class _Request:
    """What is kept of one request between its ``RequestStarted`` and ``RequestFinished``."""

    __slots__ = (
        "attempt",
        "context",
        "host",
        "labels",
        "method",
        "method_original",
        "origin",
        "recording",
        "span",
        "url",
    )

    def __init__(self, event: events.RequestStarted) -> None:
        self.host = event.host
        self.url = event.url
        self.method, self.method_original = _method(event.method)
        self.origin = _origin(event.host)
        self.labels: dict[str, Any] = {
            "http.request.method": self.method,
            "server.address": self.origin.address,
            "server.port": self.origin.port,
            "url.scheme": self.origin.scheme,
        }
        self.span: Optional[Span] = None
        self.context: Any = None
        self.recording = False
        self.attempt: Optional[Span] = None

    def span_attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "http.request.method": self.method,
            "url.full": self.url,
            "server.address": self.origin.address,
            "server.port": self.origin.port,
        }
        if self.method_original is not None:
            attributes["http.request.method_original"] = self.method_original
        return attributes

    def span_name(self) -> str:
        return "HTTP" if self.method == "_OTHER" else self.method


class _ThreadState(threading.local):
    """The request this thread is running, and the contexts it attached."""

    def __init__(self) -> None:
        self.request_id: Optional[int] = None
        self.request: Optional[_Request] = None
        self.tokens: list[Any] = []


class _OpenRequests:
    """The requests kept between their ``RequestStarted`` and ``RequestFinished``.

    At most :data:`MAX_OPEN_REQUESTS` are kept; past that, the oldest is ended and
    dropped. Each thread also knows the request it runs and the contexts it attached for
    it, so that the request's end (or, if that never comes, the thread's next request)
    detaches them.

    Attributes:
        by_id: The requests kept, oldest first.
        thread: This thread's request and attached contexts.

    Args:
        context: The API's ``opentelemetry.context`` module.
    """

    def __init__(self, context: Any) -> None:
        self._context = context
        self._lock = threading.Lock()
        self.by_id: dict[int, _Request] = {}
        self.thread = _ThreadState()

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, request_id: Optional[int]) -> Optional[_Request]:
        """The request ``request_id`` if kept; None: the request this thread runs."""
        if request_id is None:
            return self.thread.request
        return self.by_id.get(request_id)

    def run(self, request_id: int, record: _Request) -> None:
        """Make ``record`` the request this thread runs."""
        self.thread.request_id = request_id
        self.thread.request = record

    def keep(self, request_id: int, record: _Request) -> None:
        """Keep ``record`` until its end; end and drop the oldest past the bound."""
        evicted: list[_Request] = []
        with self._lock:
            self.by_id[request_id] = record
            while len(self.by_id) > MAX_OPEN_REQUESTS:
                oldest = next(iter(self.by_id))
                evicted.append(self.by_id.pop(oldest))
        for stale in evicted:
            _end_stale(stale, "rcm.telemetry.evicted")

    def finish(self, request_id: int) -> Optional[_Request]:
        """Drop request ``request_id`` (and this thread's contexts, if it runs it).

        Returns:
            The request, if it was kept.
        """
        record = None
        if request_id in self.by_id:
            with self._lock:
                record = self.by_id.pop(request_id, None)
        thread = self.thread
        if thread.request_id == request_id:
            self.detach()
            thread.request_id = thread.request = None
        return record

    def abandon(self) -> None:
        """The previous request of this thread never finished: close what it left open."""
        self.detach()
        thread = self.thread
        if thread.request_id is not None:
            with self._lock:
                stale = self.by_id.pop(thread.request_id, None)
            if stale is not None:
                _end_stale(stale, "rcm.telemetry.unfinished")
        thread.request_id = thread.request = None

    def attach(self, request_id: int, context: Any) -> None:
        """Make ``context`` current in this thread, if it runs request ``request_id``."""
        thread = self.thread
        if thread.request_id == request_id:
            thread.tokens.append(self._context.attach(context))

    def detach(self, keep: int = 0) -> None:
        """Detach the contexts this thread attached, down to ``keep``."""
        tokens = self.thread.tokens
        while len(tokens) > keep:
            self._context.detach(tokens.pop())

    def detach_attempt(self, record: _Request) -> None:
        """Detach the context of ``record``'s attempt, if this thread runs ``record``."""
        if self.thread.request is record and len(self.thread.tokens) > 1:
            self.detach(keep=1)

    def reinit_after_fork(self) -> None:
        """A fresh lock, no request kept (their spans stay in the parent)."""
        self._lock = threading.Lock()
        self.by_id = {}
        self.thread = _ThreadState()


def _end_stale(record: _Request, reason: str) -> None:
    """End the spans of a request whose ``RequestFinished`` never came."""
    for span in (record.attempt, record.span):
        if span is not None:
            span.set_attribute("error.type", reason)
            span.end()
    record.attempt = record.span = None


def _with_outcome(
    attributes: dict[str, Any], status: Optional[int], error_type: Optional[str]
) -> dict[str, Any]:
    """``attributes`` with ``http.response.status_code`` and ``error.type`` where known.

    Returns:
        ``attributes`` itself when there is nothing to add, else a copy with them added.
    """
    if status is None and error_type is None:
        return attributes
    attributes = dict(attributes)
    if status is not None:
        attributes["http.response.status_code"] = status
    if error_type is not None:
        attributes["error.type"] = error_type
    return attributes


# ---------------------------------------------------------------------- the resilience story
class _ResilienceEvents:
    """Records waits, retries, refusals, host pauses, breaker and shared-state changes.

    Each is counted (or timed) in its instrument, and added as a span event to its
    request's span (to the attempt's, when an attempt is running).

    Args:
        instruments: The instruments of the meter provider.
        requests: The requests kept, whose spans get the span events.
    """

    def __init__(self, instruments: _Instruments, requests: _OpenRequests) -> None:
        self._instruments = instruments
        self._requests = requests

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        """The handler of each event this records."""
        return {
            events.RetryScheduled: self._retry_scheduled,
            events.RetryDenied: self._retry_denied,
            events.Waited: self._waited,
            events.Refused: self._refused,
            events.HostPaused: self._host_paused,
            events.BreakerStateChanged: self._breaker_changed,
            events.SharedStateChanged: self._shared_changed,
        }

    def _add(self, request_id: Optional[int], name: str, attributes: dict[str, Any]) -> None:
        """Add a span event to the request's span, or to the attempt running now."""
        record = self._requests.get(request_id)
        if record is None or not record.recording:
            return
        span = record.attempt if record.attempt is not None else record.span
        if span is not None:
            span.add_event(name, attributes)

    def _retry_scheduled(self, event: events.RetryScheduled) -> None:
        error_type = _outcome_type(event.outcome)
        self._instruments.retries.add(1, {"rcm.host": event.host, "error.type": error_type})
        self._add(
            event.request_id,
            "rcm.retry",
            {"rcm.attempt": event.attempt, "error.type": error_type, "rcm.wait": event.wait},
        )

    def _retry_denied(self, event: events.RetryDenied) -> None:
        reason = "retry_budget"
        self._instruments.refusals.add(1, {"rcm.host": event.host, "rcm.refusal.reason": reason})
        self._add(
            event.request_id,
            "rcm.refused",
            {"rcm.refusal.reason": reason, "rcm.attempt": event.attempt},
        )

    def _waited(self, event: events.Waited) -> None:
        self._instruments.waits.record(
            event.seconds, {"rcm.host": event.host, "rcm.wait.reason": event.reason}
        )
        self._add(
            event.request_id,
            "rcm.wait",
            {"rcm.wait.reason": event.reason, "rcm.wait.duration": event.seconds},
        )

    def _refused(self, event: events.Refused) -> None:
        self._instruments.refusals.add(
            1, {"rcm.host": event.host, "rcm.refusal.reason": event.reason}
        )
        attributes: dict[str, Any] = {"rcm.refusal.reason": event.reason}
        if event.retry_after is not None:
            attributes["rcm.refusal.retry_after"] = event.retry_after
        self._add(event.request_id, "rcm.refused", attributes)
        record = self._requests.by_id.get(event.request_id)
        if record is not None and record.recording and record.span is not None:
            record.span.set_attribute("rcm.refusal.reason", event.reason)

    def _host_paused(self, event: events.HostPaused) -> None:
        self._instruments.pauses.add(1, {"rcm.host": event.host, "rcm.pause.source": event.source})
        self._add(
            None,
            "rcm.host_paused",
            {"rcm.pause.source": event.source, "rcm.pause.duration": event.seconds},
        )

    def _breaker_changed(self, event: events.BreakerStateChanged) -> None:
        if not event.old:
            return  # a new breaker, not a transition
        self._instruments.transitions.add(
            1, {"rcm.host": event.host, "rcm.breaker.state": event.new}
        )
        self._add(
            None,
            "rcm.breaker",
            {
                "rcm.host": event.host,
                "rcm.breaker.previous_state": event.old,
                "rcm.breaker.state": event.new,
            },
        )

    def _shared_changed(self, event: events.SharedStateChanged) -> None:
        if not event.healthy:
            self._instruments.outages.add(1, {"error.type": event.cause or "unknown"})
        self._add(None, "rcm.shared_state", {"rcm.shared_state.healthy": event.healthy})


# ------------------------------------------------------------------- anyone listening?
class _Listeners:
    """Tells, as a request starts, whether its spans and metrics go anywhere.

    With the global providers and no SDK configured, they are the API's no-ops: spans are
    then only worth starting to pass a current trace on to the server, and metrics not
    worth recording. A provider given to the manager is always used.

    Args:
        api: The imported API.
        global_tracer: The manager's tracer belongs to the global provider.
        global_meter: The manager's instruments belong to the global provider.
    """

    def __init__(self, api: _Api, global_tracer: bool, global_meter: bool) -> None:
        self._api = api
        self._global_tracer = global_tracer
        self._global_meter = global_meter

    def none(self) -> bool:
        """Tell, at once, that no SDK is configured and there is no trace to pass on."""
        api = self._api
        return (
            self._global_tracer
            and self._global_meter
            and getattr(api.trace, "_TRACER_PROVIDER", _MISSING) is None
            and getattr(api.metrics_state, "_METER_PROVIDER", _MISSING) is None
            and not api.context.get_current()
        )

    def want_spans(self) -> bool:
        """Tell whether spans are worth starting: an SDK, or a trace to propagate.

        Never while instrumentation is suppressed in the current context.
        """
        api = self._api
        if self._global_tracer:
            trace = api.trace
            provider = _global_provider(trace, "_TRACER_PROVIDER", trace.get_tracer_provider)
            if provider is None or not _live(provider):
                # No SDK: spans are no-ops, but a current trace (from an incoming request)
                # still has to reach the server. An empty context has none.
                current = api.context.get_current()
                if not (current and trace.get_current_span(current).get_span_context().is_valid):
                    return False
        suppressed = api.suppress_key
        return not (suppressed is not None and api.context.get_value(suppressed))

    def want_metrics(self) -> bool:
        """Tell whether per-request metrics go anywhere."""
        if not self._global_meter:
            return True
        api = self._api
        provider = _global_provider(
            api.metrics_state, "_METER_PROVIDER", api.metrics.get_meter_provider
        )
        return provider is not None and _live(provider)


# ------------------------------------------------------------------------- the subscriber
class Telemetry:
    """Turns the events of one manager into spans and metrics (see the module docstring).

    Build it with :meth:`build`, which returns None when there is nothing to do. It keeps
    the request and attempt spans itself; :class:`_Listeners` says whether a request is
    worth them, the requests kept between their start and end are in
    :class:`_OpenRequests`, and the other events go to :class:`_ResilienceEvents`.

    Args:
        api: The imported API.
        tracer: The tracer (the global provider's proxy when none was given).
        instruments: The instruments of the meter provider.
        hosts: The manager's host table (for the breaker gauge).
        closed: Set when the manager closes (its gauges stop reporting).
        shared: The manager's shared-state link, if any (for the health gauge).
        global_tracer: True when ``tracer`` belongs to the global provider.
        global_meter: True when ``instruments`` belong to the global provider.
    """

    def __init__(
        self,
        api: _Api,
        tracer: Tracer,
        instruments: _Instruments,
        hosts: HostRegistry,
        closed: threading.Event,
        shared: Optional[SharedLink],
        global_tracer: bool,
        global_meter: bool,
    ) -> None:
        self._listeners = _Listeners(api, global_tracer, global_meter)
        self._trace = api.trace
        self._context = api.context
        self._inject = api.propagate.inject
        self._tracer = tracer
        self._instruments = instruments
        self.hosts = hosts
        self.closed = closed
        self.shared = shared
        self._requests = _OpenRequests(api.context)
        self._handlers: dict[type, Callable[[Any], None]] = {
            events.RequestStarted: self._request_started,
            events.AttemptStarted: self._attempt_started,
            events.AttemptFinished: self._attempt_finished,
            events.RequestFinished: self._request_finished,
            **_ResilienceEvents(instruments, self._requests).handlers(),
        }
        #: The events this subscriber handles (the bus hands it no other).
        self.event_types = frozenset(self._handlers)
        instruments.add(self)

    @classmethod
    def build(
        cls,
        enabled: bool,
        tracer_provider: Any,
        meter_provider: Any,
        hosts: HostRegistry,
        closed: threading.Event,
        shared: Optional[SharedLink],
    ) -> Optional[Telemetry]:
        """The subscriber of a manager, or None (telemetry off, or no API installed).

        Args:
            enabled: The manager's ``telemetry=``.
            tracer_provider: A tracer provider, or None for the global one.
            meter_provider: A meter provider, or None for the global one.
            hosts: The manager's host table.
            closed: The manager's closed flag.
            shared: The manager's shared-state link, if any.
        """
        if not enabled:
            return None
        api = _api()
        if api is None:
            return None
        from . import __version__

        if tracer_provider is None:
            tracer = api.trace.get_tracer(SCOPE, __version__, schema_url=SCHEMA_URL)
        else:
            tracer = tracer_provider.get_tracer(SCOPE, __version__, schema_url=SCHEMA_URL)
        instruments = _instruments_for(meter_provider)
        return cls(
            api,
            tracer,
            instruments,
            hosts,
            closed,
            shared,
            global_tracer=tracer_provider is None,
            global_meter=meter_provider is None,
        )

    def __call__(self, event: Any) -> None:
        """Handle one event of the stream."""
        kind = type(event)
        if kind in _PER_REQUEST and not self._requests.by_id:
            # Nothing kept (no SDK): the events of a request need nothing. A thread whose
            # request was evicted meanwhile detaches its contexts at its next request.
            return
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(event)

    # --------------------------------------------------------------- request and attempt
    def _request_started(self, event: events.RequestStarted) -> None:
        requests = self._requests
        if requests.thread.request_id is not None:
            requests.abandon()
        listeners = self._listeners
        if listeners.none():
            return  # no SDK configured and no trace to pass on: nothing to do, at once
        traced = listeners.want_spans()
        if not traced and not listeners.want_metrics():
            return  # no SDK: the cheap path, nothing kept
        record = _Request(event)
        requests.run(event.request_id, record)
        if traced:
            span = self._tracer.start_span(
                f"rcm {record.span_name()}",
                kind=self._trace.SpanKind.INTERNAL,
                attributes={
                    **record.span_attributes(),
                    "rcm.host": event.host,
                    "rcm.request_id": event.request_id,
                },
            )
            if span.get_span_context().is_valid:
                record.span = span
                record.recording = span.is_recording()
                record.context = self._trace.set_span_in_context(span)
                requests.attach(event.request_id, record.context)
            else:  # a no-op tracer: pass the caller's trace on as it is
                record.context = self._context.get_current()
        requests.keep(event.request_id, record)

    def _attempt_started(self, event: events.AttemptStarted) -> None:
        record = self._requests.by_id.get(event.request_id)
        if record is None:
            return
        if record.span is None:
            if record.context is not None and event.headers is not None:
                self._inject(event.headers, context=record.context)
            return
        if record.attempt is not None:  # AttemptFinished went missing
            self._end_attempt(record, None)
        attributes = record.span_attributes()
        if event.attempt > 1:
            attributes["http.request.resend_count"] = event.attempt - 1
        if event.probe:
            attributes["rcm.breaker.probe"] = True
        if event.idempotency_key:
            attributes["rcm.idempotency_key"] = event.idempotency_key
        span = self._tracer.start_span(
            record.span_name(),
            context=record.context,
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        record.attempt = span
        context = self._trace.set_span_in_context(span, record.context)
        if event.headers is not None:
            self._inject(event.headers, context=context)
        self._requests.attach(event.request_id, context)

    def _attempt_finished(self, event: events.AttemptFinished) -> None:
        record = self._requests.by_id.get(event.request_id)
        if record is None:
            return
        error_type = _error_type(event.status, event.error)
        labels = _with_outcome(record.labels, event.status, error_type)
        self._instruments.http_duration.record(event.duration, labels)
        if record.attempt is not None:
            self._end_attempt(record, event, error_type)

    def _end_attempt(
        self,
        record: _Request,
        event: Optional[events.AttemptFinished],
        error_type: Optional[str] = "rcm.telemetry.unfinished",
    ) -> None:
        span = record.attempt
        assert span is not None
        record.attempt = None
        self._requests.detach_attempt(record)
        attributes = {} if event is None else {"rcm.verdict": event.verdict}
        status = None if event is None else event.status
        self._end_span(span, span.is_recording(), attributes, status, error_type)

    def _request_finished(self, event: events.RequestFinished) -> None:
        record = self._requests.finish(event.request_id)
        if record is None:
            return
        error_type = _error_type(event.status, event.error)
        labels: dict[str, Any] = {
            "http.request.method": record.method,
            "rcm.host": record.host,
            "rcm.retried": event.attempts > 1,
        }
        labels = _with_outcome(labels, event.status, error_type)
        self._instruments.request_duration.record(event.duration, labels)
        if record.attempt is not None:
            self._end_attempt(record, None, event.error or "rcm.telemetry.unfinished")
        span = record.span
        if span is None:
            return
        record.span = None
        attempts = {"rcm.attempts": event.attempts}
        self._end_span(span, record.recording, attempts, event.status, error_type)

    def _end_span(
        self,
        span: Span,
        recording: bool,
        attributes: dict[str, Any],
        status: Optional[int],
        error_type: Optional[str],
    ) -> None:
        """End ``span``, first setting (if ``recording``) the attributes of the outcome.

        Args:
            span: The span.
            recording: The span records (its attributes are worth setting).
            attributes: Attributes to set.
            status: ``http.response.status_code``, if any.
            error_type: ``error.type``, if any; it also marks the span's status an error.
        """
        if recording:
            if error_type is not None:
                span.set_status(self._trace.StatusCode.ERROR)
            span.set_attributes(_with_outcome(attributes, status, error_type))
        span.end()

    # ------------------------------------------------------------------------- lifecycle
    def reinit_after_fork(self) -> None:
        """In a forked child: a fresh lock, no open request (their spans stay in the parent)."""
        self._requests.reinit_after_fork()

    def open_requests(self) -> int:
        """Requests started and not finished (for tests and diagnostics)."""
        return len(self._requests)
