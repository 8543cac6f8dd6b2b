"""OpenTelemetry: spans per request and attempt, trace context, metrics (loopback only)."""

from __future__ import annotations

import contextvars
import inspect
import logging
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any, Optional

import pytest
import requests
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    ConnectionManagerMixin,
    RateLimitExceeded,
)
from requests_connection_manager import _telemetry as telemetry_module
from requests_connection_manager.events import (
    AttemptStarted,
    RequestFinished,
    RequestStarted,
    RetryScheduled,
)
from tests.fakes import FakeClock
from tests.servers import AppServer, free_port

pytestmark = pytest.mark.timeout(30)


class Otel:
    """An SDK tracer provider and meter provider that keep everything in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def manager(self, **kwargs: Any) -> ConnectionManager:
        """A manager that reports to these providers."""
        kwargs.setdefault("backoff_factor", 0.001)
        return ConnectionManager(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **kwargs
        )

    def spans(self) -> list[ReadableSpan]:
        """Finished spans, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def requests(self) -> list[ReadableSpan]:
        """Finished request spans (INTERNAL, ``rcm <method>``)."""
        return [s for s in self.spans() if s.name.startswith("rcm ")]

    def attempts(self) -> list[ReadableSpan]:
        """Finished attempt spans (CLIENT), in the order they started."""
        found = [
            s
            for s in self.spans()
            if s.kind is SpanKind.CLIENT
            and s.instrumentation_scope is not None
            and s.instrumentation_scope.name == telemetry_module.SCOPE
        ]
        return sorted(found, key=lambda s: s.start_time or 0)

    def metrics(self) -> dict[str, list[Any]]:
        """Metric name to its data points (collected now)."""
        out: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return out
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out

    def shutdown(self) -> None:
        """Shut both providers down."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def otel() -> Iterator[Otel]:
    """In-memory OpenTelemetry SDK providers, given to managers explicitly."""
    providers = Otel()
    yield providers
    providers.shutdown()


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _events(span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, dict(e.attributes or {})) for e in span.events]


def _points(points: list[Any], **wanted: Any) -> list[Any]:
    return [p for p in points if all(p.attributes.get(k) == v for k, v in wanted.items())]


def _traceparent(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


# ---------------------------------------------------------------------------- traces
def test_a_call_retried_twice_has_one_request_span_and_three_attempt_spans(
    app: AppServer, otel: Otel
) -> None:
    """A call that succeeds on its 3rd attempt: 1 request span, 3 CLIENT spans under it."""
    app.fail_then_ok("/flaky", failures=2)
    with otel.manager() as cm:
        assert cm.get(app.url("/flaky")).status_code == 200
    (request,) = otel.requests()
    attempts = otel.attempts()
    assert len(attempts) == 3
    assert request.name == "rcm GET"
    assert request.kind is SpanKind.INTERNAL
    assert request.parent is None
    for attempt in attempts:
        assert attempt.name == "GET"
        assert attempt.parent is not None
        assert attempt.parent.span_id == request.context.span_id
        assert attempt.context.trace_id == request.context.trace_id
        attributes = _attributes(attempt)
        assert attributes["http.request.method"] == "GET"
        assert attributes["url.full"] == app.url("/flaky")
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["server.port"] == app.port
    first, second, third = (_attributes(a) for a in attempts)
    assert "http.request.resend_count" not in first
    assert second["http.request.resend_count"] == 1
    assert third["http.request.resend_count"] == 2
    for failed, span in ((first, attempts[0]), (second, attempts[1])):
        assert failed["http.response.status_code"] == 503
        assert failed["error.type"] == "503"
        assert span.status.status_code is StatusCode.ERROR
    assert third["http.response.status_code"] == 200
    assert "error.type" not in third
    assert attempts[2].status.status_code is StatusCode.UNSET
    story = _events(request)
    assert [name for name, _ in story] == ["rcm.retry", "rcm.wait", "rcm.retry", "rcm.wait"]
    assert story[0][1]["rcm.attempt"] == 1
    assert story[0][1]["error.type"] == "503"
    assert story[1][1]["rcm.wait.reason"] == "backoff"
    assert story[1][1]["rcm.wait.duration"] >= 0
    assert _attributes(request)["rcm.attempts"] == 3
    assert _attributes(request)["http.response.status_code"] == 200


def test_the_traceparent_of_each_attempt_reaches_the_server(app: AppServer, otel: Otel) -> None:
    """The server sees each attempt span as its parent (W3C trace context per attempt)."""
    app.fail_then_ok("/flaky", failures=2)
    with otel.manager() as cm:
        cm.get(app.url("/flaky"))
    sent = [r.headers.get("Traceparent") for r in app.requests]
    assert sent == [_traceparent(a) for a in otel.attempts()]
    assert len(set(sent)) == 3


def test_attempts_that_fail_without_a_response_carry_the_error_type(otel: Otel) -> None:
    """Connection errors: every attempt span has error.type, the request span too."""
    url = f"http://127.0.0.1:{free_port()}/down"
    cm = otel.manager(max_retries=2, circuit_breaker_failure_threshold=None)
    with cm, pytest.raises(requests.ConnectionError) as raised:
        cm.get(url, timeout=2)
    attempts = otel.attempts()
    assert len(attempts) == 3
    for attempt in attempts:
        attributes = _attributes(attempt)
        assert attributes["error.type"] == "ConnectionError"
        assert "http.response.status_code" not in attributes
        assert attempt.status.status_code is StatusCode.ERROR
    (request,) = otel.requests()
    assert _attributes(request)["error.type"] == type(raised.value).__name__
    assert request.status.status_code is StatusCode.ERROR


def test_a_call_refused_by_an_open_breaker_has_a_request_span_and_no_attempt(
    app: AppServer, otel: Otel
) -> None:
    """An open breaker: the refused call's request span says why; no CLIENT span, no traffic."""
    app.ok("/down", status=503)
    with otel.manager(max_retries=0, circuit_breaker_failure_threshold=1) as cm:
        cm.get(app.url("/down"))
        with pytest.raises(CircuitBreakerOpen):
            cm.get(app.url("/down"))
        host = next(iter(cm.get_stats()["hosts"]))
        metrics = otel.metrics()
    assert app.hits("/down") == 1
    _, refused = otel.requests()
    assert [_attributes(a)["http.response.status_code"] for a in otel.attempts()] == [503]
    assert _attributes(refused)["rcm.refusal.reason"] == "breaker"
    assert _attributes(refused)["error.type"] == "CircuitBreakerOpen"
    assert _attributes(refused)["rcm.attempts"] == 0
    assert refused.status.status_code is StatusCode.ERROR
    assert [name for name, _ in _events(refused)] == ["rcm.refused"]
    assert not [s for s in otel.spans() if s.parent and s.parent.span_id == refused.context.span_id]
    # The attempt that opened the breaker tells it.
    (opened,) = otel.attempts()
    assert ("rcm.breaker", {"rcm.host": host, "rcm.breaker.previous_state": "closed"}) in [
        (name, {k: v for k, v in a.items() if k != "rcm.breaker.state"})
        for name, a in _events(opened)
    ]
    assert _points(metrics["rcm.refusals"], **{"rcm.refusal.reason": "breaker"})[0].value == 1
    assert (
        _points(metrics["rcm.breaker.transitions"], **{"rcm.breaker.state": "open"})[0].value == 1
    )
    state = {p.attributes["rcm.breaker.state"]: p.value for p in metrics["rcm.breaker.state"]}
    assert state == {"closed": 0, "open": 1, "half-open": 0}


