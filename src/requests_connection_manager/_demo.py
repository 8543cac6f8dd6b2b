"""The embedded demo: a flaky local HTTP service driven through one ConnectionManager.

:func:`run_demo` starts four small HTTP/1.1 servers on ``127.0.0.1`` (ephemeral ports, so
each is its own host key), each with a scripted, deterministic behaviour:

- ``steady``: always 200 after a few milliseconds;
- ``flaky``: one request in three answers 503, so retries show;
- ``throttled``: 429 with ``Retry-After: 1`` to its first request and once more later, so
  the host pause (every thread waits) shows;
- ``outage``: 503 to everything during the first :data:`OUTAGE_SECONDS` of the workload,
  then 200, so the circuit breaker opens, refuses calls fast, probes and closes.

A thread pool then sends a paced workload through a single :class:`ConnectionManager`,
counts each call's outcome, records the breaker transitions from the library's log, and
prints a per-host table from ``get_stats()``. Only the standard library and this package
are used. Output goes to the streams passed in (stdout and stderr by default).
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import textwrap
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable, Optional, TextIO, cast

from ._manager import ConnectionManager
from .events import BreakerStateChanged
from .exceptions import (
    CircuitBreakerOpen,
    ConnectionManagerError,
    MaxRetriesExceeded,
    RateLimitExceeded,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = [
    "DEFAULT_REQUESTS",
    "DEFAULT_SEED",
    "DEFAULT_WORKERS",
    "MIN_REQUESTS",
    "OUTAGE_SECONDS",
    "DemoServer",
    "run_demo",
]

DEFAULT_WORKERS = 8
DEFAULT_REQUESTS = 120
DEFAULT_SEED = 7
#: Fewer calls than this cannot show every behaviour (the outage needs calls after it).
MIN_REQUESTS = 20

#: Loopback only: the demo never listens on a public interface.
HOST = "127.0.0.1"
#: The calls are submitted evenly over this many seconds, whatever their number.
SUBMIT_SECONDS = 4.0
#: The ``outage`` server answers 503 for this long after the workload starts.
OUTAGE_SECONDS = 1.5
#: The ``throttled`` server sends its second 429 to the first request after this time.
SECOND_429_AFTER = 2.5
#: The ``Retry-After`` the ``throttled`` server sends, in seconds.
RETRY_AFTER = 1
#: The client-side rate limit: requests per second, per host.
RATE_LIMIT = 10

# The manager the demo drives; kept here so the explanation can quote it.
MANAGER_SETTINGS: dict[str, Any] = {
    "max_retries": 3,
    "backoff_factor": 0.05,
    "rate_limit_requests": RATE_LIMIT,
    "rate_limit_period": 1,
    "circuit_breaker_failure_threshold": 3,
    "circuit_breaker_recovery_timeout": 1.0,
    "timeout": 5,
    "total_timeout": 10,
}

# Width the explanation is wrapped to.
_WRAP = 100

# Outcome labels, in the order they are printed.
OK = "ok"
HTTP_ERROR = "http error"
BREAKER_OPEN = "breaker open"
RATE_LIMITED = "rate limited"
RETRIES_EXHAUSTED = "max retries"
OTHER = "other error"
UNEXPECTED = "unexpected"
OUTCOMES = (OK, HTTP_ERROR, BREAKER_OPEN, RATE_LIMITED, RETRIES_EXHAUSTED, OTHER, UNEXPECTED)


# --------------------------------------------------------------------------- the servers
@dataclass(frozen=True)
class Reply:
    """What a demo server answers to one request.

    Attributes:
        status: The HTTP status.
        delay: Seconds to wait before answering.
        headers: Extra response headers.
    """

    status: int
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


#: A behaviour: ``(hit number from 1, seconds since the workload started or None, rng)``.
Behaviour = Callable[[int, Optional[float], random.Random], Reply]


def _small_delay(rng: random.Random) -> float:
    return rng.uniform(0.002, 0.008)


def steady(hit: int, elapsed: Optional[float], rng: random.Random) -> Reply:
    """Always 200, after a few milliseconds."""
    return Reply(200, _small_delay(rng))


def flaky(hit: int, elapsed: Optional[float], rng: random.Random) -> Reply:
    """Every third request (by arrival) answers 503, the others 200."""
    return Reply(503 if hit % 3 == 0 else 200, _small_delay(rng))


class Throttled:
    """429 with ``Retry-After`` to the first request and once more after a while, else 200."""

    def __init__(self) -> None:
        self._second_sent = False

    def __call__(self, hit: int, elapsed: Optional[float], rng: random.Random) -> Reply:
        """Answer one request (called under the server's lock)."""
        throttle = hit == 1
        if not throttle and not self._second_sent and (elapsed or 0.0) >= SECOND_429_AFTER:
            self._second_sent = throttle = True
        if throttle:
            return Reply(429, 0.001, (("Retry-After", str(RETRY_AFTER)),))
        return Reply(200, _small_delay(rng))


def outage(hit: int, elapsed: Optional[float], rng: random.Random) -> Reply:
    """503 (no ``Retry-After``) during the first ``OUTAGE_SECONDS`` of the workload, then 200."""
    if elapsed is not None and elapsed < OUTAGE_SECONDS:
        return Reply(503, 0.001)
    return Reply(200, _small_delay(rng))


class _Handler(BaseHTTPRequestHandler):
    """Answers every GET from its server's behaviour, with Content-Length and keep-alive."""

    protocol_version = "HTTP/1.1"
    server_version = "rcm-demo/1"
    # An idle keep-alive connection is dropped after this many seconds.
    timeout = 30

    def do_GET(self) -> None:
        server = cast("DemoServer", self.server)
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)  # keep the connection usable
        hit, reply = server.decide()
        if reply.delay > 0:
            time.sleep(reply.delay)
        body = json.dumps(
            {"server": server.name, "hit": hit, "status": reply.status}, separators=(",", ":")
        ).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: the demo reports through its own table."""


class DemoServer(ThreadingHTTPServer):
    """One scripted HTTP/1.1 server on ``127.0.0.1`` and an ephemeral port.

    Args:
        name: The name shown in the demo's output.
        behaviour: Decides each reply; called under the server's lock.
        seed: Seeds the server's own ``random.Random`` (the reply delays).
    """

    daemon_threads = True

    def __init__(self, name: str, behaviour: Behaviour, seed: int) -> None:
        super().__init__((HOST, 0), _Handler)
        self.name = name
        self._behaviour = behaviour
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._started: Optional[float] = None
        self._thread: Optional[threading.Thread] = None
        self.hits = 0
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self.server_address[1])

    @property
    def key(self) -> str:
        """The manager's host key for this server."""
        return f"http://{HOST}:{self.port}"

    @property
    def label(self) -> str:
        """``name:port``, as shown in the output."""
        return f"{self.name}:{self.port}"

    def start(self) -> None:
        """Serve from a daemon thread."""
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"rcm-demo-{self.name}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket. Safe to call once after start."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()

    def start_workload(self, now: float) -> None:
        """Start the clock that time-driven behaviours read (``time.monotonic`` reading)."""
        with self._lock:
            self._started = now

    def decide(self) -> tuple[int, Reply]:
        """Count a request and decide its reply.

        Returns:
            The request's hit number (from 1) and the reply.
        """
        with self._lock:
            self.hits += 1
            elapsed = None if self._started is None else time.monotonic() - self._started
            reply = self._behaviour(self.hits, elapsed, self._rng)
            self.statuses[reply.status] += 1
            return self.hits, reply

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up; record anything else (reported at the end)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        with self._lock:
            self.errors.append(traceback.format_exc())


