"""Retries against real loopback servers: statuses, faults, replay safety, Retry-After."""

from __future__ import annotations

import threading
import time
from email.utils import formatdate

import pytest
import requests
import requests.exceptions as rex

from requests_connection_manager import (
    ConnectionManager,
    MaxRetriesExceeded,
    RateLimitExceeded,
)
from tests import faults as f
from tests.fakes import FakeClock
from tests.faults import FaultServer
from tests.servers import AppServer, free_port

pytestmark = pytest.mark.timeout(30)


def manager(clock: FakeClock, **kwargs: object) -> ConnectionManager:
    kwargs.setdefault("circuit_breaker_failure_threshold", None)
    cm = ConnectionManager(clock=clock, **kwargs)  # type: ignore[arg-type]
    cm._engine.rng.seed(20261201)  # the jitter, seeded: every run draws the same waits
    return cm


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_retryable_status_is_retried_until_success(
    app: AppServer, clock: FakeClock, status: int
) -> None:
    """A GET that gets a retryable status twice succeeds on the third attempt."""
    app.fail_then_ok("/x", failures=2, status=status)
    with manager(clock) as cm:
        response = cm.get(app.url("/x"))
    assert response.status_code == 200
    assert response.text == "ok"
    assert app.hits("/x") == 3


def test_exhausted_status_retries_raise_max_retries_with_last_response(
    app: AppServer, clock: FakeClock
) -> None:
    """Exhausted status retries raise MaxRetriesExceeded, also a requests RetryError."""
    app.fail_then_ok("/x", failures=100, status=502)
    with manager(clock, max_retries=2) as cm, pytest.raises(MaxRetriesExceeded) as info:
        cm.get(app.url("/x"))
    assert isinstance(info.value, rex.RetryError)
    assert info.value.attempts == 3
    assert info.value.last_response is not None
    assert info.value.last_response.status_code == 502
    assert info.value.response is info.value.last_response
    assert app.hits("/x") == 3


def test_no_retries_returns_the_status_as_requests_would(app: AppServer, clock: FakeClock) -> None:
    """With max_retries=0 a 503 is returned, not raised."""
    app.fail_then_ok("/x", failures=1, status=503)
    with manager(clock, max_retries=0) as cm:
        assert cm.get(app.url("/x")).status_code == 503
    assert app.hits("/x") == 1


def test_non_retryable_status_is_returned_at_once(app: AppServer, clock: FakeClock) -> None:
    """A 404 or 400 is an answer, not a failure: one attempt, returned."""
    app.ok("/missing", status=404)
    with manager(clock) as cm:
        assert cm.get(app.url("/missing")).status_code == 404
    assert app.hits("/missing") == 1


def test_post_is_not_retried_on_status(app: AppServer, clock: FakeClock) -> None:
    """POST is not in the idempotent methods: a 503 is returned after one attempt."""
    app.fail_then_ok("/x", failures=1, status=503)
    with manager(clock) as cm:
        assert cm.post(app.url("/x"), data=b"payload").status_code == 503
    assert app.hits("/x") == 1


@pytest.mark.parametrize(
    "fault",
    [f.close_without_answer, f.reset_after_request, f.garbage_status, f.broken_chunked],
    ids=lambda fn: fn.__name__,
)
def test_idempotent_request_is_retried_after_a_fault(
    faults: FaultServer, clock: FakeClock, fault: object
) -> None:
    """A GET that meets a connection fault once succeeds on the next attempt."""
    faults.script([fault()])  # type: ignore[operator]
    with manager(clock) as cm:
        response = cm.get(faults.url("/x"))
    assert response.status_code == 200
    assert faults.connections == 2


def test_truncated_body_is_retried_never_returned_short(
    faults: FaultServer, clock: FakeClock
) -> None:
    """A body shorter than Content-Length is a failed attempt; the retry gets it whole."""
    faults.script([f.truncated_body(declared=100, sent=10)])
    with manager(clock) as cm:
        response = cm.get(faults.url("/x"))
    assert response.content == b"ok"
    assert faults.connections == 2


@pytest.mark.parametrize(
    "fault",
    [f.close_without_answer, f.reset_after_request, f.truncated_body],
    ids=lambda fn: fn.__name__,
)
def test_post_whose_bytes_were_sent_is_never_replayed(
    faults: FaultServer, clock: FakeClock, fault: object
) -> None:
    """A POST that reached the server is not sent again; the error is the contract's."""
    faults.script([fault()])  # type: ignore[operator]
    with manager(clock) as cm, pytest.raises(requests.RequestException) as info:
        cm.post(faults.url("/x"), data=b"pay once")
    assert not isinstance(info.value, MaxRetriesExceeded)
    assert info.value.__cause__ is not None
    assert len(faults.requests) == 1
    assert faults.requests[0].body == b"pay once"


def test_post_that_never_connected_is_retried(clock: FakeClock) -> None:
    """A refused connection sent nothing, so even a POST may be retried."""
    with manager(clock, max_retries=2) as cm, pytest.raises(MaxRetriesExceeded) as info:
        cm.post(f"http://127.0.0.1:{free_port()}/x", data=b"x")
    assert isinstance(info.value, rex.ConnectionError)
    assert info.value.attempts == 3