def test_a_call_refused_by_a_fail_fast_limiter_has_a_request_span_and_no_attempt(
    app: AppServer, otel: Otel
) -> None:
    """rate_limit_max_wait=0 refuses the second call: reason rate_limit, no CLIENT span."""
    app.ok("/x")
    with otel.manager(rate_limit_requests=1, rate_limit_period=60, rate_limit_max_wait=0) as cm:
        cm.get(app.url("/x"))
        with pytest.raises(RateLimitExceeded):
            cm.get(app.url("/x"))
        metrics = otel.metrics()
    assert len(otel.attempts()) == 1
    _, refused = otel.requests()
    assert _attributes(refused)["rcm.refusal.reason"] == "rate_limit"
    (event,) = _events(refused)
    assert event[0] == "rcm.refused"
    assert event[1]["rcm.refusal.retry_after"] > 0
    assert _points(metrics["rcm.refusals"], **{"rcm.refusal.reason": "rate_limit"})[0].value == 1


def test_a_retry_after_pause_is_a_wait_and_a_pause_in_spans_and_metrics(
    app: AppServer, otel: Otel
) -> None:
    """429 + Retry-After: the pause is told on the attempt, the wait on the request."""
    app.retry_after("/busy", 429, 2)
    with otel.manager(clock=FakeClock()) as cm:
        assert cm.get(app.url("/busy")).status_code == 200
        metrics = otel.metrics()
    (request,) = otel.requests()
    first, _ = otel.attempts()
    assert ("rcm.host_paused", {"rcm.pause.source": "retry-after", "rcm.pause.duration": 2.0}) in (
        _events(first)
    )
    waits = [a for name, a in _events(request) if name == "rcm.wait"]
    assert [w["rcm.wait.reason"] for w in waits] == ["pause"]
    assert waits[0]["rcm.wait.duration"] >= 2.0
    (pause,) = _points(metrics["rcm.wait.duration"], **{"rcm.wait.reason": "pause"})
    assert pause.count == 1
    assert pause.sum >= 2.0
    assert _points(metrics["rcm.host.pauses"], **{"rcm.pause.source": "retry-after"})[0].value == 1


