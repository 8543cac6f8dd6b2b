"""Listening to the server: what the client does with quotas, 429s, failure ratios, overload.

    python benchmarks/signals_figures.py                          # full run (about 15 min)
    python benchmarks/signals_figures.py --quick                  # smoke run (about 2 min)
    python benchmarks/signals_figures.py --out docs/benchmarks.md # also write the section

Five figures, each against a threaded Python server running in a child process of its own
(so the client's GIL does not slow the server), on 127.0.0.1:

1. :func:`figure_quota`: a server allowing 60 requests per 2-second window (fixed windows
   on the server's clock) that advertises its quota in each supported header format and
   answers 429 beyond it. ``ConnectionManager()`` with its defaults against plain
   ``requests`` with a urllib3 ``Retry(8, status_forcelist=[429], backoff_factor=0.1)``;
   also three processes at once, with and without ``redis_url``.
2. :func:`figure_bare_429`: a server allowing 20 requests per second that answers a bare
   429 (no ``Retry-After``, no quota headers) beyond; 8 threads make 120 calls.
3. :func:`figure_failure_ratio`: a host failing 30 % of calls at random (503): how often,
   and after how many calls, the ratio rule and the consecutive rule open the breaker;
   plus slow calls counted as failures.
4. :func:`figure_overload`: a server accepting 100 requests/s and refusing the rest with
   503, offered 300 calls/s by 16 paced threads, with and without adaptive throttling.
5. :func:`figure_idempotency`: a server failing the first POST with 503, with and without
   idempotency keys.

Every figure is repeated (``--quick`` repeats less) and reported as the median with its
range; the load average is recorded around each figure (the machine may be shared).
``--out`` writes the section between the markers ``<!-- signals-figures:begin -->`` and
``<!-- signals-figures:end -->`` of that page (appended when absent), leaving the rest of
the page as it is; ``benchmarks/run.py --out`` rewrites the rest of the page and keeps
the section. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import http.client
import json
import math
import os
import random
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Callable, ClassVar, Optional
from urllib.parse import parse_qs, urlsplit

Log = Callable[[str], None]

# ---------------------------------------------------------------------------- the servers
#: Figure 1: requests allowed per window, and the window in seconds.
QUOTA_LIMIT = 60
QUOTA_WINDOW = 2
#: Figure 2: requests allowed per one-second window before bare 429s.
BARE_PER_SECOND = 20
#: Figure 3: the share of calls the flaky host fails, and how long a slow call takes.
FLAKY_SHARE = 0.3
SLOW_CALL_SECONDS = 0.06
#: Figure 4: the rate the overloaded server accepts (token bucket), and its burst.
ACCEPTED_PER_SECOND = 100.0
ACCEPTED_BURST = 10.0

#: The header formats of figure 1, in the order reported.
QUOTA_FORMATS = {
    "ietf": "IETF `RateLimit` + `RateLimit-Policy` (`t` in whole seconds)",
    "x-delta": "`X-RateLimit-*`, reset in delta seconds (rounded up)",
    "x-epoch": "`X-RateLimit-*`, reset in epoch seconds (GitHub)",
    "x-epoch-ms": "`X-RateLimit-*`, reset in epoch milliseconds",
    "openai": "OpenAI `x-ratelimit-*-requests` / `-tokens`, Go durations",
}


def go_duration(seconds: float) -> str:
    """Format ``seconds`` as Go's ``time.Duration`` prints it, to the millisecond.

    Args:
        seconds: A non-negative duration.

    Returns:
        ``"250ms"``, ``"1.5s"``, ``"6m0s"`` and the like.
    """
    millis = math.ceil(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    minutes, millis = divmod(millis, 60_000)
    text = f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{text}" if minutes else text


def quota_headers(fmt: str, remaining: int, window_end: float, now: float) -> dict[str, str]:
    """The headers a quota server sends in format ``fmt``.

    Args:
        fmt: A key of :data:`QUOTA_FORMATS`.
        remaining: Requests left in the current window.
        window_end: Epoch seconds at which the current window ends (a whole number).
        now: Epoch seconds now.

    Returns:
        The header fields.
    """
    delta = max(0.0, window_end - now)
    if fmt == "ietf":
        return {
            "RateLimit": f'"default";r={remaining};t={math.ceil(delta)}',
            "RateLimit-Policy": f'"default";q={QUOTA_LIMIT};w={QUOTA_WINDOW}',
        }
    if fmt == "openai":
        return {
            "x-ratelimit-limit-requests": str(QUOTA_LIMIT),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": go_duration(delta),
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149000",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    reset = {
        "x-delta": str(math.ceil(delta)),
        "x-epoch": str(int(window_end)),
        "x-epoch-ms": str(int(window_end * 1000)),
    }[fmt]
    return {
        "X-RateLimit-Limit": str(QUOTA_LIMIT),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": reset,
    }


class _Handler(BaseHTTPRequestHandler):
    """Every route of the figures; state per run id (the last path segment)."""

    protocol_version = "HTTP/1.1"
    runs: ClassVar[dict[str, dict[str, Any]]] = {}
    rngs: ClassVar[dict[str, random.Random]] = {}
    lock: ClassVar[threading.Lock] = threading.Lock()

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this Nagle + delayed ACK add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(
        self, status: int, body: bytes = b"ok", headers: Optional[dict[str, str]] = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _run(self, run: str) -> dict[str, Any]:
        state = self.runs.get(run)
        if state is None:
            state = self.runs[run] = {"windows": {}, "keys": [], "calls": 0}
        return state

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path).path.strip("/").split("/")
        if parts[0] != "pay":
            self._answer(404)
            return
        key = self.headers.get("Idempotency-Key") or ""
        with self.lock:
            state = self._run(parts[-1])
            state["keys"].append(key)
            first = len(state["keys"]) == 1
        self._answer(503 if first else 200, b"down" if first else b"paid")

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        parts = split.path.strip("/").split("/")
        route, run = parts[0], parts[-1]
        now = time.time()
        if route == "ping":
            self._answer(200)
        elif route == "stats":
            with self.lock:
                body = json.dumps(self.runs.pop(run, {})).encode()
                self.rngs.pop(run, None)
            self._answer(200, body, {"Content-Type": "application/json"})
        elif route == "quota":
            self._quota(parts[1], run, now)
        elif route == "bare":
            with self.lock:
                window = self._run(run)["windows"].setdefault(str(int(now)), [0, 0])
                allowed = window[0] < BARE_PER_SECOND
                window[0 if allowed else 1] += 1
            self._answer(200 if allowed else 429)
        elif route == "flaky":
            with self.lock:
                state = self._run(run)
                rng = self.rngs.get(run)
                if rng is None:
                    seed = int(parse_qs(split.query)["seed"][0])
                    rng = self.rngs[run] = random.Random(seed)
                failed = rng.random() < FLAKY_SHARE
                state["calls"] += 1
                state["failed"] = state.get("failed", 0) + failed
            self._answer(503 if failed else 200)
        elif route == "slow":
            time.sleep(SLOW_CALL_SECONDS)
            self._answer(200)
        elif route == "overload":
            self._overload(run, now)
        else:
            self._answer(404)

    def _quota(self, fmt: str, run: str, now: float) -> None:
        index = int(now // QUOTA_WINDOW)
        with self.lock:
            window = self._run(run)["windows"].setdefault(str(index), [0, 0])
            allowed = window[0] < QUOTA_LIMIT
            window[0 if allowed else 1] += 1
            remaining = QUOTA_LIMIT - window[0]
        headers = quota_headers(fmt, remaining, (index + 1) * QUOTA_WINDOW, now)
        self._answer(200 if allowed else 429, b"ok" if allowed else b"quota", headers)

    def _overload(self, run: str, now: float) -> None:
        with self.lock:
            state = self._run(run)
            tokens, last = state.get("bucket", (ACCEPTED_BURST, now))
            tokens = min(ACCEPTED_BURST, tokens + (now - last) * ACCEPTED_PER_SECOND)
            accepted = tokens >= 1.0
            state["bucket"] = (tokens - 1.0 if accepted else tokens, now)
            second = state["windows"].setdefault(str(int(now)), [0, 0])
            second[0 if accepted else 1] += 1
        self._answer(200 if accepted else 503, b"ok" if accepted else b"overloaded")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def serve_forever() -> None:
    """Serve every route on a free loopback port; print ``PORT <n>`` once listening."""
    server = _Server(("127.0.0.1", 0), _Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


def _stop_process(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class SignalServer:
    """The figures' server, in a child process of its own (its own GIL)."""

    def __init__(self) -> None:
        self.port = 0
        self._process: Optional[subprocess.Popen[bytes]] = None
        self._runs = 0

    def url(self, path: str) -> str:
        """``http://127.0.0.1:<port><path>``."""
        return f"http://127.0.0.1:{self.port}{path}"

    def run_id(self, name: str) -> str:
        """A fresh run id (the server keeps one state per run id)."""
        self._runs += 1
        return f"{name}-{os.getpid()}-{self._runs}"

    def start(self) -> None:
        """Start the server process and wait until it answers.

        Raises:
            RuntimeError: The server did not start.
        """
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], 20)
        line = self._process.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the signals server did not start (said {line!r})")
        self.port = int(line.split()[1])
        self.stats("warm-up")

    def stats(self, run: str) -> dict[str, Any]:
        """Return (and forget) what the server recorded for ``run``."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", f"/stats/{run}")
            result: dict[str, Any] = json.loads(connection.getresponse().read())
            return result
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop the server process; idempotent."""
        if self._process is not None:
            _stop_process(self._process)
            self._process = None


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port (no persistence)."""

    def __init__(self) -> None:
        self.url = ""
        self._process: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> Optional[str]:
        """Start it; return None, or why it cannot run (no ``redis-server``, no client)."""
        binary = shutil.which("redis-server")
        if binary is None:
            return "redis-server is not installed"
        try:
            import redis
        except ImportError:
            return "the redis package is not installed"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self._process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(self.url)
        try:
            for _ in range(100):
                try:
                    client.ping()
                    return None
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        return "redis-server did not answer within 5 s"

    def stop(self) -> None:
        """Stop it; idempotent."""
        if self._process is not None:
            _stop_process(self._process)
            self._process = None


# ------------------------------------------------------------------------------- clients
def plain_session(retry: Any, pool: int = 16) -> Any:
    """A plain ``requests.Session`` whose adapter retries with ``retry`` (urllib3)."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool, max_retries=retry)
    session.mount("http://", adapter)
    return session


