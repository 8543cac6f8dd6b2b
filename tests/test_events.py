"""The event stream: subscribers, their failures, and the log lines it becomes."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from requests_connection_manager import ConnectionManager, RateLimitExceeded
from requests_connection_manager._logwriter import LogWriter
from requests_connection_manager.events import (
    AttemptFinished,
    AttemptStarted,
    BreakerStateChanged,
    EventBus,
    HostPaused,
    Refused,
    RequestFinished,
    RequestStarted,
    RetryDenied,
    RetryScheduled,
    SharedStateChanged,
)
from tests.fakes import FakeClock
from tests.servers import AppServer

pytestmark = pytest.mark.timeout(20)

LOGGER = "requests_connection_manager"


def test_a_retried_request_publishes_its_story_in_order(app: AppServer, clock: FakeClock) -> None:
    """503 then 200: started, attempt 1 (503), retry, attempt 2 (200), finished."""
    app.fail_then_ok("/x", failures=1)
    events: list[Any] = []
    with ConnectionManager(clock=clock, on_event=events.append) as cm:
        cm.get(app.url("/x?token=s3cret"))
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "RequestStarted",
        "AttemptStarted",
        "AttemptFinished",
        "RetryScheduled",
        "Waited",
        "AttemptStarted",
        "AttemptFinished",
        "RequestFinished",
    ]
    assert len({e.request_id for e in events}) == 1
    started = events[0]
    assert isinstance(started, RequestStarted)
    assert "s3cret" not in started.url
    finished = events[-1]
    assert isinstance(finished, RequestFinished)
    assert (finished.attempts, finished.status, finished.error) == (2, 200, None)
    assert [e.status for e in events if isinstance(e, AttemptFinished)] == [503, 200]


def test_a_retry_after_too_long_to_wait_is_a_refusal_event(
    app: AppServer, clock: FakeClock
) -> None:
    """503 asking for 600 s (retry_after_max 120): Refused(reason="retry_after", 600)."""
    app.ok("/x", b"busy", status=503, headers={"Retry-After": "600"})
    events: list[Any] = []
    with (
        ConnectionManager(clock=clock, on_event=events.append) as cm,
        pytest.raises(RateLimitExceeded),
    ):
        cm.get(app.url("/x"))
    refusals = [e for e in events if isinstance(e, Refused)]
    assert [(e.reason, e.retry_after) for e in refusals] == [("retry_after", 600.0)]
    assert isinstance(events[-1], RequestFinished)
    assert events[-1].error == "RateLimitExceeded"


def test_subscribe_and_unsubscribe(app: AppServer) -> None:
    """A subscriber added later sees later events only; removed, it sees no more."""
    app.ok("/x")
    seen: list[Any] = []
    with ConnectionManager() as cm:
        cm.subscribe(seen.append)
        cm.get(app.url("/x"))
        count = len(seen)
        cm.unsubscribe(seen.append)
        cm.unsubscribe(seen.append)  # not subscribed: ignored
        cm.get(app.url("/x"))
    assert count > 0
    assert len(seen) == count


def test_a_subscriber_with_event_types_gets_only_those() -> None:
    """``event_types`` narrows what a subscriber receives; routes follow (un)subscription."""

    class Picky:
        event_types = frozenset({Refused})

        def __init__(self) -> None:
            self.seen: list[Any] = []

        def __call__(self, event: Any) -> None:
            self.seen.append(event)

    bus = EventBus()
    picky, everything = Picky(), []  # type: ignore[var-annotated]
    bus.subscribe(picky)
    started = RequestStarted(1, "h", "GET", "http://h/", 0.0)
    refused = Refused(1, "h", "breaker", 1.0, 0.0)
    bus.publish(started)
    bus.publish(refused)
    bus.subscribe(everything.append)  # a route found before this is found again
    bus.publish(started)
    bus.publish(refused)
    bus.unsubscribe(picky)
    bus.publish(refused)
    assert picky.seen == [refused, refused]
    assert everything == [started, refused, refused]


def test_a_failing_subscriber_never_breaks_a_call(
    app: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A subscriber that raises is reported once (ERROR) and the calls go on."""
    app.ok("/x")

    def broken(event: Any) -> None:
        raise RuntimeError("subscriber bug with a secret: hunter2")

    with caplog.at_level(logging.ERROR, logger=LOGGER), ConnectionManager(on_event=broken) as cm:
        for _ in range(3):
            assert cm.get(app.url("/x")).status_code == 200
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "RuntimeError" in errors[0].getMessage()
    assert "hunter2" not in errors[0].getMessage()


def test_a_subscriber_must_be_callable() -> None:
    """on_event=42 is refused at construction; subscribe(42) too."""
    with pytest.raises(TypeError, match="on_event"):
        ConnectionManager(on_event=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        EventBus().subscribe(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "level", "text"),
    [
        (
            RetryScheduled(1, "h", "GET", "/u", 1, "status 503", 0.25, 0.0),
            logging.INFO,
            "retrying GET /u",
        ),
        (BreakerStateChanged("h", "closed", "open", 0.0), logging.WARNING, "opened (was closed)"),
        (BreakerStateChanged("h", "open", "half-open", 0.0), logging.INFO, "open -> half-open"),
        (HostPaused("h", 2.0, "retry-after", 0.0), logging.INFO, "paused for 2.000 s"),
        (RetryDenied(1, "h", 1, 0.0), logging.INFO, "retry budget spent"),
        (Refused(1, "h", "breaker", 3.0, 0.0), logging.DEBUG, "refused (breaker), retry after"),
        (SharedStateChanged(False, "TimeoutError", 0.0), logging.WARNING, "TimeoutError"),
        (SharedStateChanged(True, None, 0.0), logging.WARNING, "sharing resumed"),
    ],
)
def test_the_log_lines(event: Any, level: int, text: str, caplog: pytest.LogCaptureFixture) -> None:
    """Each event worth a line is logged at its level; nothing is formatted when disabled."""
    writer = LogWriter()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        writer(event)
    (record,) = caplog.records
    assert record.levelno == level
    assert text in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.CRITICAL, logger=LOGGER):
        writer(event)
    assert caplog.records == []


def test_events_without_a_line_are_silent(caplog: pytest.LogCaptureFixture) -> None:
    """Attempts and requests are not logged (the stats count them)."""
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        LogWriter()(AttemptStarted(1, "h", 1, False, None, 0.0))
    assert caplog.records == []