def test_the_request_span_is_a_child_of_the_callers_span(app: AppServer, otel: Otel) -> None:
    """A call made under the application's span nests under it, in the same trace."""
    app.ok("/x")
    tracer = otel.tracer_provider.get_tracer("app")
    with otel.manager() as cm, tracer.start_as_current_span("job") as job:
        cm.get(app.url("/x"))
    (request,) = otel.requests()
    assert request.parent is not None
    assert request.parent.span_id == job.get_span_context().span_id
    assert request.context.trace_id == job.get_span_context().trace_id


def test_our_spans_are_current_while_the_pipeline_runs_and_restored_after(
    app: AppServer, otel: Otel
) -> None:
    """Subscribers and log records see the attempt or request span; the caller's comes back."""
    app.fail_then_ok("/flaky", failures=1)
    seen: list[tuple[str, int]] = []

    def watch(event: Any) -> None:
        if isinstance(event, (AttemptStarted, RetryScheduled)):
            span_id = trace.get_current_span().get_span_context().span_id
            seen.append((type(event).__name__, span_id))

    before = otel_context.get_current()
    with otel.manager(on_event=watch) as cm:
        cm.get(app.url("/flaky"))
        with pytest.raises(requests.ConnectionError):
            cm.get(f"http://127.0.0.1:{free_port()}/", timeout=2)
    assert otel_context.get_current() == before
    first, second = (a.context.span_id for a in otel.attempts()[:2])
    request = otel.requests()[0].context.span_id
    assert seen[:3] == [
        ("AttemptStarted", first),
        ("RetryScheduled", request),
        ("AttemptStarted", second),
    ]


def test_each_redirect_hop_is_a_request_span(app: AppServer, otel: Otel) -> None:
    """A redirect followed: one request span per hop, each with its attempt."""
    app.ok("/from", status=302, headers={"Location": "/to"})
    app.ok("/to")
    with otel.manager() as cm:
        assert cm.get(app.url("/from")).status_code == 200
    hops = otel.requests()
    assert [_attributes(h)["url.full"] for h in hops] == [app.url("/from"), app.url("/to")]
    assert [_attributes(h)["http.response.status_code"] for h in hops] == [302, 200]
    assert len(otel.attempts()) == 2