def _make_servers(seed: int) -> list[DemoServer]:
    behaviours: list[tuple[str, Behaviour]] = [
        ("steady", steady),
        ("flaky", flaky),
        ("throttled", Throttled()),
        ("outage", outage),
    ]
    servers: list[DemoServer] = []
    try:
        for offset, (name, behaviour) in enumerate(behaviours):
            servers.append(DemoServer(name, behaviour, seed + offset))
    except BaseException:
        for server in servers:
            server.server_close()
        raise
    return servers


@contextlib.contextmanager
def _serving(servers: Sequence[DemoServer]) -> Iterator[None]:
    """Run the servers for the duration of the block; always shut them down."""
    started: list[DemoServer] = []
    try:
        for server in servers:
            server.start()
            started.append(server)
        yield
    finally:
        for server in servers:
            if server in started:
                server.stop()
            else:
                server.server_close()


# ------------------------------------------------------------------- workload bookkeeping
@dataclass
class _Tally:
    """Outcome counts, overall and per host, plus the details of anything unexpected."""

    total: int
    on_update: Callable[[int, Counter[str]], None]
    done: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    per_host: dict[str, Counter[str]] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, host: str, outcome: str, detail: Optional[str] = None) -> None:
        with self.lock:
            self.done += 1
            self.counts[outcome] += 1
            self.per_host.setdefault(host, Counter())[outcome] += 1
            if detail is not None:
                self.details.append(detail)
            self.on_update(self.done, self.counts)


