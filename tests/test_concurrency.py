"""Threads: real concurrency through one manager, exact counters, no lock on the wire."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from werkzeug.wrappers import Request, Response

from requests_connection_manager import ConnectionManager, ConnectionManagerError
from tests.servers import AppServer

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"rate_limit_requests": 1000, "rate_limit_period": 60},
        {
            "rate_limit_requests": 1000,
            "rate_limit_period": 60,
            "rate_limit_strategy": "sliding-window",
        },
    ],
    ids=["defaults", "fixed-window", "sliding-window"],
)
def test_eight_calls_are_on_the_wire_at_once(app: AppServer, config: dict[str, object]) -> None:
    """A barrier endpoint answers only with 8 requests inside at once: no lock serialises."""
    app.barrier("/together", parties=8, timeout=10)
    cm = ConnectionManager(pool_maxsize=8, **config)  # type: ignore[arg-type]
    with cm, ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: cm.get(app.url("/together")).text, range(8)))
    assert bodies == ["together"] * 8
    assert app.max_concurrent("/together") == 8


def test_session_calls_run_concurrently_too(app: AppServer) -> None:
    """cm.session is protected by the same pipeline and is just as concurrent."""
    app.barrier("/together", parties=4, timeout=10)
    with ConnectionManager() as cm, ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: cm.session.get(app.url("/together")).status_code, range(4)))
    assert codes == [200] * 4


def test_counters_are_exact_under_threads(app: AppServer) -> None:
    """After 400 threaded calls with retries, stats equal what the server counted."""
    lock = threading.Lock()
    tries: dict[str, int] = {}

    def flaky(request: Request) -> Response:
        call = request.headers["X-Call"]
        with lock:
            tries[call] = tries.get(call, 0) + 1
            attempt = tries[call]
        # Every third call fails its first attempt, every ninth its first two.
        failures = 2 if int(call) % 9 == 0 else 1 if int(call) % 3 == 0 else 0
        return Response("no", status=503) if attempt <= failures else Response("ok")

    app.route("/x", flaky)
    with ConnectionManager(
        backoff_factor=0,
        circuit_breaker_failure_threshold=None,
        retry_budget=None,
        pool_maxsize=16,
    ) as cm:
        with ThreadPoolExecutor(16) as pool:
            codes = list(
                pool.map(
                    lambda i: cm.get(app.url("/x"), headers={"X-Call": str(i)}).status_code,
                    range(1, 401),
                )
            )
        stats = cm.get_stats()
    host = stats["hosts"][f"http://127.0.0.1:{app.port}"]
    assert codes == [200] * 400
    assert stats["requests_made"] == 400
    assert host["requests"] == 400
    assert host["attempts"] == app.hits("/x")
    assert host["retries"] == host["attempts"] - 400
    assert host["failures"] == host["retries"]
    assert host["retries"] == 133 + 44  # calls divisible by 3 retry once, by 9 once more


def test_closed_manager_refuses_calls_with_a_clear_message(app: AppServer) -> None:
    """After close(), the manager and its session say they are closed."""
    app.ok("/x")
    cm = ConnectionManager()
    cm.get(app.url("/x"))
    cm.close()
    cm.close()  # idempotent
    assert cm.closed
    with pytest.raises(ConnectionManagerError, match="closed"):
        cm.get(app.url("/x"))
    with pytest.raises(ConnectionManagerError, match="closed"):
        cm.session.get(app.url("/x"))
    assert app.hits("/x") == 1


def test_close_wakes_a_waiting_call(app: AppServer) -> None:
    """A call waiting for a rate-limit permit ends when the manager closes."""
    app.ok("/x")
    cm = ConnectionManager(rate_limit_requests=1, rate_limit_period=3600)
    cm.get(app.url("/x"))
    errors: list[BaseException] = []

    def wait_for_permit() -> None:
        try:
            cm.get(app.url("/x"))
        except requests.RequestException as exc:
            errors.append(exc)

    worker = threading.Thread(target=wait_for_permit)
    worker.start()
    # Wait (bounded) until the call is registered as throttled, then close.
    for _ in range(500):
        if cm.get_stats()["hosts"] and next(iter(cm.get_stats()["hosts"].values()))["throttled"]:
            break
        threading.Event().wait(0.01)
    cm.close()
    worker.join(10)
    assert not worker.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], ConnectionManagerError)
    assert "closed" in str(errors[0])


def test_session_is_a_real_requests_session(app: AppServer) -> None:
    """cm.session is a requests.Session whose calls retry like the manager's."""
    app.fail_then_ok("/x", failures=2, status=503)
    with ConnectionManager(backoff_factor=0) as cm:
        assert isinstance(cm.session, requests.Session)
        assert cm.session.get(app.url("/x")).status_code == 200
        assert cm.get_stats()["requests_made"] == 1
    assert app.hits("/x") == 3


def test_no_threads_left_after_close(app: AppServer) -> None:
    """Using and closing a manager leaves no thread behind."""
    app.ok("/x")
    before = threading.active_count()
    with ConnectionManager(rate_limit_requests=100) as cm, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: cm.get(app.url("/x")), range(20)))
    # The server's per-connection threads end when they see the client close its
    # keep-alive connections, a moment later: wait for that, bounded.
    for _ in range(500):
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.01)
    assert threading.active_count() == before