def test_no_secret_appears_in_any_span_event_or_metric_attribute(
    app: AppServer, otel: Otel
) -> None:
    """User-info, ?api_key= and credential values never reach an attribute or a label."""
    app.fail_then_ok("/ok", failures=1)
    secrets = ["s3cret-pw", "QUERY-KEY-123", "BEARER-tok-456", "HEADER-KEY-789", "Basic-pw-0"]
    port = app.port
    with otel.manager(bearer_token="BEARER-tok-456", api_key="HEADER-KEY-789") as cm:
        cm.get(f"http://user:s3cret-pw@127.0.0.1:{port}/ok?api_key=QUERY-KEY-123&page=2")
        cm.get(app.url("/ok"), auth=("user", "Basic-pw-0"))
        metrics = otel.metrics()
    texts: list[str] = []
    for span in otel.spans():
        texts.append(span.name)
        texts.extend(repr(v) for v in _attributes(span).values())
        for _, attributes in _events(span):
            texts.extend(repr(v) for v in attributes.values())
    for points in metrics.values():
        for point in points:
            texts.extend(repr(v) for v in point.attributes.values())
    assert any("page=2" in t for t in texts)  # the URL is there, redacted
    for secret in secrets:
        assert not [t for t in texts if secret in t], secret
    # The server did get the credentials: redaction is telemetry's, not the request's.
    assert any(r.headers.get("Authorization", "").startswith("Bearer") for r in app.requests)


def test_without_an_sdk_nothing_is_kept_and_no_trace_is_invented(app: AppServer) -> None:
    """Global providers with no SDK configured: no traceparent sent, no state kept."""
    app.ok("/x")
    with ConnectionManager() as cm:
        telemetry = cm._engine.telemetry
        assert telemetry is not None
        cm.get(app.url("/x"))
        assert telemetry.open_requests() == 0
    assert "Traceparent" not in app.requests[0].headers


def test_without_an_sdk_an_incoming_trace_still_reaches_the_server(app: AppServer) -> None:
    """No SDK but a current remote span context (propagation only): it is passed on."""
    app.ok("/x")
    remote = SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=TraceFlags(1))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(remote)))
    try:
        with ConnectionManager() as cm:
            cm.get(app.url("/x"))
    finally:
        otel_context.detach(token)
    assert app.requests[0].headers["Traceparent"] == f"00-{0x1234:032x}-{0x5678:016x}-01"


def test_telemetry_false_turns_everything_off(app: AppServer, otel: Otel) -> None:
    """telemetry=False: no subscriber, no span, no metric, no header."""
    app.ok("/x")
    with otel.manager(telemetry=False) as cm:
        assert cm._engine.telemetry is None
        cm.get(app.url("/x"))
    assert otel.spans() == []
    assert otel.metrics() == {}
    assert "Traceparent" not in app.requests[0].headers


def test_without_the_api_installed_telemetry_is_off_and_never_imported() -> None:
    """No opentelemetry-api: managers work, nothing subscribes; telemetry=False never looks."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if it were not installed
        from requests_connection_manager import ConnectionManager
        from requests_connection_manager._telemetry import otel_available
        cm = ConnectionManager()
        assert cm._engine.telemetry is None
        assert not otel_available()
        cm.close()
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
    # telemetry=False never even looks for the API (other packages may import it).
    script = textwrap.dedent(
        """
        from requests_connection_manager import ConnectionManager, _telemetry
        ConnectionManager(telemetry=False).close()
        print(_telemetry._api.cache_info().misses)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.stdout.strip() == "0", done.stderr