def test_backoff_is_full_jitter_and_capped(app: AppServer, clock: FakeClock) -> None:
    """Each backoff lies in [0, factor * 2**(n-1)], never above the cap."""
    app.fail_then_ok("/x", failures=5, status=500)
    with manager(clock, max_retries=5, backoff_factor=1.0) as cm:
        cm.get(app.url("/x"))
    assert app.hits("/x") == 6
    assert len(clock.sleeps) == 5  # one wait before each retry (the seeded draws are > 0)
    ceilings = [1.0, 2.0, 4.0, 8.0, 16.0]
    assert all(0 < s <= c for s, c in zip(clock.sleeps, ceilings))


def test_backoff_respects_user_retry_backoff_max(app: AppServer, clock: FakeClock) -> None:
    """A user Retry's backoff_max caps every wait."""
    from urllib3.util.retry import Retry

    app.fail_then_ok("/x", failures=6, status=500)
    policy = Retry(total=6, backoff_factor=10, backoff_max=0.5, status_forcelist=[500])
    with manager(clock, retry=policy) as cm:
        assert cm.get(app.url("/x")).status_code == 200
    assert clock.sleeps
    assert max(clock.sleeps) <= 0.5


def test_user_retry_policy_is_used(app: AppServer, clock: FakeClock) -> None:
    """retry= overrides max_retries: its status list and count decide."""
    from urllib3.util.retry import Retry

    app.fail_then_ok("/x", failures=100, status=418)
    policy = Retry(total=1, status_forcelist=[418], backoff_factor=0)
    with manager(clock, retry=policy, max_retries=9) as cm, pytest.raises(MaxRetriesExceeded):
        cm.get(app.url("/x"))
    assert app.hits("/x") == 2


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured_in_both_forms(app: AppServer, clock: FakeClock, form: str) -> None:
    """A 429/503 Retry-After (seconds or HTTP-date) is waited out, then the call retries."""
    # urllib3 reads an HTTP-date against the real wall clock.
    value = "7" if form == "seconds" else formatdate(time.time() + 7, usegmt=True)
    app.retry_after("/x", 503, value)
    with manager(clock) as cm:
        assert cm.get(app.url("/x")).status_code == 200
    assert app.hits("/x") == 2
    (slept,) = clock.sleeps
    # The pause, plus the spread that keeps waiters from waking at once (up to 1 s).
    assert 5.0 < slept <= 8.0


def test_retry_after_longer_than_the_cap_raises_at_once(app: AppServer, clock: FakeClock) -> None:
    """Retry-After above retry_after_max raises RateLimitExceeded without sleeping."""
    app.retry_after("/x", 429, "3600")
    with manager(clock, retry_after_max=60) as cm, pytest.raises(RateLimitExceeded) as info:
        cm.get(app.url("/x"))
    assert info.value.retry_after == pytest.approx(3600)
    assert clock.sleeps == []
    assert app.hits("/x") == 1


def test_retry_after_longer_than_the_deadline_raises_at_once(
    app: AppServer, clock: FakeClock
) -> None:
    """Retry-After beyond the remaining total_timeout raises RateLimitExceeded at once."""
    app.retry_after("/x", 503, "20")
    with manager(clock, total_timeout=10) as cm, pytest.raises(RateLimitExceeded):
        cm.get(app.url("/x"))
    assert clock.sleeps == []


@pytest.mark.parametrize("value", ["soon", "-5", ""])
def test_garbage_retry_after_is_ignored(app: AppServer, clock: FakeClock, value: str) -> None:
    """An unparsable or negative Retry-After falls back to normal backoff."""
    app.retry_after("/x", 503, value)
    with manager(clock, backoff_factor=0.1) as cm:
        assert cm.get(app.url("/x")).status_code == 200
    assert all(s <= 0.1 for s in clock.sleeps)


def test_retry_after_pauses_the_host_for_every_caller(app: AppServer, clock: FakeClock) -> None:
    """A Retry-After seen by one call makes another thread's call to that host wait."""
    app.retry_after("/limited", 429, "30", then_ok=True)
    app.ok("/other")
    with manager(clock, max_retries=0) as cm:
        assert cm.get(app.url("/limited")).status_code == 429
        assert clock.sleeps == []
        result: list[int] = []
        worker = threading.Thread(
            target=lambda: result.append(cm.get(app.url("/other")).status_code)
        )
        worker.start()
        worker.join(10)
        stats = cm.get_stats()["hosts"]
    assert result == [200]
    (slept,) = clock.sleeps
    assert 30.0 <= slept <= 31.0  # the pause, plus up to 1 s of spread
    (host,) = stats.values()
    assert host["throttled"] == 1
    assert host["throttle_wait_seconds"] == pytest.approx(slept)


def test_pause_longer_than_the_cap_refuses_other_callers(app: AppServer, clock: FakeClock) -> None:
    """While a host is paused longer than retry_after_max, calls fail fast."""
    app.retry_after("/limited", 429, "500")
    app.ok("/other")
    with manager(clock, max_retries=0, retry_after_max=100) as cm:
        assert cm.get(app.url("/limited")).status_code == 429
        with pytest.raises(RateLimitExceeded) as info:
            cm.get(app.url("/other"))
    assert info.value.retry_after == pytest.approx(500)
    assert app.hits("/other") == 0