def plain_retry(total: int, statuses: list[int], backoff_factor: float = 0.0) -> Any:
    """urllib3's ``Retry(total, status_forcelist=statuses, backoff_factor=...)``."""
    from urllib3.util import Retry

    return Retry(total, status_forcelist=statuses, backoff_factor=backoff_factor)


def outcome_of(call: Callable[[], Any]) -> str:
    """Make one call: ``"ok"`` for a 200, ``"status N"``, or the exception's class name."""
    try:
        response = call()
    except Exception as exc:
        return type(exc).__name__
    return "ok" if response.status_code == 200 else f"status {response.status_code}"


def hammer(call: Callable[[], Any], threads: int, seconds: float) -> Counter[str]:
    """Call ``call`` back to back from ``threads`` threads until ``seconds`` have passed.

    Returns:
        The outcomes (:func:`outcome_of`) of every call started in that time.
    """
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work() -> None:
        mine: Counter[str] = Counter()
        while time.monotonic() < deadline:
            mine[outcome_of(call)] += 1
        with lock:
            outcomes.update(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes


def failed_calls(outcomes: Counter[str]) -> int:
    """Calls that did not end in a 200."""
    return sum(n for name, n in outcomes.items() if name != "ok")


def describe_failures(outcomes: Counter[str]) -> str:
    """``"RetryError x 3, status 429 x 1"``, or ``"-"``."""
    failed = [(name, n) for name, n in sorted(outcomes.items()) if name != "ok"]
    return ", ".join(f"{name} x {n}" for name, n in failed) or "-"


class EventCounter:
    """An ``on_event`` subscriber counting events by type (and reason or source)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        """Count ``event``."""
        name = type(event).__name__
        detail = getattr(event, "reason", None) or getattr(event, "source", None)
        if detail is None and name == "BreakerStateChanged":
            detail = event.new
        key = f"{name}:{detail}" if detail else name
        with self._lock:
            self.counts[key] += 1


# ------------------------------------------------------------------------------ settings
@dataclass
class Settings:
    """How much work each figure does (``--quick`` shrinks every number)."""

    quota_seconds: float = 20.0
    quota_threads: int = 8
    quota_reps: int = 3
    fleet_processes: int = 3
    bare_calls: int = 120
    bare_threads: int = 8
    bare_reps: int = 5
    ratio_seeds: int = 20
    ratio_calls: int = 200
    overload_seconds: float = 20.0
    overload_warmup: float = 5.0
    overload_threads: tuple[int, ...] = (16, 64)
    overload_offered: float = 300.0
    overload_reps: int = 3
    idempotency_reps: int = 3

    @classmethod
    def quick(cls) -> Settings:
        """A smoke run: every figure, shorter and repeated less."""
        return cls(
            quota_seconds=6.0,
            quota_reps=1,
            bare_reps=2,
            ratio_seeds=10,
            overload_seconds=6.0,
            overload_warmup=2.0,
            overload_reps=1,
            idempotency_reps=1,
        )


def load() -> str:
    """The load averages (1, 5, 15 min), or "unknown"."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def median_range(values: list[float], fmt: str = "{:.2f}") -> str:
    """``"median (min-max)"``, or the single value."""
    if not values:
        return "-"
    middle = fmt.format(statistics.median(values))
    if len(values) == 1 or min(values) == max(values):
        return middle
    return f"{middle} ({fmt.format(min(values))}-{fmt.format(max(values))})"


# ------------------------------------------------------------------- figure 1: quotas
@dataclass
class QuotaRun:
    """One client's run against the quota server.

    Attributes:
        outcomes: Client-side outcome of every call.
        windows: Server-side ``[served, refused]`` per window index.
        first: The first window fully inside the run.
        last: The last window fully inside the run.
        events: Events counted by the manager's subscriber (empty for plain requests).
    """

    outcomes: Counter[str]
    windows: dict[int, list[int]]
    first: int
    last: int
    events: Counter[str] = field(default_factory=Counter)

    @property
    def refused(self) -> int:
        """429s the server sent during the run (every window)."""
        return sum(r for _, r in self.windows.values())

    @property
    def windows_touched(self) -> int:
        """Windows in which the server saw a request of the run."""
        return len(self.windows)

    @property
    def per_window(self) -> float:
        """429s per window touched."""
        return self.refused / max(1, self.windows_touched)

    @property
    def worst_window(self) -> int:
        """The most 429s in one window."""
        return max((r for _, r in self.windows.values()), default=0)

    @property
    def used(self) -> float:
        """Served / quota over the windows entirely inside the run."""
        full = range(self.first, self.last + 1)
        if not full:
            return float("nan")
        served = sum(self.windows.get(i, [0, 0])[0] for i in full)
        return served / (QUOTA_LIMIT * len(full))


def _quota_client(kind: str, redis_url: Optional[str] = None) -> tuple[Any, EventCounter]:
    from requests_connection_manager import ConnectionManager

    events = EventCounter()
    if kind == "plain":
        return plain_session(plain_retry(8, [429], 0.1)), events
    if redis_url is not None:
        return ConnectionManager(redis_url=redis_url, on_event=events), events
    return ConnectionManager(on_event=events), events


def _quota_run(server: SignalServer, run: str, start: float, seconds: float) -> QuotaRun:
    raw = server.stats(run)["windows"]
    windows = {int(k): v for k, v in raw.items()}
    first = math.ceil(start / QUOTA_WINDOW)
    last = math.floor((start + seconds) / QUOTA_WINDOW) - 1
    return QuotaRun(Counter(), windows, first, last)


def quota_once(server: SignalServer, fmt: str, kind: str, settings: Settings) -> QuotaRun:
    """One client (``"cm"`` or ``"plain"``) in one process against format ``fmt``."""
    run = server.run_id(f"quota-{fmt}-{kind}")
    url = server.url(f"/quota/{fmt}/{run}")
    client, events = _quota_client(kind)
    with client:
        start = time.time()
        outcomes = hammer(lambda: client.get(url), settings.quota_threads, settings.quota_seconds)
    result = _quota_run(server, run, start, settings.quota_seconds)
    result.outcomes = outcomes
    result.events = events.counts
    return result


def quota_worker(url: str, seconds: float, start_at: float, threads: int, redis_url: str) -> None:
    """The body of one process of the fleet run: wait for ``start_at``, hammer, print JSON."""
    client, events = _quota_client("cm", redis_url or None)
    with client:
        client.get(url.replace("/quota/", "/ping/"))  # connect before the start
        time.sleep(max(0.0, start_at - time.time()))
        outcomes = hammer(lambda: client.get(url), threads, seconds)
        shared = client.get_stats().get("shared_state")
    print(json.dumps({"outcomes": outcomes, "events": events.counts, "shared": shared}))


def quota_fleet(
    server: SignalServer, fmt: str, redis_url: Optional[str], settings: Settings
) -> QuotaRun:
    """``fleet_processes`` processes at once, each 8 threads of ``ConnectionManager()``."""
    run = server.run_id(f"fleet-{fmt}-{'redis' if redis_url else 'local'}")
    url = server.url(f"/quota/{fmt}/{run}")
    start_at = time.time() + 2.0
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--quota-worker",
                json.dumps(
                    [url, settings.quota_seconds, start_at, settings.quota_threads, redis_url]
                ),
            ],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        for _ in range(settings.fleet_processes)
    ]
    outcomes: Counter[str] = Counter()
    events: Counter[str] = Counter()
    try:
        for worker in workers:
            out, _ = worker.communicate(timeout=settings.quota_seconds + 120)
            report = json.loads(out.decode().strip().splitlines()[-1])
            outcomes.update(report["outcomes"])
            events.update(report["events"])
            if redis_url and not (report["shared"] or {}).get("healthy", False):
                outcomes["Redis unhealthy"] += 1
    finally:
        for worker in workers:
            _stop_process(worker)  # type: ignore[arg-type]
    result = _quota_run(server, run, start_at, settings.quota_seconds)
    result.outcomes = outcomes
    result.events = events
    return result