def test_providers_and_the_switch_are_validated() -> None:
    """A provider that is not one, or a non-bool switch: TypeError naming the keyword."""
    with pytest.raises(TypeError, match="tracer_provider"):
        ConnectionManager(tracer_provider=object())
    with pytest.raises(TypeError, match="meter_provider"):
        ConnectionManager(meter_provider=TracerProvider)
    with pytest.raises(TypeError, match="telemetry"):
        ConnectionManager(telemetry="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="telemetry"):
        ConnectionManager(endpoint_configs={"api.example.com": {"telemetry": False}})


def test_a_session_class_with_the_mixin_takes_the_telemetry_keywords(
    app: AppServer, otel: Otel
) -> None:
    """ConnectionManagerMixin reads the manager's signature: the providers work there too."""

    class Session(ConnectionManagerMixin, requests.Session):
        pass

    app.ok("/x")
    with Session(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider) as s:
        s.get(app.url("/x"))
    assert len(otel.requests()) == 1
    assert len(otel.attempts()) == 1


def test_a_pickled_session_keeps_telemetry_on_the_global_providers(otel: Otel) -> None:
    """Providers are not pickled: the copy uses the global ones (telemetry stays on)."""
    with otel.manager() as cm:
        copy = pickle.loads(pickle.dumps(cm.session))
    assert copy._rcm_engine.telemetry is not None
    copy.close()
    with otel.manager(telemetry=False) as cm:
        copy = pickle.loads(pickle.dumps(cm.session))
    assert copy._rcm_engine.telemetry is None
    copy.close()


# ---------------------------------------------------------------- robustness of the state
def _publish(cm: ConnectionManager, event: Any) -> None:
    cm._engine.bus.publish(event)


def test_a_request_that_never_finishes_is_ended_by_the_bound(
    otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_OPEN_REQUESTS the oldest unfinished request is ended, marked as evicted."""
    monkeypatch.setattr(telemetry_module, "MAX_OPEN_REQUESTS", 4)
    host = "http://127.0.0.1:9"

    def start_ten() -> None:
        # Another thread's requests each: the spans they attach are never detached, so
        # this runs in a copy of the test's context, which is dropped afterwards.
        for request_id in range(1, 11):
            telemetry._requests.thread.request_id = None
            telemetry._requests.thread.tokens = []
            _publish(cm, RequestStarted(request_id, host, "GET", f"{host}/{request_id}", 0.0))

    with otel.manager() as cm:
        telemetry = cm._engine.telemetry
        assert telemetry is not None
        contextvars.copy_context().run(start_ten)
        assert telemetry.open_requests() == 4
        telemetry._requests.thread.request_id = None
        telemetry._requests.thread.tokens = []
    evicted = otel.requests()
    assert len(evicted) == 6
    assert {_attributes(s)["error.type"] for s in evicted} == {"rcm.telemetry.evicted"}


def test_missing_events_leave_no_span_open_and_no_context_attached(otel: Otel) -> None:
    """A lost AttemptFinished or RequestFinished: spans end, the caller's context is back."""
    host = "http://127.0.0.1:9"
    before = otel_context.get_current()
    with otel.manager() as cm:
        telemetry = cm._engine.telemetry
        assert telemetry is not None
        _publish(cm, RequestStarted(1, host, "GET", f"{host}/a", 0.0))
        _publish(cm, AttemptStarted(1, host, 1, False, None, 0.0, {}))
        _publish(cm, RequestFinished(1, host, 1, None, "KeyboardInterrupt", 0.1, 0.1))
        assert otel_context.get_current() == before
        _publish(cm, RequestStarted(2, host, "GET", f"{host}/b", 0.0))
        _publish(cm, AttemptStarted(2, host, 1, False, None, 0.0, {}))
        # RequestFinished(2) never comes; this thread's next request cleans up.
        _publish(cm, RequestStarted(3, host, "GET", f"{host}/c", 0.0))
        _publish(cm, RequestFinished(3, host, 0, 200, None, 0.1, 0.1))
        assert otel_context.get_current() == before
        assert telemetry.open_requests() == 0
    by_url = {_attributes(s)["url.full"]: s for s in otel.spans() if s.kind is SpanKind.CLIENT}
    assert _attributes(by_url[f"{host}/a"])["error.type"] == "KeyboardInterrupt"
    assert _attributes(by_url[f"{host}/b"])["error.type"] == "rcm.telemetry.unfinished"
    assert len(otel.requests()) == 3


def test_an_unknown_method_is_reported_as_other(app: AppServer, otel: Otel) -> None:
    """A method the conventions do not know: _OTHER, with the original kept."""
    app.ok("/x")
    with otel.manager() as cm:
        cm.request("PURGE", app.url("/x"))
        metrics = otel.metrics()
    (attempt,) = otel.attempts()
    assert attempt.name == "HTTP"
    assert _attributes(attempt)["http.request.method"] == "_OTHER"
    assert _attributes(attempt)["http.request.method_original"] == "PURGE"
    (point,) = metrics["http.client.request.duration"]
    assert point.attributes["http.request.method"] == "_OTHER"


# ----------------------------------------------------------------------------- metrics
def test_the_duration_histogram_has_one_point_per_attempt(app: AppServer, otel: Otel) -> None:
    """http.client.request.duration: 3 attempts, 3 measurements, advised buckets, attributes."""
    app.fail_then_ok("/flaky", failures=2)
    with otel.manager() as cm:
        cm.get(app.url("/flaky"))
        metrics = otel.metrics()
    points = metrics["http.client.request.duration"]
    assert sum(p.count for p in points) == 3
    (failed,) = _points(points, **{"http.response.status_code": 503})
    (ok,) = _points(points, **{"http.response.status_code": 200})
    assert failed.count == 2
    assert ok.count == 1
    assert dict(failed.attributes) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": app.port,
        "url.scheme": "http",
        "http.response.status_code": 503,
        "error.type": "503",
    }
    if (
        "explicit_bucket_boundaries_advisory"
        in inspect.signature(Meter.create_histogram).parameters
    ):
        assert tuple(ok.explicit_bounds) == telemetry_module.HTTP_DURATION_BUCKETS
    (retries,) = metrics["rcm.retries"]
    assert retries.value == 2
    assert retries.attributes["error.type"] == "503"
    (request,) = metrics["rcm.request.duration"]
    assert request.count == 1
    assert request.attributes["rcm.retried"] is True
    (backoff,) = _points(metrics["rcm.wait.duration"], **{"rcm.wait.reason": "backoff"})
    assert backoff.count == 2


def test_the_retry_budget_refusal_is_counted(app: AppServer, otel: Otel) -> None:
    """A retry denied by the budget: rcm.refusals with reason retry_budget, a span event."""
    app.ok("/down", status=503)
    with otel.manager(
        retry_budget=0.0, retry_budget_burst=0, circuit_breaker_failure_threshold=None
    ) as cm:
        with pytest.raises(requests.RequestException):
            cm.get(app.url("/down"))
        metrics = otel.metrics()
    (denied,) = _points(metrics["rcm.refusals"], **{"rcm.refusal.reason": "retry_budget"})
    assert denied.value == 1
    (request,) = otel.requests()
    assert ("rcm.refused", {"rcm.refusal.reason": "retry_budget", "rcm.attempt": 1}) in _events(
        request
    )


def test_managers_of_one_provider_share_instruments_and_the_gauge_sees_all(
    app: AppServer, otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    """Two managers, one meter provider: no duplicate instrument; a closed one drops out."""
    second_server = AppServer().start()
    try:
        app.ok("/x")
        second_server.ok("/x")
        with caplog.at_level(logging.WARNING, logger="opentelemetry"):
            one, two = otel.manager(), otel.manager()
        one.get(app.url("/x"))
        two.get(second_server.url("/x"))
        hosts = {p.attributes["rcm.host"] for p in otel.metrics()["rcm.breaker.state"]}
        assert hosts == {app.base_url, second_server.base_url}
        two.close()
        hosts = {p.attributes["rcm.host"] for p in otel.metrics()["rcm.breaker.state"]}
        assert hosts == {app.base_url}
        one.close()
    finally:
        second_server.stop()
    assert not [r for r in caplog.records if "already" in r.getMessage()]


def test_shared_state_outages_and_health_are_metrics(app: AppServer, otel: Otel) -> None:
    """Redis unreachable: one outage counted, the health gauge says 0 for the prefix."""
    pytest.importorskip("redis")
    app.ok("/x")
    with otel.manager(
        redis_url="redis://127.0.0.1:1/0", rate_limit_requests=100, redis_prefix="tel"
    ) as cm:
        cm.get(app.url("/x"))
        metrics = otel.metrics()
    (health,) = metrics["rcm.shared_state.healthy"]
    assert dict(health.attributes) == {"rcm.shared_state.prefix": "tel"}
    assert health.value == 0
    (outages,) = metrics["rcm.shared_state.outages"]
    assert outages.value == 1


# --------------------------------------------------- opentelemetry-instrumentation-requests
@pytest.fixture
def instrumented(otel: Otel) -> Iterator[Optional[Any]]:
    """opentelemetry-instrumentation-requests active on the same tracer provider."""
    instrumentation = pytest.importorskip("opentelemetry.instrumentation.requests")
    instrumentor = instrumentation.RequestsInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider)
    try:
        yield instrumentor
    finally:
        instrumentor.uninstrument()


def test_with_instrumentation_requests_our_spans_nest_inside_its_span(
    app: AppServer, otel: Otel, instrumented: Any
) -> None:
    """Its CLIENT span per Session.send holds our request span, which holds the attempts."""
    app.fail_then_ok("/flaky", failures=1)
    with otel.manager() as cm:
        cm.get(app.url("/flaky"))
    ours = {s.context.span_id for s in otel.requests() + otel.attempts()}
    (outer,) = [s for s in otel.spans() if s.context.span_id not in ours]
    assert outer.kind is SpanKind.CLIENT
    assert outer.instrumentation_scope is not None
    assert outer.instrumentation_scope.name == "opentelemetry.instrumentation.requests"
    (request,) = otel.requests()
    assert request.parent is not None
    assert request.parent.span_id == outer.context.span_id
    attempts = otel.attempts()
    assert len(attempts) == 2
    assert all(a.parent and a.parent.span_id == request.context.span_id for a in attempts)
    # The server sees our attempt spans as parents, not the outer span.
    assert [r.headers["Traceparent"] for r in app.requests] == [_traceparent(a) for a in attempts]


def test_a_half_open_probe_and_the_transitions_are_told(app: AppServer, otel: Otel) -> None:
    """Open, then a probe after the recovery timeout: the probe span, every transition."""
    app.sequence("/x", [(500, None, b"down"), (200, None, b"up")])
    clock = FakeClock()
    with otel.manager(
        max_retries=0,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_recovery_timeout=30,
        clock=clock,
    ) as cm:
        cm.get(app.url("/x"))
        clock.advance(30)
        assert cm.get(app.url("/x")).text == "up"
        metrics = otel.metrics()
    down, probe = otel.attempts()
    assert "rcm.breaker.probe" not in _attributes(down)
    assert _attributes(probe)["rcm.breaker.probe"] is True
    moves = {p.attributes["rcm.breaker.state"]: p.value for p in metrics["rcm.breaker.transitions"]}
    assert moves == {"open": 1, "half-open": 1, "closed": 1}


def test_an_idempotency_key_is_the_same_on_every_attempt_span(app: AppServer, otel: Otel) -> None:
    """idempotency_keys=True: each attempt span of a retried POST carries the one key."""
    app.fail_then_ok("/pay", failures=1)
    with otel.manager(idempotency_keys=True) as cm:
        cm.post(app.url("/pay"), data=b"{}")
    keys = [_attributes(a)["rcm.idempotency_key"] for a in otel.attempts()]
    assert len(keys) == 2
    assert keys[0] == keys[1] == app.requests[0].headers["Idempotency-Key"]


def test_global_providers_set_by_the_application_are_used(
    app: AppServer, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SDK set as the global providers (as an application does) gets the spans and metrics."""
    from opentelemetry.metrics import _internal as metrics_state

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", otel.tracer_provider)
    monkeypatch.setattr(metrics_state, "_METER_PROVIDER", otel.meter_provider)
    monkeypatch.setattr(telemetry_module, "_global_instruments", [])
    app.ok("/x")
    with ConnectionManager() as cm:
        cm.get(app.url("/x"))
        metrics = otel.metrics()
    assert len(otel.requests()) == 1
    assert len(otel.attempts()) == 1
    assert sum(p.count for p in metrics["http.client.request.duration"]) == 1


def test_a_provider_that_cannot_be_hashed_gets_its_own_instruments(
    app: AppServer, otel: Otel
) -> None:
    """A meter provider wrapper without __hash__ still works (no shared cache for it)."""

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __init__(self, inner: MeterProvider) -> None:
            self.inner = inner

        def get_meter(self, *args: Any, **kwargs: Any) -> Any:
            return self.inner.get_meter(*args, **kwargs)

    app.ok("/x")
    with ConnectionManager(meter_provider=Unhashable(otel.meter_provider)) as cm:
        cm.get(app.url("/x"))
        metrics = otel.metrics()
    assert sum(p.count for p in metrics["http.client.request.duration"]) == 1


def test_without_the_api_the_manager_builds_no_subscriber(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """_api() finding nothing: no subscriber (the same path as a missing package)."""
    monkeypatch.setattr(telemetry_module, "_api", lambda: None)
    with ConnectionManager() as cm:
        assert cm._engine.telemetry is None


def test_after_a_fork_the_subscriber_starts_empty(app: AppServer, otel: Otel) -> None:
    """reinit_after_fork: no open request, a fresh lock and thread state; it still works."""
    app.ok("/x")
    with otel.manager() as cm:
        telemetry = cm._engine.telemetry
        assert telemetry is not None
        _publish(cm, RequestStarted(99, "http://127.0.0.1:9", "GET", "http://127.0.0.1:9/", 0.0))
        assert telemetry.open_requests() == 1
        telemetry._requests.detach()  # what the parent's thread attached stays in the parent
        cm._engine.reinit_after_fork()
        telemetry._instruments.reinit_after_fork()
        assert telemetry.open_requests() == 0
        cm.get(app.url("/x"))
    assert len(otel.attempts()) == 1


@pytest.mark.parametrize(
    ("key", "origin"),
    [
        ("http://127.0.0.1:8080", ("http", "127.0.0.1", 8080)),
        ("https://[::1]:8443", ("https", "::1", 8443)),
        ("https://api.example.com:443 [api.example.com/v2]", ("https", "api.example.com", 443)),
        ("https://example.com", ("https", "example.com", 443)),
    ],
)
def test_server_address_and_port_come_from_the_host_key(
    key: str, origin: tuple[str, str, int]
) -> None:
    """The host key gives url.scheme, server.address (no IPv6 brackets) and server.port."""
    assert tuple(telemetry_module._origin(key)) == origin


def test_only_the_apis_own_providers_count_as_no_sdk(otel: Otel) -> None:
    """The proxy and no-op providers record nothing; the SDK's do."""
    from opentelemetry import metrics

    assert not telemetry_module._live(trace.ProxyTracerProvider())
    assert not telemetry_module._live(trace.NoOpTracerProvider())
    assert not telemetry_module._live(metrics.NoOpMeterProvider())
    assert telemetry_module._live(otel.tracer_provider)
    assert telemetry_module._live(otel.meter_provider)


def test_threads_each_get_their_own_spans(app: AppServer, otel: Otel) -> None:
    """Eight threads at once: every request span has exactly its own attempt under it."""
    app.barrier("/x", parties=8)
    with otel.manager(pool_maxsize=8) as cm:
        urls = [("GET", app.url("/x"), {}) for _ in range(8)]
        results = cm.batch_request(urls, max_workers=8)
        assert [r.status_code for r in results] == [200] * 8
        telemetry = cm._engine.telemetry
        assert telemetry is not None
        assert telemetry.open_requests() == 0
    requests_ = otel.requests()
    attempts = otel.attempts()
    assert len(requests_) == len(attempts) == 8
    parents = sorted(a.parent.span_id for a in attempts if a.parent is not None)
    assert parents == sorted(r.context.span_id for r in requests_)
    assert len({r.context.trace_id for r in requests_}) == 8


def test_a_batch_runs_inside_the_callers_trace(app: AppServer, otel: Otel) -> None:
    """batch_request under a current span: each request span is that span's child."""
    app.barrier("/x", parties=4)
    tracer = otel.tracer_provider.get_tracer("test")
    with otel.manager(pool_maxsize=4) as cm, tracer.start_as_current_span("caller") as caller:
        results = cm.batch_request([("GET", app.url("/x"), {}) for _ in range(4)], max_workers=4)
        assert [r.status_code for r in results] == [200] * 4
    requests_ = otel.requests()
    assert len(requests_) == 4
    assert {r.parent.span_id for r in requests_ if r.parent is not None} == {
        caller.get_span_context().span_id
    }
    assert {r.context.trace_id for r in requests_} == {caller.get_span_context().trace_id}