class _Progress:
    """One updating stderr line on a terminal; a line every 25 % otherwise."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self._total = total
        self._stream = stream
        self._enabled = enabled
        self._tty = enabled and _isatty(stream)
        self._next_quarter = 1
        self._width = 0

    def _line(self, done: int, counts: Counter[str]) -> str:
        shown = ", ".join(f"{name} {counts[name]}" for name in OUTCOMES if counts[name])
        return f"demo: {done}/{self._total} calls done ({shown or 'none yet'})"

    def update(self, done: int, counts: Counter[str]) -> None:
        """Show the progress after a call finished (called under the tally's lock)."""
        if not self._enabled:
            return
        line = self._line(done, counts)
        if self._tty:
            padding = " " * max(0, self._width - len(line))
            self._width = len(line)
            print(f"\r{line}{padding}", end="", file=self._stream, flush=True)
            return
        crossed = False
        while self._next_quarter <= 4 and done * 4 >= self._total * self._next_quarter:
            self._next_quarter += 1
            crossed = True
        if crossed:
            print(line, file=self._stream, flush=True)

    def finish(self) -> None:
        """End the updating line."""
        if self._tty and self._width:
            print(file=self._stream, flush=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _BreakerTimeline:
    """Collects the breaker transitions of the manager's event stream, with their times."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str]] = []

    def __call__(self, event: Any) -> None:
        if isinstance(event, BreakerStateChanged):
            was = event.old or "new"
            if event.new == "open":
                text = f"circuit breaker for {event.host} opened (was {was})"
            else:
                text = f"circuit breaker for {event.host}: {was} -> {event.new}"
            self.events.append((event.time, text))


def _one_call(cm: ConnectionManager, server: DemoServer, index: int, tally: _Tally) -> None:
    """Make one call and count its outcome; never lets an error pass unrecorded."""
    url = f"{server.key}/items/{index}"
    try:
        response = cm.get(url)
    except CircuitBreakerOpen:
        tally.add(server.name, BREAKER_OPEN)
    except RateLimitExceeded:
        tally.add(server.name, RATE_LIMITED)
    except MaxRetriesExceeded:
        tally.add(server.name, RETRIES_EXHAUSTED)
    except ConnectionManagerError as exc:
        tally.add(
            server.name, OTHER, f"call {index} to {server.label}: {type(exc).__name__}: {exc}"
        )
    except Exception:  # noqa: BLE001 - recorded with its traceback and reported as a failure
        tally.add(
            server.name, UNEXPECTED, f"call {index} to {server.label}:\n{traceback.format_exc()}"
        )
    else:
        status = response.status_code
        response.close()
        tally.add(server.name, OK if status < 400 else HTTP_ERROR)


def _schedule(servers: Sequence[DemoServer], total: int, rng: random.Random) -> list[DemoServer]:
    """Spread the calls evenly: every round of ``len(servers)`` calls visits each server once."""
    plan: list[DemoServer] = []
    while len(plan) < total:
        order = list(servers)
        rng.shuffle(order)
        plan.extend(order)
    return plan[:total]


def _drive(
    cm: ConnectionManager,
    plan: Sequence[DemoServer],
    workers: int,
    tally: _Tally,
    start: float,
) -> None:
    """Submit the calls at an even pace from ``start`` and wait for all of them."""
    interval = SUBMIT_SECONDS / len(plan)
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rcm-demo-worker")
    futures: list[Future[None]] = []
    try:
        for index, server in enumerate(plan):
            delay = start + index * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(executor.submit(_one_call, cm, server, index, tally))
        for future in futures:
            future.result()  # _one_call records its errors; this re-raises only BaseException
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


# ------------------------------------------------------------------------------ report
def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> list[str]:
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [fmt(headers), rule, *(fmt(row) for row in rows)]


TABLE_HEADERS = (
    "host",
    "requests",
    "attempts",
    "retries",
    "failures",
    "throttled",
    "throttle wait s",
    "rejected",
    "breaker opened",
    "breaker state",
)


def _host_rows(servers: Sequence[DemoServer], hosts: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    for server in servers:
        s = hosts.get(server.key)
        if s is None:
            rows.append([server.label, *(["-"] * (len(TABLE_HEADERS) - 1))])
            continue
        rows.append(
            [
                server.label,
                str(s["requests"]),
                str(s["attempts"]),
                str(s["retries"]),
                str(s["failures"]),
                str(s["throttled"]),
                f"{s['throttle_wait_seconds']:.2f}",
                str(s["rejected_open"]),
                str(s["breaker_opened"]),
                str(s["breaker_state"]),
            ]
        )
    return rows


def _check_stats(
    servers: Sequence[DemoServer],
    plan: Sequence[DemoServer],
    stats: dict[str, Any],
    tally: _Tally,
) -> list[str]:
    """Cross-check the manager's counters with what the servers and the callers saw."""
    total = tally.total
    problems: list[str] = []
    hosts: dict[str, Any] = stats["hosts"]
    if stats["requests_made"] != total:
        problems.append(f"get_stats()['requests_made'] is {stats['requests_made']}, sent {total}")
    for server in servers:
        s = hosts.get(server.key)
        if s is None:
            problems.append(f"get_stats()['hosts'] has no entry for {server.key}")
            continue
        planned = sum(1 for p in plan if p is server)
        checks = (
            ("requests", s["requests"], planned, "calls made"),
            ("attempts", s["attempts"], server.hits, "requests the server received"),
            (
                "failures",
                s["failures"],
                sum(n for status, n in server.statuses.items() if status >= 500),
                "5xx answers the server sent",
            ),
        )
        for name, got, expected, what in checks:
            if got != expected:
                problems.append(f"{server.label}: stats '{name}' is {got} but {what}: {expected}")
        refused = tally.per_host.get(server.name, Counter())[BREAKER_OPEN]
        if s["rejected_open"] != refused:
            problems.append(
                f"{server.label}: stats 'rejected_open' is {s['rejected_open']} but "
                f"{refused} calls raised CircuitBreakerOpen"
            )
        if not 0 <= s["retries"] <= s["attempts"]:
            problems.append(f"{server.label}: retries {s['retries']} > attempts {s['attempts']}")
    return problems


def _explain(servers: dict[str, DemoServer], hosts: dict[str, Any], tally: _Tally) -> list[str]:
    def host(name: str) -> dict[str, Any]:
        return cast("dict[str, Any]", hosts.get(servers[name].key, {}))

    flaky_s, throttled_s, outage_s = host("flaky"), host("throttled"), host("outage")
    flaky_ok = tally.per_host.get("flaky", Counter())[OK]
    flaky_calls = flaky_s.get("requests", 0)
    outage_refused = tally.per_host.get("outage", Counter())[BREAKER_OPEN]
    lines = [
        f"flaky: {flaky_s.get('retries', 0)} retries absorbed "
        f"{servers['flaky'].statuses[503]} transient 503s; {flaky_ok} of {flaky_calls} calls "
        "succeeded all the same.",
        f"throttled: its 429s with Retry-After: {RETRY_AFTER} paused the host for every "
        f"thread instead of each thread retrying on its own; {throttled_s.get('throttled', 0)} "
        f"attempts waited, {throttled_s.get('throttle_wait_seconds', 0.0):.2f} s summed over "
        f"threads ('throttled' also counts waits for the client limit of {RATE_LIMIT}/s "
        "per host).",
        f"outage: {MANAGER_SETTINGS['circuit_breaker_failure_threshold']} consecutive 503s "
        f"opened its breaker ({outage_s.get('breaker_opened', 0)} opening(s), a failed "
        f"probe reopens it); {outage_refused} calls failed fast with CircuitBreakerOpen "
        "without touching the network, until a half-open probe succeeded and closed it "
        f"(now {outage_s.get('breaker_state', '?')}).",
    ]
    return [
        textwrap.fill(line, width=_WRAP, initial_indent="- ", subsequent_indent="  ")
        for line in lines
    ]


def _timeline_lines(
    events: Sequence[tuple[float, str]], start: float, servers: Sequence[DemoServer]
) -> list[str]:
    lines = []
    for when, message in events:
        for server in servers:
            message = message.replace(server.key, f"{server.label}")
        lines.append(f"  {when - start:+7.3f} s  {message}")
    return lines or ["  (no breaker transitions)"]


# -------------------------------------------------------------------------------- entry
@dataclass
class _Run:
    """What one run of the demo measured."""

    servers: list[DemoServer]
    plan: list[DemoServer]
    tally: _Tally
    timeline: _BreakerTimeline
    stats: dict[str, Any]
    start: float
    elapsed: float


def _run(workers: int, requests: int, seed: int, progress: _Progress) -> _Run:
    """Serve the demo hosts, drive the calls through one manager, collect what happened."""
    rng = random.Random(seed)
    servers = _make_servers(seed)
    plan = _schedule(servers, requests, rng)
    tally = _Tally(requests, progress.update)
    timeline = _BreakerTimeline()
    with _serving(servers):
        cm = ConnectionManager(pool_maxsize=max(10, workers), on_event=timeline, **MANAGER_SETTINGS)
        try:
            start = time.monotonic()
            for server in servers:
                server.start_workload(start)
            try:
                _drive(cm, plan, workers, tally, start)
            finally:
                progress.finish()
            elapsed = time.monotonic() - start
            stats = cm.get_stats()  # before close(): closing forgets the hosts
        finally:
            cm.close()
    return _Run(servers, plan, tally, timeline, stats, start, elapsed)


def _report(run: _Run, requests: int, workers: int, seed: int, out: TextIO) -> None:
    hosts: dict[str, Any] = run.stats["hosts"]
    by_name = {server.name: server for server in run.servers}
    lines = [
        f"requests-connection-manager demo: {requests} calls, {workers} workers, seed {seed}",
        "",
        *_table(TABLE_HEADERS, _host_rows(run.servers, hosts), set(range(1, 9))),
        "",
        "outcomes: " + ", ".join(f"{name} {run.tally.counts[name]}" for name in OUTCOMES),
        f"elapsed: {run.elapsed:.2f} s",
        "",
        "breaker timeline (seconds from the start of the workload):",
        *_timeline_lines(run.timeline.events, run.start, run.servers),
        "",
        "what happened:",
        *_explain(by_name, hosts, run.tally),
    ]
    print("\n".join(lines), file=out)


def _problems(run: _Run, requests: int) -> list[str]:
    tally, hosts = run.tally, run.stats["hosts"]
    by_name = {server.name: server for server in run.servers}
    problems: list[str] = []
    if tally.done != requests:
        problems.append(f"only {tally.done} of {requests} calls finished")
    for outcome in (OTHER, UNEXPECTED):
        if tally.counts[outcome]:
            problems.append(f"{tally.counts[outcome]} call(s) ended with outcome {outcome!r}")
    outage_stats = hosts.get(by_name["outage"].key, {})
    if outage_stats.get("breaker_opened", 0) < 1:
        problems.append("the outage host's circuit breaker never opened")
    if outage_stats.get("breaker_state") != "closed":
        problems.append(
            "the outage host's circuit breaker is "
            f"{outage_stats.get('breaker_state', 'missing')} at the end, not closed"
        )
    for server in run.servers:
        problems.extend(f"{server.label} server error:\n{text}" for text in server.errors)
    problems.extend(_check_stats(run.servers, run.plan, run.stats, tally))
    return problems


def run_demo(
    *,
    workers: int = DEFAULT_WORKERS,
    requests: int = DEFAULT_REQUESTS,
    seed: int = DEFAULT_SEED,
    quiet: bool = False,
    out: Optional[TextIO] = None,
    err: Optional[TextIO] = None,
) -> int:
    """Run the demo and print its report.

    Args:
        workers: Threads sending calls concurrently, >= 1.
        requests: Calls to make in total, >= ``MIN_REQUESTS``.
        seed: Seed for every random choice (call order, reply delays).
        quiet: Do not show progress on ``err``.
        out: Where the report goes; ``sys.stdout`` by default.
        err: Where progress and problems go; ``sys.stderr`` by default.

    Returns:
        0 when the demo behaved as designed, 1 otherwise (the reasons are printed).

    Raises:
        ValueError: ``workers`` or ``requests`` is out of range.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if requests < MIN_REQUESTS:
        raise ValueError(f"requests must be >= {MIN_REQUESTS}, got {requests}")
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    run = _run(workers, requests, seed, _Progress(requests, err, enabled=not quiet))
    _report(run, requests, workers, seed, out)
    problems = _problems(run, requests)
    if not problems:
        return 0
    print("", file=err)
    print("demo FAILED: it did not behave as designed:", file=err)
    for problem in problems:
        print(f"  - {problem}", file=err)
    for detail in run.tally.details:
        print(f"  {detail.rstrip()}", file=err)
    return 1