def figure_quota(
    server: SignalServer, redis: Optional[RedisServer], settings: Settings, log: Log
) -> dict[str, list[QuotaRun]]:
    """Figure 1: every header format, plain requests, and the fleet runs.

    Returns:
        Runs by row name, one per repetition (the rows interleaved within a repetition).
    """
    rows: dict[str, list[QuotaRun]] = {}
    fleet_format = "ietf"
    for rep in range(settings.quota_reps):
        for fmt in QUOTA_FORMATS:
            log(f"figure 1, rep {rep + 1}: ConnectionManager(), format {fmt}")
            rows.setdefault(f"cm:{fmt}", []).append(quota_once(server, fmt, "cm", settings))
        log(f"figure 1, rep {rep + 1}: plain requests + Retry(8, [429], 0.1)")
        rows.setdefault("plain", []).append(quota_once(server, "ietf", "plain", settings))
        log(f"figure 1, rep {rep + 1}: {settings.fleet_processes} processes, no Redis")
        rows.setdefault("fleet:local", []).append(quota_fleet(server, fleet_format, None, settings))
        if redis is not None:
            log(f"figure 1, rep {rep + 1}: {settings.fleet_processes} processes, redis_url")
            rows.setdefault("fleet:redis", []).append(
                quota_fleet(server, fleet_format, redis.url, settings)
            )
    return rows


