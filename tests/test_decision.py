"""The decision after an attempt, without sockets: bare outcomes in, steps out.

As urllib3 tests ``Retry`` with bare ``HTTPResponse`` objects, these tests build outcomes
by hand and check what :func:`decide` and :func:`verdict_of` make of them.
"""

from __future__ import annotations

import random
import socket
import ssl
from email.utils import formatdate
from typing import Any, Optional

import pytest
import requests
import requests.exceptions as rex
import urllib3.exceptions as uex
from urllib3.response import HTTPResponse
from urllib3.util.retry import Retry

from requests_connection_manager._decision import (
    RETRY_AFTER_CEILING,
    GiveUp,
    Retry_,
    backoff,
    decide,
    retry_after_of,
    verdict_of,
)
from requests_connection_manager._exchange import Outcome
from requests_connection_manager.config import RetryConfig
from requests_connection_manager.exceptions import RateLimitExceeded

pytestmark = pytest.mark.timeout(10)

URL = "http://127.0.0.1:1/x"


def _response(status: int, headers: Optional[dict[str, str]] = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.raw = HTTPResponse(
        body=b"", headers=headers or {}, status=status, preload_content=False
    )
    response.headers = requests.structures.CaseInsensitiveDict(headers or {})
    response.url = URL
    return response


def _policy(retries: int = 3, factor: float = 0.5) -> Retry:
    return RetryConfig(max_retries=retries, backoff_factor=factor).policy


def _decide(outcome: Outcome, retry: Optional[Retry] = None, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "retry_after_max": 120.0,
        "now": 100.0,
        "deadline": None,
        "rng": random.Random(4),
    }
    options.update(kwargs)
    method = options.pop("method", "GET")
    return decide(retry or _policy(), method, URL, outcome, **options)


def _error(exc: Exception) -> rex.RequestException:
    return rex.ConnectionError(uex.MaxRetryError(None, "/x", exc))  # type: ignore[arg-type]


# ------------------------------------------------------------------------- responses
def test_a_success_is_returned() -> None:
    """A 200 ends the request with its response."""
    assert _decide(Outcome(_response(200))) == ()


def test_a_retryable_status_is_retried_after_a_jittered_backoff() -> None:
    """A 503 on GET: retry, waiting uniformly within the first backoff step (full jitter)."""
    step = _decide(Outcome(_response(503)))
    assert isinstance(step, Retry_)
    assert 0.0 <= step.wait <= 0.5
    assert step.retry.total == 2


def test_the_same_seed_gives_the_same_wait() -> None:
    """The jitter comes only from the given random source."""
    first = _decide(Outcome(_response(503)), rng=random.Random(9))
    second = _decide(Outcome(_response(503)), rng=random.Random(9))
    assert first.wait == second.wait


def test_a_post_is_not_retried_on_a_status() -> None:
    """urllib3's default allowed methods do not include POST: the 503 is returned."""
    assert _decide(Outcome(_response(503)), method="POST") == ()


def test_retries_used_up_give_up() -> None:
    """No retry left: give up, saying so."""
    assert _decide(Outcome(_response(503)), _policy(retries=0)) == GiveUp("retries exhausted")


def test_a_retry_after_longer_than_allowed_raises_at_once() -> None:
    """A Retry-After of 500 s with retry_after_max 100: RateLimitExceeded, not a wait."""
    outcome = Outcome(_response(429, {"Retry-After": "500"}))
    outcome.retry_after = 500.0
    step = _decide(outcome, retry_after_max=100.0)
    assert isinstance(step, GiveUp)
    assert isinstance(step.error, RateLimitExceeded)
    assert step.error.retry_after == 500.0


def test_a_retry_after_longer_than_the_deadline_raises_at_once() -> None:
    """A Retry-After of 30 s with 10 s left of the deadline: refused at once."""
    outcome = Outcome(_response(503, {"Retry-After": "30"}))
    outcome.retry_after = 30.0
    step = _decide(outcome, deadline=110.0)
    assert isinstance(step, GiveUp)
    assert "the deadline" in str(step.error)


def test_a_host_pause_replaces_the_backoff() -> None:
    """When the response paused the host, the next attempt waits in admission: wait 0."""
    outcome = Outcome(_response(429, {"Retry-After": "2"}))
    outcome.retry_after, outcome.pause = 2.0, 2.0
    step = _decide(outcome)
    assert isinstance(step, Retry_)
    assert step.wait == 0.0


def test_no_retry_when_the_deadline_leaves_no_time() -> None:
    """A backoff that would end past the deadline gives up instead."""
    step = _decide(Outcome(_response(503)), deadline=100.0001, rng=random.Random(1))
    assert step == GiveUp("the deadline leaves no time for another attempt")


def test_no_retry_once_the_breaker_opened() -> None:
    """The attempt that opened the host's breaker is not retried."""
    outcome = Outcome(_response(503))
    outcome.tripped = True
    assert _decide(outcome) == GiveUp("the circuit breaker opened")


def test_a_stream_that_cannot_be_replayed_is_not_retried() -> None:
    """A body that cannot be sent again ends the request."""
    step = _decide(Outcome(_response(503)), replayable=False)
    assert step == GiveUp("the body is a stream that cannot be sent again")


# ---------------------------------------------------------------------------- errors
def test_a_refused_connection_is_retried() -> None:
    """A connection error on GET is retried."""
    error = _error(uex.NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    assert isinstance(_decide(Outcome(error=error)), Retry_)


def test_a_read_error_on_post_is_not_replayed() -> None:
    """Bytes may have reached the server: a POST read error is not safe to replay."""
    error = rex.ConnectionError(uex.ProtocolError("reset", ConnectionResetError()))
    step = _decide(Outcome(error=error), method="POST")
    assert step == GiveUp("not safe to replay")


def test_the_callers_deadline_ends_the_request() -> None:
    """An attempt cut by total_timeout is not retried."""
    outcome = Outcome(error=rex.ReadTimeout("late"), deadline_hit=True)
    assert _decide(outcome) == GiveUp("total_timeout expired")


def test_local_and_client_side_errors_are_not_retried() -> None:
    """A missing CA bundle or an invalid header says nothing a retry could change."""
    assert _decide(Outcome(error=OSError("no CA"), local=True)) == GiveUp("not retryable")  # type: ignore[arg-type]
    assert _decide(Outcome(error=rex.InvalidHeader("bad"))) == GiveUp("not retryable")


@pytest.mark.parametrize(
    "low",
    [
        ssl.SSLCertVerificationError(1, "certificate verify failed"),
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    ],
)
def _raised_from(outer: Exception, cause: BaseException) -> Exception:
    """``outer`` as urllib3 raises it: ``raise outer from cause``."""
    try:
        raise outer from cause
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    "low",
    [
        _raised_from(
            uex.SSLError("certificate verify failed"),
            ssl.SSLCertVerificationError(1, "certificate verify failed"),
        ),
        _raised_from(
            uex.NameResolutionError("nowhere.invalid", None, socket.gaierror(-2, "x")),  # type: ignore[arg-type]
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        ),
    ],
)
def test_errors_a_retry_cannot_fix_are_not_retried(low: Exception) -> None:
    """TLS verification and an unknown host name fail the same way every time."""
    assert _decide(Outcome(error=_error(low))) == GiveUp("retrying cannot help")


# --------------------------------------------------------------------------- verdict
@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        (Outcome(_response(200)), "success"),
        (Outcome(_response(404)), "success"),
        (Outcome(_response(429)), "success"),
        (Outcome(_response(500)), "failure"),
        (Outcome(_response(503)), "failure"),
        (Outcome(error=rex.ConnectionError("refused")), "failure"),
        (Outcome(error=rex.ReadTimeout("slow")), "failure"),
        (Outcome(error=rex.ChunkedEncodingError("short")), "failure"),
        (Outcome(error=rex.ReadTimeout("late"), deadline_hit=True), "neutral"),
        (Outcome(error=rex.InvalidURL("bad")), "neutral"),
    ],
)
def test_what_an_outcome_says_about_its_host(outcome: Outcome, verdict: str) -> None:
    """5xx and wire failures count against the host; 4xx and the caller's own limits do not."""
    assert verdict_of(outcome) == verdict


