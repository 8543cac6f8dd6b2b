"""The smaller parts of the public surface: attribute views, argument shapes, validation."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import requests
from werkzeug import Request, Response

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    ConnectionManagerError,
    ConnectionManagerMixin,
    PluginManager,
)
from requests_connection_manager.__main__ import main
from tests.fakes import FakeClock
from tests.servers import AppServer, free_port

pytestmark = pytest.mark.timeout(60)


def test_attribute_views_follow_the_setters() -> None:
    """The 1.0.0 attributes read what the setters set, and cannot be assigned."""
    with ConnectionManager() as cm:
        assert cm.verify is True
        assert (cm.api_key, cm.api_key_header, cm.bearer_token, cm.oauth2_token) == (
            None,
            "X-API-Key",
            None,
            None,
        )
        cm.set_api_key("k", "X-Key")
        cm.set_bearer_token("b")
        cm.set_oauth2_token("o")
        cm.set_ssl_verification(False)
        assert (cm.api_key, cm.api_key_header, cm.bearer_token, cm.oauth2_token) == (
            "k",
            "X-Key",
            "b",
            "o",
        )
        assert cm.verify is False
        assert isinstance(cm.plugin_manager, PluginManager)
        with pytest.raises(AttributeError):
            cm.api_key = "x"  # type: ignore[misc]


def test_endpoint_oauth2_and_clearing_an_unknown_pattern(app: AppServer) -> None:
    """set_endpoint_auth(oauth2) sends the token; clear_auth of an unknown pattern is a no-op."""
    app.ok("/me")
    with ConnectionManager() as cm:
        cm.set_endpoint_auth("127.0.0.1", "oauth2", token="oa-token")
        cm.clear_auth("never.configured.example")
        cm.get(app.url("/me"))
    assert app.requests[-1].headers["Authorization"] == "Bearer oa-token"


def test_session_request_takes_requests_positional_arguments(app: AppServer) -> None:
    """cm.session.request(method, url, params, data, headers) works as in requests."""
    app.ok("/echo")
    with ConnectionManager() as cm:
        cm.session.request("POST", app.url("/echo"), {"q": "1"}, b"body", {"X-A": "b"})
        seen = app.requests[-1]
        assert (seen.query_string, seen.body, seen.headers["X-A"]) == ("q=1", b"body", "b")
        with pytest.raises(TypeError, match="multiple values"):
            cm.session.request("GET", app.url("/echo"), {"q": "1"}, params={"q": "2"})
        with pytest.raises(TypeError, match="too many"):
            cm.session.request("GET", app.url("/echo"), *range(20))


def test_a_closed_session_refuses_send(app: AppServer) -> None:
    """Preparing by hand and sending through a closed manager's session is refused."""
    app.ok("/x")
    cm = ConnectionManager()
    prepared = cm.session.prepare_request(requests.Request("GET", app.url("/x")))
    cm.close()
    with pytest.raises(ConnectionManagerError, match="closed"):
        cm.session.send(prepared)
    assert app.total() == 0


def test_stats_report_a_half_open_breaker(app: AppServer, clock: FakeClock) -> None:
    """While a probe is in flight the overall state is half-open."""
    app.ok("/down", b"x", status=500)
    probe_seen: list[str] = []

    def slow_probe(request: Request) -> Response:
        probe_seen.append(cm.get_stats()["circuit_breaker_state"])
        return Response("ok")

    with ConnectionManager(
        max_retries=0,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_recovery_timeout=5,
        clock=clock,
    ) as cm:
        cm.get(app.url("/down"))
        clock.advance(6)
        app.route("/down", slow_probe)
        assert cm.get(app.url("/down")).status_code == 200
    assert probe_seen == ["half-open"]


def test_an_unsplittable_url_after_a_breaker_exists_is_invalid_url(app: AppServer) -> None:
    """The early breaker check leaves URLs urllib cannot split to requests' own error."""
    app.ok("/x")
    with ConnectionManager() as cm:
        cm.get(app.url("/x"))
        with pytest.raises(requests.exceptions.InvalidURL):
            cm.get("http://[::1")


def test_batch_argument_errors() -> None:
    """Wrong shapes of batch arguments are TypeErrors naming them."""
    with ConnectionManager() as cm:
        with pytest.raises(TypeError, match="requests_data"):
            cm.batch_request("GET http://x/")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="return_exceptions"):
            cm.batch_request([], return_exceptions="yes")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="on_progress"):
            cm.batch_request([], on_progress=5)  # type: ignore[arg-type]


def test_batch_failures_are_logged_at_debug_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failed batch item is logged at DEBUG with its index and a redacted URL."""
    url = f"http://127.0.0.1:{free_port()}/?api_key=s3cr3t"
    with (
        ConnectionManager(max_retries=0) as cm,
        caplog.at_level(logging.DEBUG, logger="requests_connection_manager"),
    ):
        results = cm.batch_request([("GET", url, {})])
    assert isinstance(results[0], requests.ConnectionError)
    lines = [r.getMessage() for r in caplog.records if "batch item 0" in r.getMessage()]
    assert lines
    assert "s3cr3t" not in caplog.text


def test_breaker_open_during_a_batch_is_returned_in_place(app: AppServer) -> None:
    """Refusals are results like any other failure."""
    app.ok("/down", b"x", status=500)
    with ConnectionManager(max_retries=0, circuit_breaker_failure_threshold=1) as cm:
        results = cm.batch_request([("GET", app.url("/down"), {})] * 3, max_workers=1)
    assert [type(r) for r in results[1:]] == [CircuitBreakerOpen, CircuitBreakerOpen]


def test_demo_reports_progress_when_not_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --quiet, progress goes to stderr (quarters, not a redrawn line, off a terminal)."""
    assert main(["demo", "--requests", "40"]) == 0
    err = capsys.readouterr().err
    progress = [line for line in err.splitlines() if line.startswith("demo: ")]
    assert progress
    assert progress[-1].startswith("demo: 40/40 calls done")


def test_the_public_surface_is_pinned() -> None:
    """The package's __all__, and its public modules: a change here is a change of the API."""
    import requests_connection_manager as rcm

    assert rcm.__all__ == [
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
    for name in rcm.__all__:
        assert hasattr(rcm, name), name
    package = Path(rcm.__file__).parent
    public = sorted(p.stem for p in package.glob("*.py") if not p.stem.startswith("_"))
    assert public == ["config", "events", "exceptions", "plugins", "utils"]


def test_the_mixin_takes_the_managers_keywords_and_passes_the_rest(app: AppServer) -> None:
    """A Session subclass with the mixin: manager keywords configure it, others go on."""

    class Base(requests.Session):
        def __init__(self, *, label: str = "") -> None:
            super().__init__()
            self.label = label

    class Resilient(ConnectionManagerMixin, Base):
        pass

    app.fail_then_ok("/x", failures=1)
    session = Resilient(max_retries=2, backoff_factor=0, bearer_token="t0k3n", label="mine")
    try:
        assert session.label == "mine"
        assert session.get(app.url("/x")).status_code == 200
        assert app.hits("/x") == 2
        assert app.requests[-1].headers["Authorization"] == "Bearer t0k3n"
    finally:
        session.close()
    with pytest.raises(ConnectionManagerError, match="closed"):
        session.get(app.url("/x"))
    with pytest.raises(ValueError, match="max_retries"):
        Resilient(max_retries=-1)
