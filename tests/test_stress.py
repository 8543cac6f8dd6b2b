"""Stress: 32 threads on mixed healthy and faulty hosts; no deadlock, exact stats, flat memory.

CI runs a short version. Run a longer one by hand with, e.g.::

    RCM_STRESS_CALLS=100000 python -m pytest tests/test_stress.py -m stress

What the memory check measures, and why: the client, and only the client.

* The servers run in another process (:mod:`tests.stress_servers`) and keep counts, not
  records. In-process, their per-request allocations (werkzeug's request objects,
  http.server's header parsing, the request log) grew by ~8 MiB over a 20,000-call run and
  were reported as the library's growth. Filtering tracemalloc by frames does not fix that:
  CPython reuses freed objects from free lists without a new allocation, so a dict the
  server keeps can carry the traceback of a dict the client allocated and freed earlier
  (seen: ~120 bytes per call "in urllib3's poolmanager.py", which were the server's records).
* The library's log records are counted and dropped by a filter on its logger, so they
  never reach pytest's log capture, which keeps every record it receives (it attaches
  itself to non-propagating loggers too) while breakers open thousands of times in a long
  run: ~3 MiB of LogRecords at 100,000 calls.
* tracemalloc starts after the first half (warm-up: pools, host table, classes, caches)
  and the second half must leave less than 1 MiB more allocated, however long the run.
  On failure the message lists the lines that grew most.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import select
import subprocess
import sys
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    ConnectionManagerError,
)
from tests.servers import free_port

# Rounded to whole rounds over the five URLs, in two halves.
CALLS = max(10, int(os.environ.get("RCM_STRESS_CALLS", "1600")) // 10 * 10)
THREADS = 32
ROOT = Path(__file__).resolve().parent.parent
LOGGER = "requests_connection_manager"

pytestmark = [
    pytest.mark.stress,
    pytest.mark.timeout(max(120, CALLS // 20)),
    pytest.mark.skipif(sys.platform == "win32", reason="select() on a pipe needs POSIX"),
]


class _Servers:
    """The server process: its ports, and its request counts on demand."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        ports = json.loads(self._line())
        self.good: int = ports["good"]
        self.bad: int = ports["bad"]

    def _line(self, timeout: float = 20.0) -> str:
        stdout = self._process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        assert ready, "the server process did not answer"
        return stdout.readline()

    def totals(self) -> dict[str, int]:
        """Requests each server received so far."""
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write("totals\n")
        stdin.flush()
        result: dict[str, int] = json.loads(self._line())
        return result


@contextmanager
def _server_process() -> Iterator[_Servers]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.stress_servers"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield _Servers(process)
    finally:
        try:
            assert process.stdin is not None
            process.stdin.write("stop\n")
            process.stdin.close()
            process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def library_log_counts() -> Iterator[Counter[str]]:
    """Count the library's log records by level and drop them before any handler sees them."""
    counts: Counter[str] = Counter()

    def count_and_drop(record: logging.LogRecord) -> bool:
        counts[record.levelname] += 1
        return False

    logger = logging.getLogger(LOGGER)
    logger.addFilter(count_and_drop)
    try:
        yield counts
    finally:
        logger.removeFilter(count_and_drop)


def _snapshot() -> tracemalloc.Snapshot:
    """Live traced blocks, leaving out the measuring tools and pytest's own machinery."""
    return tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "*/coverage/*"),
            tracemalloc.Filter(False, "*/_pytest/*"),
            tracemalloc.Filter(False, "*/pluggy/*"),
        ]
    )


def _size(snapshot: tracemalloc.Snapshot) -> int:
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


def test_mixed_load_finishes_counts_exactly_and_keeps_memory_flat(
    library_log_counts: Counter[str],
) -> None:
    """Every thread finishes; per-host stats equal the servers' counts; memory does not grow."""
    dead_port = free_port()
    with _server_process() as servers:
        good = f"http://127.0.0.1:{servers.good}"
        bad = f"http://127.0.0.2:{servers.bad}"
        urls = [
            f"{good}/ok",
            f"{good}/flaky",
            f"{good}/slow",
            f"{bad}/down",
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
                before = _snapshot()
                second = _run_round(cm, urls, CALLS - CALLS // 2)
                gc.collect()
                after = _snapshot()
            finally:
                tracemalloc.stop()
            stats = cm.get_stats()
        totals = servers.totals()

    outcomes = first + second
    assert sum(outcomes.values()) == CALLS
    assert not [o for o in outcomes if o.startswith("outside")], outcomes
    assert stats["requests_made"] == CALLS
    hosts = stats["hosts"]
    healthy = hosts[good]
    failing = hosts[bad]
    dead = hosts[f"http://127.0.0.3:{dead_port}"]
    per_url = CALLS // len(urls)
    assert healthy["requests"] == 3 * per_url
    assert healthy["attempts"] == totals["good"]
    assert failing["requests"] == per_url
    assert failing["attempts"] == totals["bad"]
    assert failing["rejected_open"] > 0
    assert dead["requests"] == per_url
    assert outcomes["200"] >= 2 * per_url  # /ok always; /slow always; /flaky mostly
    opened = sum(host["breaker_opened"] for host in hosts.values())
    assert library_log_counts["WARNING"] == opened  # one "opened" warning per opening
    grown = _size(after) - _size(before)
    print(f"stress: {CALLS} calls; the second half grew {grown} bytes")  # shown with -s
    top = "\n".join(str(stat) for stat in after.compare_to(before, "lineno")[:10])
    assert grown < 1024 * 1024, f"memory grew {grown / 1024:.0f} KiB in the second half:\n{top}"