# --------------------------------------------------------------- figure 2: bare 429s
@dataclass
class BareRun:
    """One client's 120 calls against the bare-429 server."""

    outcomes: Counter[str]
    served: int
    refused: int
    elapsed: float
    events: Counter[str] = field(default_factory=Counter)


def bare_once(server: SignalServer, kind: str, settings: Settings) -> BareRun:
    """``settings.bare_calls`` calls split over ``settings.bare_threads`` threads."""
    from requests_connection_manager import ConnectionManager

    run = server.run_id(f"bare-{kind}")
    url = server.url(f"/bare/{run}")
    events = EventCounter()
    client: Any = (
        ConnectionManager(on_event=events) if kind == "cm" else plain_session(plain_retry(8, [429]))
    )
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    per_thread = settings.bare_calls // settings.bare_threads

    def work() -> None:
        mine = Counter(outcome_of(lambda: client.get(url)) for _ in range(per_thread))
        with lock:
            outcomes.update(mine)

    with client:
        started = time.monotonic()
        workers = [threading.Thread(target=work) for _ in range(settings.bare_threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - started
    windows = server.stats(run)["windows"].values()
    return BareRun(
        outcomes,
        sum(s for s, _ in windows),
        sum(r for _, r in windows),
        elapsed,
        events.counts,
    )


def figure_bare_429(server: SignalServer, settings: Settings, log: Log) -> dict[str, list[BareRun]]:
    """Figure 2: ``ConnectionManager()`` and plain requests, interleaved.

    Returns:
        Runs by client (``"cm"``, ``"plain"``).
    """
    rows: dict[str, list[BareRun]] = {"cm": [], "plain": []}
    for rep in range(settings.bare_reps):
        for kind in rows:
            log(f"figure 2, rep {rep + 1}: {kind}")
            rows[kind].append(bare_once(server, kind, settings))
            time.sleep(1.0)  # the next run starts in a fresh server window
    return rows


# ---------------------------------------------------------- figure 3: failure ratio
#: The breaker configurations of figure 3 (``max_retries=0`` everywhere).
RATIO_CONFIGS: dict[str, dict[str, Any]] = {
    "ratio 0.25 + consecutive 5": {"circuit_breaker_failure_rate": 0.25},
    "consecutive 5 only": {"circuit_breaker_failure_rate": None},
    "defaults (ratio 0.5 + consecutive 5)": {},
}


@dataclass
class RatioRun:
    """One seed's run: the call during which the breaker opened (None: it did not)."""

    opened_at: Optional[int]
    calls: int
    failed: int


def ratio_once(server: SignalServer, seed: int, config: dict[str, Any], calls: int) -> RatioRun:
    """Sequential calls to the flaky host until the breaker opens or ``calls`` are made."""
    from requests_connection_manager import CircuitBreakerOpen, ConnectionManager

    run = server.run_id(f"flaky-{seed}")
    url = server.url(f"/flaky/{run}?seed={seed}")
    opened: list[bool] = []

    def watch(event: Any) -> None:
        if type(event).__name__ == "BreakerStateChanged" and event.new == "open":
            opened.append(True)

    opened_at: Optional[int] = None
    with ConnectionManager(max_retries=0, on_event=watch, **config) as cm:
        for index in range(1, calls + 1):
            try:
                cm.get(url)
            except CircuitBreakerOpen:
                break
            if opened:
                opened_at = index
                break
    stats = server.stats(run)
    return RatioRun(opened_at, stats["calls"], stats.get("failed", 0))


def slow_once(server: SignalServer, slow_duration: Optional[float], calls: int) -> Optional[int]:
    """Calls to the 60 ms endpoint; the call during which the breaker opened, or None."""
    from requests_connection_manager import CircuitBreakerOpen, ConnectionManager

    run = server.run_id("slow")
    url = server.url(f"/slow/{run}")
    opened: list[bool] = []

    def watch(event: Any) -> None:
        if type(event).__name__ == "BreakerStateChanged" and event.new == "open":
            opened.append(True)

    with ConnectionManager(
        max_retries=0,
        on_event=watch,
        circuit_breaker_minimum_calls=10,
        circuit_breaker_slow_call_duration=slow_duration,
    ) as cm:
        for index in range(1, calls + 1):
            try:
                cm.get(url)
            except CircuitBreakerOpen:
                return index
            if opened:
                return index
    return None


@dataclass
class RatioFigure:
    """Figure 3's runs, by configuration, and the slow-call rows."""

    runs: dict[str, list[RatioRun]]
    slow: dict[str, list[Optional[int]]]


def figure_failure_ratio(server: SignalServer, settings: Settings, log: Log) -> RatioFigure:
    """Figure 3: the same seeds (the same failure sequences) under each configuration."""
    runs: dict[str, list[RatioRun]] = {name: [] for name in RATIO_CONFIGS}
    for seed in range(1, settings.ratio_seeds + 1):
        for name, config in RATIO_CONFIGS.items():
            runs[name].append(ratio_once(server, seed, config, settings.ratio_calls))
    log(f"figure 3: {settings.ratio_seeds} seeds x {len(RATIO_CONFIGS)} configurations done")
    slow: dict[str, list[Optional[int]]] = {"= 0.05": [], "= None (default)": []}
    for _ in range(3):
        slow["= 0.05"].append(slow_once(server, 0.05, 30))
        slow["= None (default)"].append(slow_once(server, None, 30))
    return RatioFigure(runs, slow)


# ----------------------------------------------------------------- figure 4: overload
#: The clients of figure 4. The breaker is off: at two refusals in three it would open.
OVERLOAD_CLIENTS = {
    "ConnectionManager(adaptive_throttling=True)": {"adaptive_throttling": True},
    "ConnectionManager() (throttling off)": {},
    "requests + Retry(3, [503], 0.3)": None,
}


@dataclass
class OverloadRun:
    """One client's run against the overloaded server.

    Attributes:
        outcomes: Client-side outcome of every call.
        started: Calls started.
        seconds: Server-side ``[accepted, refused]`` per epoch second.
        steady: The epoch seconds counted as steady state.
        duration: Seconds the threads ran.
        events: Events counted by the manager's subscriber.
    """

    outcomes: Counter[str]
    started: int
    seconds: dict[int, list[int]]
    steady: range
    duration: float
    events: Counter[str] = field(default_factory=Counter)

    def _steady(self, column: Optional[int]) -> list[float]:
        rows = [self.seconds.get(s, [0, 0]) for s in self.steady]
        return [float(sum(r) if column is None else r[column]) for r in rows]

    @property
    def attempts_per_second(self) -> float:
        """Median server-side attempts per second over the steady seconds."""
        return statistics.median(self._steady(None)) if self.steady else float("nan")

    @property
    def accepted_per_second(self) -> float:
        """Median accepted attempts per second over the steady seconds."""
        return statistics.median(self._steady(0)) if self.steady else float("nan")

    @property
    def offered(self) -> float:
        """Calls started per second."""
        return self.started / self.duration

    @property
    def local_per_second(self) -> float:
        """Attempts rejected locally by adaptive throttling, per second."""
        return self.events.get("Refused:throttle", 0) / self.duration


def overload_once(
    server: SignalServer, config: Optional[dict[str, Any]], threads: int, settings: Settings
) -> OverloadRun:
    """``threads`` paced threads offering ``overload_offered`` calls/s in all.

    Each thread starts a call every ``threads / overload_offered`` seconds, for
    ``overload_seconds``; a thread still busy with a call when its next slot comes skips
    the slots it missed (it never bursts to catch up).
    """
    from requests_connection_manager import ConnectionManager

    run = server.run_id("overload")
    url = server.url(f"/overload/{run}")
    events = EventCounter()
    client: Any = (
        plain_session(plain_retry(3, [503], 0.3), pool=threads)
        if config is None
        else ConnectionManager(
            pool_maxsize=threads,
            circuit_breaker_failure_threshold=None,
            on_event=events,
            **config,
        )
    )
    interval = threads / settings.overload_offered
    outcomes: Counter[str] = Counter()
    started = 0
    lock = threading.Lock()
    with client:
        start = time.monotonic()
        start_epoch = time.time()
        deadline = start + settings.overload_seconds

        def work(phase: float) -> None:
            nonlocal started
            mine: Counter[str] = Counter()
            due = start + phase
            while True:
                now = time.monotonic()
                if due >= deadline:
                    break
                if due > now:
                    time.sleep(due - now)
                mine[outcome_of(lambda: client.get(url))] += 1
                due = max(due + interval, time.monotonic())  # a late thread skips its slots
            with lock:
                outcomes.update(mine)
                started += sum(mine.values())

        workers = [
            threading.Thread(target=work, args=(i * interval / threads,)) for i in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        duration = settings.overload_seconds
    raw = server.stats(run)["windows"]
    seconds = {int(k): v for k, v in raw.items()}
    steady = range(
        math.ceil(start_epoch + settings.overload_warmup),
        math.floor(start_epoch + settings.overload_seconds),
    )
    return OverloadRun(outcomes, started, seconds, steady, duration, events.counts)


def figure_overload(
    server: SignalServer, settings: Settings, log: Log
) -> dict[str, list[OverloadRun]]:
    """Figure 4: each thread count, the clients interleaved within each repetition.

    Returns:
        Runs by ``"<client>, <n> threads"``.
    """
    rows: dict[str, list[OverloadRun]] = {}
    for rep in range(settings.overload_reps):
        for threads in settings.overload_threads:
            for name, config in OVERLOAD_CLIENTS.items():
                log(f"figure 4, rep {rep + 1}: {name}, {threads} threads")
                run = overload_once(server, config, threads, settings)
                rows.setdefault(f"{name}, {threads} threads", []).append(run)
    return rows


# ---------------------------------------------------------- figure 5: idempotency keys
@dataclass
class IdempotencyRun:
    """One POST to a server failing the first POST with 503."""

    status: str
    keys: list[str]


def figure_idempotency(
    server: SignalServer, settings: Settings, log: Log
) -> dict[str, list[IdempotencyRun]]:
    """Figure 5: one POST with ``idempotency_keys`` on, one with it off (the default).

    Returns:
        Runs by setting.
    """
    from requests_connection_manager import ConnectionManager

    rows: dict[str, list[IdempotencyRun]] = {"idempotency_keys=True": [], "default (off)": []}
    for _ in range(settings.idempotency_reps):
        for name in rows:
            run = server.run_id("pay")
            url = server.url(f"/pay/{run}")
            with ConnectionManager(idempotency_keys=name != "default (off)") as cm:
                status = outcome_of(functools.partial(cm.post, url, json={"n": 5}))
            rows[name].append(IdempotencyRun(status, server.stats(run)["keys"]))
    log("figure 5 done")
    return rows


# ------------------------------------------------------------------------------ report
@dataclass
class Results:
    """Everything one run measured, with the machine's load around each figure."""

    command: str
    date: str
    settings: Settings
    machine: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    loads: dict[str, str] = field(default_factory=dict)
    quota: dict[str, list[QuotaRun]] = field(default_factory=dict)
    bare: dict[str, list[BareRun]] = field(default_factory=dict)
    ratio: Optional[RatioFigure] = None
    overload: dict[str, list[OverloadRun]] = field(default_factory=dict)
    idempotency: dict[str, list[IdempotencyRun]] = field(default_factory=dict)
    seconds: float = 0.0


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _all_outcomes(runs: list[Any]) -> Counter[str]:
    total: Counter[str] = Counter()
    for run in runs:
        total.update(run.outcomes)
    return total


def _quota_lines(r: Results) -> list[str]:
    s = r.settings
    windows = s.quota_seconds / QUOTA_WINDOW
    lines = [
        "",
        "### S1. Server-advised quotas",
        "",
        f"The server allows {QUOTA_LIMIT} requests per {QUOTA_WINDOW}-second window (fixed "
        "windows on its clock), says so in every answer, and answers 429 with the same "
        f"headers beyond. {s.quota_threads} threads call back to back for "
        f"{s.quota_seconds:g} s (about {windows:g} windows); no client-side rate limit. "
        "**429s / window**: 429s the server sent, per window that saw a request (target "
        "≤ 1, ideally 0); **quota used**: requests served / "
        f"({QUOTA_LIMIT} x windows), over the windows entirely inside the run (target "
        "≥ 0.9); **calls failed**: calls that did not end in a 200. Median (range) over "
        f"{s.quota_reps} repetition(s); the rows of one repetition run one after another. "
        f"The fleet rows run {s.fleet_processes} processes at once against one quota; "
        "`redis_url` shares the client rate limit and the breaker, not the advertised "
        "quota's count nor the pause it causes, so each process counts on its own.",
        "",
    ]
    names = {f"cm:{fmt}": f"`ConnectionManager()`, {text}" for fmt, text in QUOTA_FORMATS.items()}
    names["plain"] = "plain `requests` + `Retry(8, status_forcelist=[429], backoff_factor=0.1)`"
    names["fleet:local"] = (
        f"{s.fleet_processes} processes x {s.quota_threads} threads, `ConnectionManager()`, IETF"
    )
    names["fleet:redis"] = (
        f"{s.fleet_processes} processes x {s.quota_threads} threads, "
        "`ConnectionManager(redis_url=...)`, IETF"
    )
    rows = []
    for key, runs in r.quota.items():
        rows.append(
            [
                names.get(key, key),
                median_range([q.per_window for q in runs]),
                str(max(q.worst_window for q in runs)),
                f"**{median_range([q.used for q in runs], '{:.3f}')}**",
                median_range([float(sum(q.outcomes.values())) for q in runs], "{:,.0f}"),
                f"{sum(failed_calls(q.outcomes) for q in runs)}"
                + (
                    f" ({describe_failures(_all_outcomes(runs))})"
                    if sum(failed_calls(q.outcomes) for q in runs)
                    else ""
                ),
            ]
        )
    lines += _table(
        [
            "client, header format",
            "429s / window",
            "most 429s in a window",
            "quota used",
            "calls",
            "calls failed (all reps)",
        ],
        rows,
    )
    return lines


def _bare_lines(r: Results) -> list[str]:
    s = r.settings
    ideal = s.bare_calls / BARE_PER_SECOND
    lines = [
        "",
        "### S2. Bare 429s",
        "",
        f"The server allows {BARE_PER_SECOND} requests per second (fixed one-second windows) "
        "and answers a bare 429 beyond: no `Retry-After`, no quota headers. "
        f"{s.bare_threads} threads make {s.bare_calls} calls in all, no `total_timeout`; at "
        f"best that takes about {ideal:g} s. Median (range) over {s.bare_reps} repetitions; "
        "the two clients alternate.",
        "",
    ]
    names = {
        "cm": "`ConnectionManager()` (defaults)",
        "plain": "plain `requests` + `Retry(8, status_forcelist=[429])`",
    }
    rows = []
    for key, runs in r.bare.items():
        rows.append(
            [
                names[key],
                median_range([float(b.outcomes.get("ok", 0)) for b in runs], "{:.0f}"),
                f"**{median_range([float(b.refused) for b in runs], '{:.0f}')}**",
                median_range([float(b.served + b.refused) for b in runs], "{:.0f}"),
                median_range([b.elapsed for b in runs], "{:.1f} s"),
                describe_failures(_all_outcomes(runs)),
            ]
        )
    lines += _table(
        [
            "client",
            f"calls completed (of {s.bare_calls})",
            "429s received",
            "requests sent",
            "elapsed",
            "failed calls (all reps)",
        ],
        rows,
    )
    return lines


def _ratio_lines(r: Results) -> list[str]:
    s = r.settings
    assert r.ratio is not None
    lines = [
        "",
        "### S3. Failure-ratio breaker",
        "",
        f"A host failing {FLAKY_SHARE:.0%} of calls at random (503); one thread makes up to "
        f"{s.ratio_calls} calls in a row (well inside one 30 s window), `max_retries=0`; the "
        f"same {s.ratio_seeds} seeds (the same failure sequences) under each configuration. "
        "**Opened**: runs in which the breaker opened; **calls until open**: the call "
        "during which it opened, median (range) over the runs that opened.",
        "",
    ]
    rows = []
    for name, runs in r.ratio.runs.items():
        opened = [float(x.opened_at) for x in runs if x.opened_at is not None]
        failed = sum(x.failed for x in runs) / max(1, sum(x.calls for x in runs))
        rows.append(
            [
                name,
                f"**{len(opened)} / {len(runs)}**",
                median_range(opened, "{:.0f}"),
                f"{failed:.1%}",
            ]
        )
    lines += _table(["breaker rules", "opened", "calls until open", "share of calls failed"], rows)
    lines += [
        "",
        f"Slow calls: every answer is a 200 after {SLOW_CALL_SECONDS * 1000:.0f} ms, "
        "`circuit_breaker_minimum_calls=10`, up to 30 calls, 3 runs each:",
        "",
    ]
    rows = []
    for name, values in r.ratio.slow.items():
        opened_at = [str(v) if v is not None else "never" for v in values]
        rows.append([f"`circuit_breaker_slow_call_duration` {name}", ", ".join(opened_at)])
    lines += _table(["setting", "call during which the breaker opened (each run)"], rows)
    return lines


def _overload_lines(r: Results) -> list[str]:
    s = r.settings
    lines = [
        "",
        "### S4. Overload and adaptive throttling",
        "",
        f"The server accepts {ACCEPTED_PER_SECOND:.0f} requests/s (a token bucket, burst "
        f"{ACCEPTED_BURST:.0f}) and refuses the rest with 503 (no `Retry-After`). "
        f"Paced threads ({' or '.join(str(t) for t in s.overload_threads)}) offer "
        f"{s.overload_offered:.0f} calls/s in all for {s.overload_seconds:g} s; a thread "
        "still busy when its next slot comes skips the slots it missed, so a client whose "
        "calls wait out retries offers less than that with few threads. `max_retries` and "
        "the retry budget at their defaults; the circuit breaker is off "
        "(`circuit_breaker_failure_threshold=None`: at two refusals in three its ratio rule "
        "would open it and hide the rest). Server-side rates are medians over the seconds "
        f"after the first {s.overload_warmup:g} s; median (range) over "
        f"{s.overload_reps} repetition(s). Target with throttling: attempts ≤ about K x "
        f"accepted = {2 * ACCEPTED_PER_SECOND:.0f}/s (K = 2).",
        "",
    ]
    rows = []
    for name, runs in r.overload.items():
        is_cm = name.startswith("ConnectionManager")
        rows.append(
            [
                name,
                median_range([o.offered for o in runs], "{:.0f}"),
                f"**{median_range([o.attempts_per_second for o in runs], '{:.0f}')}**",
                median_range([o.accepted_per_second for o in runs], "{:.0f}"),
                median_range(
                    [o.attempts_per_second / o.accepted_per_second for o in runs], "{:.2f}"
                ),
                median_range([o.local_per_second for o in runs], "{:.0f}") if is_cm else "-",
                median_range([o.outcomes.get("ok", 0) / max(1, o.started) for o in runs], "{:.1%}"),
            ]
        )
    lines += _table(
        [
            "client",
            "calls offered / s",
            "attempts at the server / s",
            "accepted / s",
            "attempts / accepted",
            "rejected locally / s",
            "calls succeeded",
        ],
        rows,
    )
    return lines


def _idempotency_lines(r: Results) -> list[str]:
    lines = [
        "",
        "### S5. Idempotency keys",
        "",
        "The server fails the first POST with 503 and answers 200 after; one "
        "`cm.post(url, json=...)` per run, `max_retries` at its default.",
        "",
    ]
    rows = []
    for name, runs in r.idempotency.items():
        statuses = Counter(run.status for run in runs)
        keys = runs[-1].keys
        same = all(len(set(run.keys)) == 1 and run.keys[0] for run in runs)
        rows.append(
            [
                f"`{name}`",
                ", ".join(f"{k} x {v}" for k, v in sorted(statuses.items())),
                str(len(keys)),
                "one key, sent twice" if same and len(keys) > 1 else "no key",
            ]
        )
    lines += _table(["setting", "call ended with", "POSTs the server saw", "keys"], rows)
    return lines


def tables(r: Results) -> list[str]:
    """The section's tables, as Markdown lines."""
    lines: list[str] = []
    if r.quota:
        lines += _quota_lines(r)
    if r.bare:
        lines += _bare_lines(r)
    if r.ratio is not None:
        lines += _ratio_lines(r)
    if r.overload:
        lines += _overload_lines(r)
    if r.idempotency:
        lines += _idempotency_lines(r)
    return lines


BEGIN = "<!-- signals-figures:begin -->"
END = "<!-- signals-figures:end -->"


def section(r: Results) -> str:
    """The whole section, between its markers."""
    lines = [
        BEGIN,
        "## Listening to the server",
        "",
        f"Generated by `{r.command}` on {r.date}; the run took {r.seconds:.0f} s. What each "
        "mechanism does is explained in [Listening to the server](listening.md). One "
        "threaded Python server (`ThreadingHTTPServer`, HTTP/1.1 keep-alive) in a process of "
        "its own, on 127.0.0.1.",
        "",
    ]
    lines += _table(["", ""], [[k, v] for k, v in r.machine.items()])
    lines += ["", "Load average (1 / 5 / 15 min) around each figure:", ""]
    lines += _table(["when", "load"], [[k, v] for k, v in r.loads.items()])
    notes = list(r.notes)
    peak = max((float(v.split(" / ")[0]) for v in r.loads.values() if v != "unknown"), default=0)
    cores = os.cpu_count() or 1
    if peak > cores:
        notes.append(
            f"the 1-minute load average reached {peak:.2f} on {cores} cores: other work shared "
            "the machine, so times (S2's elapsed) are pessimistic; counts and ratios, "
            "measured at the server, are less affected"
        )
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    lines += tables(r)
    lines += ["", END]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace the section between the markers in ``path``, or append it."""
    page = path.read_text() if path.exists() else ""
    if BEGIN in page and END in page:
        before = page[: page.index(BEGIN)]
        after = page[page.index(END) + len(END) :].lstrip("\n")
        page = before + text + (("\n" + after) if after else "")
    else:
        page = page.rstrip("\n") + ("\n\n" if page else "") + text
    path.write_text(page)


def machine() -> dict[str, str]:
    """CPU, cores, Python and the versions that matter."""
    import platform
    from importlib import metadata

    import requests_connection_manager

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    source = Path(requests_connection_manager.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "log", "-1", "--format=%h"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    versions = []
    for name in ("requests", "urllib3", "pybreaker", "redis"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{name} {metadata.version(name)}")
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "requests-connection-manager": f"imported from {source}"
        + (f" (commit {commit})" if commit else ""),
        "packages": ", ".join(versions),
    }


# -------------------------------------------------------------------------------- main
class Progress:
    """Progress lines on stderr, stamped with the seconds since the start."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f} s] {message}", file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


FIGURES = ("quota", "bare", "ratio", "overload", "idempotency")


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/signals_figures.py",
        description="Measure how ConnectionManager listens to the server.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke mode: shorter, fewer reps")
    parser.add_argument("--out", type=Path, help="write the section into this Markdown page")
    parser.add_argument(
        "--only", action="append", choices=FIGURES, help="run only these figures (repeatable)"
    )
    parser.add_argument("--note", action="append", default=[], help="a note for the section")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, log: Progress) -> Results:
    """Start the servers, measure the figures asked for, stop everything."""
    settings = Settings.quick() if args.quick else Settings()
    command = "python benchmarks/signals_figures.py" + (" --quick" if args.quick else "")
    if args.out is not None:
        command += f" --out {args.out}"
    results = Results(
        command=command,
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        settings=settings,
        machine=machine(),
        notes=list(args.note),
    )
    only = set(args.only or FIGURES)
    results.loads["before the run"] = load()
    server = SignalServer()
    redis: Optional[RedisServer] = None
    try:
        log("starting the signals server")
        server.start()
        if "quota" in only:
            redis = RedisServer()
            problem = redis.start()
            if problem is not None:
                results.notes.append(f"the Redis fleet row is skipped: {problem}")
                log(results.notes[-1])
                redis = None
            results.quota = figure_quota(server, redis, settings, log)
            results.loads["after S1 (quotas)"] = load()
        if "bare" in only:
            results.bare = figure_bare_429(server, settings, log)
            results.loads["after S2 (bare 429s)"] = load()
        if "ratio" in only:
            results.ratio = figure_failure_ratio(server, settings, log)
            results.loads["after S3 (ratio)"] = load()
        if "overload" in only:
            results.overload = figure_overload(server, settings, log)
            results.loads["after S4 (overload)"] = load()
        if "idempotency" in only:
            results.idempotency = figure_idempotency(server, settings, log)
            results.loads["after S5 (idempotency)"] = load()
    finally:
        if redis is not None:
            redis.stop()
        server.stop()
    return results


def main(argv: Optional[list[str]] = None) -> int:
    """Run the figures; print the tables; write the section when ``--out`` is given."""
    args = parse(argv)
    log = Progress()
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        os.environ.pop(name, None)  # loopback only: never route through a proxy
        os.environ.pop(name.upper(), None)
    signal.signal(signal.SIGTERM, _interrupt)
    import logging

    logging.getLogger("requests_connection_manager").setLevel(logging.CRITICAL)
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        results = run(args, log)
    except KeyboardInterrupt:
        log("interrupted: servers and workers stopped")
        return 130
    results.seconds = time.monotonic() - log.start
    print("\n".join(tables(results)))
    if args.out is not None:
        write_section(args.out, section(results))
        log(f"section written to {args.out}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve_forever()
    elif sys.argv[1:2] == ["--quota-worker"]:
        quota_worker(*json.loads(sys.argv[2]))
    else:
        sys.exit(main())
