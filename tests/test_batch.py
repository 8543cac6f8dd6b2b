"""batch_request: concurrent through the shared limiter and breaker, results in input order."""

from __future__ import annotations

import threading

import pytest
import requests

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    RateLimitExceeded,
)
from tests.servers import AppServer, free_port

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window"])
def test_batch_runs_concurrently_through_the_limiter_and_breaker(
    app: AppServer, strategy: str
) -> None:
    """Six calls meet at a 6-party barrier: they were on the wire together."""
    app.barrier("/meet", parties=6, timeout=10)
    with ConnectionManager(
        rate_limit_requests=1000, rate_limit_strategy=strategy, circuit_breaker_failure_threshold=3
    ) as cm:
        results = cm.batch_request([("GET", app.url("/meet"), {})] * 6, max_workers=6)
        hosts = cm.get_stats()["hosts"]
    assert [r.text for r in results] == ["together"] * 6  # type: ignore[union-attr]
    assert app.max_concurrent("/meet") == 6
    assert hosts[f"http://127.0.0.1:{app.port}"]["requests"] == 6


def test_results_are_in_input_order_with_exceptions_in_place(app: AppServer) -> None:
    """Responses and exceptions come back where their request was."""
    app.slow("/slow", 0.3)
    app.ok("/fast", b"fast")
    dead = f"http://127.0.0.1:{free_port()}/"
    data = [
        ("GET", app.url("/slow"), {}),
        ("GET", dead, {}),
        ("POST", app.url("/fast"), {"json": {"a": 1}}),
    ]
    with ConnectionManager(max_retries=0) as cm:
        results = cm.batch_request(data, max_workers=3)
    assert isinstance(results[0], requests.Response)
    assert results[0].status_code == 200
    assert isinstance(results[1], requests.ConnectionError)
    assert isinstance(results[2], requests.Response)
    assert results[2].text == "fast"


def test_return_exceptions_false_raises_the_first_failure_after_all_finished(
    app: AppServer,
) -> None:
    """With return_exceptions=False every call still runs; the first failure is raised."""
    app.ok("/ok")
    dead = f"http://127.0.0.1:{free_port()}/"
    data = [("GET", app.url("/ok"), {}), ("GET", dead, {}), ("GET", app.url("/ok"), {})]
    with ConnectionManager(max_retries=0) as cm, pytest.raises(requests.ConnectionError):
        cm.batch_request(data, return_exceptions=False)
    assert app.hits("/ok") == 2


def test_progress_callback_counts_up_in_the_calling_thread(app: AppServer) -> None:
    """on_progress(done, total) is called once per finished request, 1..total, in the caller."""
    app.ok("/x")
    seen: list[tuple[int, int, str]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total, threading.current_thread().name))

    with ConnectionManager() as cm:
        cm.batch_request([("GET", app.url("/x"), {})] * 5, max_workers=2, on_progress=progress)
    assert [(d, t) for d, t, _ in seen] == [(i, 5) for i in range(1, 6)]
    assert {name for _, _, name in seen} == {threading.current_thread().name}


def test_a_failing_progress_callback_does_not_break_the_batch(app: AppServer) -> None:
    """An exception in on_progress is logged and ignored."""
    app.ok("/x")

    def progress(done: int, total: int) -> None:
        raise RuntimeError("progress bar broke")

    with ConnectionManager() as cm:
        results = cm.batch_request([("GET", app.url("/x"), {})] * 2, on_progress=progress)
    assert all(isinstance(r, requests.Response) for r in results)


def test_batch_shares_the_rate_limit(app: AppServer) -> None:
    """A batch cannot exceed the host's limit: 3 admitted, the rest refused at once."""
    app.ok("/x")
    with ConnectionManager(
        rate_limit_requests=3, rate_limit_period=60, rate_limit_max_wait=0
    ) as cm:
        results = cm.batch_request([("GET", app.url("/x"), {})] * 5, max_workers=5)
    refused = [r for r in results if isinstance(r, RateLimitExceeded)]
    assert len(refused) == 2
    assert app.hits("/x") == 3


def test_batch_respects_an_open_breaker(app: AppServer) -> None:
    """Once the breaker is open the rest of a batch is refused without wire traffic."""
    app.fail_then_ok("/down", failures=100, status=500)
    with ConnectionManager(max_retries=0, circuit_breaker_failure_threshold=2) as cm:
        results = cm.batch_request([("GET", app.url("/down"), {})] * 6, max_workers=1)
    assert [getattr(r, "status_code", None) for r in results[:2]] == [500, 500]
    assert all(isinstance(r, CircuitBreakerOpen) for r in results[2:])
    assert app.hits("/down") == 2


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([("GET", "http://127.0.0.1/")], r"requests_data\[0\]"),
        ([("GET", "http://127.0.0.1/", {}), ("GET", 5, {})], r"requests_data\[1\]"),
        ([("GET", "http://127.0.0.1/", {}), ("GET", "http://127.0.0.1/", [])], r"\[1\].*dict"),
        (["GET http://127.0.0.1/"], r"requests_data\[0\]"),
    ],
)
def test_malformed_items_are_refused_naming_the_index(data: list[object], match: str) -> None:
    """A bad item is a ValueError naming its index; nothing is sent."""
    with ConnectionManager() as cm, pytest.raises(ValueError, match=match):
        cm.batch_request(data)  # type: ignore[arg-type]


def test_empty_batch_and_bad_worker_count() -> None:
    """An empty batch returns []; max_workers must be an int >= 1."""
    with ConnectionManager() as cm:
        assert cm.batch_request([]) == []
        with pytest.raises(ValueError, match="max_workers"):
            cm.batch_request([("GET", "http://127.0.0.1/", {})], max_workers=0)
