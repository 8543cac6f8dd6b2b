"""Stress: 32 threads on mixed healthy and faulty hosts; no deadlock, exact stats, flat memory.

CI runs a short version. Run a longer one by hand with, e.g.::

    RCM_STRESS_CALLS=20000 python -m pytest tests/test_stress.py -m stress
"""

from __future__ import annotations

import gc
import itertools
import os
import threading
import tracemalloc
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from werkzeug import Request, Response

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    ConnectionManagerError,
)
from tests.servers import AppServer, free_port

# Rounded to whole rounds over the five URLs, in two halves.
CALLS = max(10, int(os.environ.get("RCM_STRESS_CALLS", "1600")) // 10 * 10)
THREADS = 32

pytestmark = [pytest.mark.stress, pytest.mark.timeout(max(120, CALLS // 20))]


def _flaky_handler() -> object:
    counter = itertools.count(1)
    lock = threading.Lock()

    def handler(request: Request) -> Response:
        with lock:
            n = next(counter)
        return Response("no", status=503) if n % 5 == 0 else Response("ok")

    return handler


def _traced() -> int:
    """Bytes allocated and still alive, leaving out the measuring tools (coverage, tracemalloc)."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(False, "*/coverage/*"),
            tracemalloc.Filter(False, tracemalloc.__file__),
        ]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


def _run_round(cm: ConnectionManager, urls: list[str], calls: int) -> Counter[str]:
    """Send ``calls`` requests round-robin over ``urls`` from 32 threads; tally outcomes."""

    def one(index: int) -> str:
        try:
            response = cm.get(urls[index % len(urls)])
        except CircuitBreakerOpen:
            return "open"
        except requests.RequestException as exc:
            contract = isinstance(exc, ConnectionManagerError)
            return type(exc).__name__ if contract else f"outside the contract: {exc!r}"
        return str(response.status_code)

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(one, i) for i in range(calls)]
        return Counter(f.result(timeout=60) for f in futures)


def test_mixed_load_finishes_counts_exactly_and_keeps_memory_flat() -> None:
    """Every thread finishes; per-host stats equal the servers' counts; memory does not grow."""
    dead_port = free_port()
    with AppServer() as good, AppServer("127.0.0.2") as bad:
        good.ok("/ok")
        good.route("/flaky", _flaky_handler())  # type: ignore[arg-type]
        good.slow("/slow", 0.01)
        bad.ok("/down", b"down", status=500)
        urls = [
            good.url("/ok"),
            good.url("/flaky"),
            good.url("/slow"),
            bad.url("/down"),
            f"http://127.0.0.3:{dead_port}/",
        ]
        with ConnectionManager(
            backoff_factor=0,
            pool_maxsize=THREADS,
            circuit_breaker_failure_threshold=5,
            circuit_breaker_recovery_timeout=0.05,
            timeout=5,
            total_timeout=10,
        ) as cm:
            first = _run_round(cm, urls, CALLS // 2)
            gc.collect()
            tracemalloc.start()
            try:
                before = _traced()
                second = _run_round(cm, urls, CALLS - CALLS // 2)
                gc.collect()
                grown = _traced() - before
            finally:
                tracemalloc.stop()
            stats = cm.get_stats()

    outcomes = first + second
    assert sum(outcomes.values()) == CALLS
    assert not [o for o in outcomes if o.startswith("outside")], outcomes
    assert stats["requests_made"] == CALLS
    hosts = stats["hosts"]
    healthy = hosts[f"http://127.0.0.1:{good.port}"]
    failing = hosts[f"http://127.0.0.2:{bad.port}"]
    dead = hosts[f"http://127.0.0.3:{dead_port}"]
    per_url = CALLS // len(urls)
    assert healthy["requests"] == 3 * per_url
    assert healthy["attempts"] == good.total()
    assert failing["requests"] == per_url
    assert failing["attempts"] == bad.total()
    assert failing["rejected_open"] > 0
    assert dead["requests"] == per_url
    assert outcomes["200"] >= 2 * per_url  # /ok always; /slow always; /flaky mostly
    assert grown < 1024 * 1024, f"memory grew {grown / 1024:.0f} KiB in the second half"