# ----------------------------------------------------------------------- Retry-After
@pytest.mark.parametrize(
    ("status", "value", "seconds"),
    [
        (429, "7", 7.0),
        (503, "0", None),
        (503, "garbage", None),
        (503, "-3", None),
        (429, "9" * 400, RETRY_AFTER_CEILING),
        (500, "7", None),
    ],
)
def test_retry_after_values(status: int, value: str, seconds: Optional[float]) -> None:
    """Seconds are read; 0, garbage, negatives and other statuses ask for nothing; huge caps."""
    response = _response(status, {"Retry-After": value})
    assert retry_after_of(_policy(), response) == seconds


def test_a_retry_after_date_is_read_in_seconds() -> None:
    """An HTTP-date a minute ahead reads as about 60 s."""
    import time

    response = _response(503, {"Retry-After": formatdate(time.time() + 60, usegmt=True)})
    seconds = retry_after_of(_policy(), response)
    assert seconds is not None
    assert 55 < seconds <= 60


def test_backoff_is_capped_by_the_policy() -> None:
    """Full jitter within factor * 2 ** (n - 1), never above backoff_max."""
    retry = Retry(10, backoff_factor=1.0, backoff_max=4.0)
    for _ in range(5):
        retry = retry.increment("GET", "/x", error=uex.ProtocolError("x"))
    draws = [backoff(retry, random.Random(seed)) for seed in range(50)]
    assert max(draws) <= 4.0
    assert min(draws) >= 0.0
    assert backoff(Retry(3, backoff_factor=0), random.Random(1)) == 0.0
