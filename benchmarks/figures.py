"""The five figures: what each measures, on which clients, and how the numbers are reduced.

1. per-call time of a keep-alive GET of a small JSON body (nginx);
2. throughput at 1, 4, 16 and 64 threads against a 50 ms endpoint (Python server);
3. open-circuit rejection time per call, with the connections the host saw;
4. the rate limiter's achieved rate and burst factor, from server-side arrival times;
5. memory per tracked host (tracemalloc), calling up to 5,000 distinct loopback hosts.

Clients are interleaved A B C ... within each repetition, each warmed up first, and every
figure reports medians over repetitions. requests-connection-manager 1.0.0 runs in its own
process (see ``legacy.py``) with the same loops.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import statistics
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, TypeVar

import loops
import requests
import urllib3
from legacy import Legacy, LegacyError
from requests.adapters import HTTPAdapter
from servers import CountingListener, PyServer, free_port
from urllib3.connectionpool import HTTPConnectionPool

from requests_connection_manager import ConnectionManager

Log = Callable[[str], None]
T = TypeVar("T")

BASELINE = "requests.Session"
#: A limiter that never blocks: the cost of the limiter's bookkeeping alone.
NON_BLOCKING = {"rate_limit_requests": 10**9, "rate_limit_period": 1}
THREADS = (1, 4, 16, 64)


@dataclass
class Settings:
    """How much work each figure does (``--quick`` shrinks every number)."""

    per_call_reps: int = 21
    per_call_calls: int = 200
    per_call_warmup: int = 50
    tp_reps: int = 5
    tp_seconds: float = 0.8
    tp_warmup_seconds: float = 0.3
    reject_reps: int = 5
    reject_calls: int = 2000
    rate_n: int = 20
    rate_period: float = 1.0
    rate_periods: int = 4
    rate_threads: int = 8
    memory_hosts: tuple[int, ...] = (1, 1000, 2500, 5000)

    @classmethod
    def quick(cls) -> Settings:
        """A smoke run: every figure, far fewer repetitions."""
        return cls(
            per_call_reps=3,
            per_call_calls=150,
            per_call_warmup=20,
            tp_reps=1,
            tp_seconds=0.3,
            tp_warmup_seconds=0.1,
            reject_reps=3,
            reject_calls=300,
            rate_periods=2,
            memory_hosts=(1, 250, 500),
        )


def quiet_library_logs() -> None:
    """Make the library's log records go nowhere (as the 1.0.0 worker does), not to stderr."""
    library_logger = logging.getLogger("requests_connection_manager")
    library_logger.addHandler(logging.NullHandler())
    library_logger.propagate = False


# ----------------------------------------------------------------------------- clients
class Client:
    """One client under test: a local ``get`` callable, or an object in the 1.0.0 worker.

    Args:
        name: The row label.
        get: The local call (None for a remote client).
        close: Releases the local client.
        legacy: The 1.0.0 worker holding the remote client.
        remote_id: The remote client's id in the worker.
        skipped: Why this client is not measured (None: it is).
    """

    def __init__(
        self,
        name: str,
        get: Optional[loops.Get] = None,
        close: Optional[Callable[[], None]] = None,
        legacy: Optional[Legacy] = None,
        remote_id: str = "",
        skipped: Optional[str] = None,
    ) -> None:
        self.name = name
        self._get = get
        self._close = close
        self._legacy = legacy
        self._id = remote_id
        self.skipped = skipped

    def _remote(self, op: str, **args: Any) -> dict[str, Any]:
        assert self._legacy is not None
        try:
            return self._legacy.call(op, id=self._id, **args)
        except LegacyError as exc:
            self.skipped = f"1.0.0 worker failed: {exc}"
            raise

    def warm(self, url: str, calls: int) -> None:
        """Make ``calls`` calls whose outcome does not matter."""
        if self._get is not None:
            loops.warm(self._get, url, calls)
        else:
            self._remote("warm", url=url, calls=calls)

    def per_call(self, url: str, calls: int) -> dict[str, float]:
        """Wall and CPU seconds per call (see :func:`loops.per_call_timed`)."""
        if self._get is not None:
            return loops.per_call_timed(self._get, url, calls)
        out = self._remote("per_call", url=url, calls=calls)
        return {"seconds": float(out["seconds"]), "cpu": float(out["cpu"])}

    def throughput(self, url: str, threads: int, duration: float) -> dict[str, float]:
        """Calls, errors and seconds (see :func:`loops.throughput`)."""
        if self._get is not None:
            return loops.throughput(self._get, url, threads, duration)
        return self._remote("throughput", url=url, threads=threads, duration=duration)

    def trip(self, url: str) -> str:
        """The exception class name one failing call raised."""
        if self._get is not None:
            return loops.trip(self._get, url)
        return str(self._remote("trip", url=url)["raised"])

    def rejections(self, url: str, calls: int) -> dict[str, Any]:
        """Seconds per refused call and the outcomes (see :func:`loops.rejections`)."""
        if self._get is not None:
            return loops.rejections(self._get, url, calls)
        return self._remote("rejections", url=url, calls=calls)

    def close(self) -> None:
        """Release the client (local or remote)."""
        if self._close is not None:
            self._close()
        elif self._legacy is not None and self._legacy.ready and self.skipped is None:
            with contextlib.suppress(LegacyError):
                self._legacy.call("close", id=self._id)


def _session(pool_maxsize: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _remote_client(
    legacy: Optional[Legacy], name: str, remote_id: str, kind: str, kwargs: dict[str, Any]
) -> Client:
    if legacy is None or not legacy.ready:
        reason = legacy.skipped if legacy is not None else "not requested (--no-legacy)"
        return Client(name, skipped=reason or "the 1.0.0 worker is not running")
    try:
        legacy.call("make", id=remote_id, kind=kind, kwargs=kwargs)
    except LegacyError as exc:
        return Client(name, skipped=str(exc))
    return Client(name, legacy=legacy, remote_id=remote_id)


def speed_clients(
    legacy: Optional[Legacy], pool_maxsize: Optional[int], tag: str, reference: bool
) -> list[Client]:
    """The clients of figures 1 and 2.

    Args:
        legacy: The 1.0.0 worker (None: its rows are skipped).
        pool_maxsize: Connections per pool for every client (None: each one's default).
        tag: Distinguishes the remote clients of different figures.
        reference: Also measure a bare Session inside the 1.0.0 venv (urllib3 1.26 there).
    """
    pool = {} if pool_maxsize is None else {"pool_maxsize": pool_maxsize}
    size = pool_maxsize or 10
    manager = urllib3.PoolManager(maxsize=size)
    session = _session(size) if pool_maxsize is not None else requests.Session()
    if pool_maxsize is None:
        cm = ConnectionManager()
        cm_limited = ConnectionManager(rate_limit_requests=10**9, rate_limit_period=1)
    else:
        cm = ConnectionManager(pool_maxsize=pool_maxsize)
        cm_limited = ConnectionManager(
            pool_maxsize=pool_maxsize, rate_limit_requests=10**9, rate_limit_period=1
        )
    clients = [
        Client(
            "urllib3 PoolManager",
            lambda url: manager.request("GET", url),
            manager.clear,
        ),
        Client(BASELINE, session.get, session.close),
        Client("ConnectionManager()", cm.get, cm.close),
        Client("ConnectionManager(non-blocking limiter)", cm_limited.get, cm_limited.close),
        # 1.0.0's default limiter (100 per 60 s) would block: it gets the non-blocking one.
        _remote_client(
            legacy,
            "rcm 1.0.0 (non-blocking limiter)",
            f"{tag}-rcm",
            "rcm",
            {**NON_BLOCKING, **pool},
        ),
    ]
    if reference:
        # requests re-reads proxy variables from os.environ on every call; without that
        # scan a Session is this much faster (the library may legitimately skip it too).
        # Right after ConnectionManager(): the own path pairs the two, back to back (a
        # client in another process between them moved that difference by +-50 µs).
        no_env = requests.Session()
        no_env.trust_env = False
        ours = next(i for i, c in enumerate(clients) if c.name == "ConnectionManager()")
        clients.insert(ours + 1, Client(REFERENCE_NO_ENV, no_env.get, no_env.close))
        clients.append(
            _remote_client(
                legacy, "requests.Session in the 1.0.0 venv", f"{tag}-s", "session", pool
            )
        )
    return clients


# --------------------------------------------------------------------------- figure 1
def paired_ratio(values: list[float], base: list[float]) -> float:
    """Median over repetitions of ``values[i] / base[i]``.

    Within a repetition the clients run back to back, so background load hits both
    sides of each ratio alike; the median of those ratios is far steadier than the ratio
    of the two medians on a shared machine.
    """
    return statistics.median(v / b for v, b in zip(values, base))


@dataclass
class PerCall:
    """Figure 1: per-repetition mean wall and CPU seconds per call, by client."""

    url: str
    reps: int
    calls: int
    values: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def median(self, name: str) -> float:
        """Median over repetitions of the mean wall seconds per call."""
        return statistics.median(self.values[name])

    def ratio(self, name: str) -> float:
        """Paired wall-time ratio to the bare Session (see :func:`paired_ratio`)."""
        return paired_ratio(self.values[name], self.values[BASELINE])

    def cpu_ratio(self, name: str) -> float:
        """Paired CPU-time ratio to the bare Session."""
        return paired_ratio(self.cpu[name], self.cpu[BASELINE])


#: Figures 1b and 1c: proxy variables that send nothing through a proxy. 1b lists the
#: loopback hosts in ``no_proxy``; 1c also names a proxy (a port nothing listens on: a
#: call sent through it would fail) for HTTP and HTTPS, which ``no_proxy`` overrules.
NO_PROXY_ENV = {"no_proxy": "localhost,127.0.0.1"}
PROXY_LISTED_ENV = {
    "no_proxy": "localhost,127.0.0.1",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
}
REFERENCE_NO_ENV = "requests.Session(trust_env=False)"


def figure_per_call(url: str, legacy: Optional[Legacy], s: Settings, log: Log) -> PerCall:
    """Figure 1: keep-alive GET of a small JSON body, one thread."""
    clients = speed_clients(legacy, None, "f1", reference=True)
    return _per_call(url, clients, s, s.per_call_reps, "figure 1", log)


def figure_per_call_env(
    url: str, s: Settings, log: Log, environment: dict[str, str], label: str
) -> PerCall:
    """Figure 1 for the bare Session and ours, with ``environment`` added to ``os.environ``.

    requests scans ``os.environ`` for proxy variables on every call; a library may skip
    that scan while the environment names no proxy. Many machines set ``no_proxy``
    (containers, corporate networks), and many name a proxy as well: these show the
    ratio there. Nothing is proxied: ``no_proxy`` lists the host called.
    """
    wanted = (BASELINE, "ConnectionManager()", "ConnectionManager(non-blocking limiter)")
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        clients = speed_clients(None, None, label, reference=True)
        _close([c for c in clients if c.name not in (*wanted, REFERENCE_NO_ENV)])
        clients = [c for c in clients if c.name in (*wanted, REFERENCE_NO_ENV)]
        return _per_call(url, clients, s, max(3, s.per_call_reps // 2), label, log)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _per_call(
    url: str, clients: list[Client], s: Settings, reps: int, label: str, log: Log
) -> PerCall:
    result = PerCall(url, reps, s.per_call_calls)
    try:
        live = _live(clients, result.skipped)
        for client in live:
            client.warm(url, s.per_call_warmup)
        for rep in range(reps):
            log(f"{label}: repetition {rep + 1}/{reps}")
            for client in live:
                if client.skipped is not None:
                    continue
                measure = functools.partial(client.per_call, url, s.per_call_calls)
                value = _guard(client, result.skipped, measure)
                if value is not None:
                    result.values.setdefault(client.name, []).append(value["seconds"])
                    result.cpu.setdefault(client.name, []).append(value["cpu"])
    finally:
        _close(clients)
    _drop_failed(result.values, result.skipped)
    return result


# --------------------------------------------------------------------------- figure 2
@dataclass
class Throughput:
    """Figure 2: calls per second by client and thread count, one value per repetition."""

    url: str
    reps: int
    seconds: float
    values: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def median(self, name: str, threads: int) -> float:
        """Median calls per second over repetitions."""
        return statistics.median(self.values[name][threads])

    def ratio(self, name: str, threads: int) -> float:
        """Paired ratio to the bare Session (see :func:`paired_ratio`)."""
        return paired_ratio(self.values[name][threads], self.values[BASELINE][threads])


def figure_throughput(url: str, legacy: Optional[Legacy], s: Settings, log: Log) -> Throughput:
    """Figure 2: 1, 4, 16 and 64 threads against the 50 ms endpoint; pools hold 64."""
    clients = speed_clients(legacy, max(THREADS), "f2", reference=False)
    result = Throughput(url, s.tp_reps, s.tp_seconds)
    try:
        live = _live(clients, result.skipped)
        for client in live:
            log(f"figure 2: warming up {client.name} at {max(THREADS)} threads")
            warm = functools.partial(client.throughput, url, max(THREADS), s.tp_warmup_seconds)
            _guard(client, result.skipped, warm)
        for rep in range(s.tp_reps):
            for threads in THREADS:
                log(f"figure 2: repetition {rep + 1}/{s.tp_reps}, {threads} threads")
                for client in live:
                    if client.skipped is not None:
                        continue
                    measure = functools.partial(client.throughput, url, threads, s.tp_seconds)
                    out = _guard(client, result.skipped, measure)
                    if out is None:
                        continue
                    per_client = result.values.setdefault(client.name, {})
                    per_client.setdefault(threads, []).append(out["calls"] / out["seconds"])
                    result.errors[client.name] = result.errors.get(client.name, 0) + int(
                        out["errors"]
                    )
    finally:
        _close(clients)
    for name in list(result.values):
        if name in result.skipped:
            del result.values[name]
    return result


# --------------------------------------------------------------------------- figure 3
@dataclass
class Rejection:
    """Figure 3, one client: refusing calls while the host's breaker is open."""

    name: str
    skipped: Optional[str] = None
    tripped_with: str = ""
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    connections_trip: int = 0
    connections_during: int = 0
    counted_rejections: Optional[int] = None

    @property
    def median(self) -> float:
        """Median over repetitions of the mean seconds per refused call."""
        return statistics.median(self.seconds)


def figure_rejection(legacy: Optional[Legacy], s: Settings, log: Log) -> list[Rejection]:
    """Figure 3: trip the breaker on a host that fails, then time refused calls.

    The host is a :class:`CountingListener`: every connection to it is counted, so the
    rows show how many connections the trip made and how many the refused calls made.
    """
    listener = CountingListener()
    url = listener.base + "/json"
    breaker = {"circuit_breaker_failure_threshold": 1, "max_retries": 0}
    cm = ConnectionManager(circuit_breaker_failure_threshold=1, max_retries=0)
    clients = [
        Client("ConnectionManager", cm.get, cm.close),
        _remote_client(legacy, "rcm 1.0.0", "f3-rcm", "rcm", {**breaker, **NON_BLOCKING}),
    ]
    rows: list[Rejection] = []
    try:
        for client in clients:
            row = Rejection(client.name, skipped=client.skipped)
            rows.append(row)
            if client.skipped is not None:
                continue
            log(f"figure 3: {client.name}")
            try:
                before = listener.accepted()
                row.tripped_with = client.trip(url)
                after_trip = listener.accepted()
                client.rejections(url, 200)  # warm-up, counted in the connections too
                for _ in range(s.reject_reps):
                    out = client.rejections(url, s.reject_calls)
                    row.seconds.append(float(out["seconds_per_call"]))
                    row.cpu.append(float(out.get("cpu_per_call", "nan")))
                    for name, count in out["errors"].items():
                        row.outcomes[name] = row.outcomes.get(name, 0) + int(count)
                row.calls = 200 + s.reject_reps * s.reject_calls
                row.connections_trip = after_trip - before
                row.connections_during = listener.accepted() - after_trip
            except LegacyError as exc:
                row.skipped = str(exc)
                continue
        stats = cm.get_stats()["hosts"]
        rows[0].counted_rejections = sum(int(h["rejected_open"]) for h in stats.values())
    finally:
        _close(clients)
        listener.close()
    return rows


# --------------------------------------------------------------------------- figure 4
def _window_max(times: list[float], period: float) -> int:
    """Most of ``times`` (sorted) in any window ``[t, t + period)``."""
    most = 0
    j = 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + period:
            j += 1
        most = max(most, j - i)
    return most


def _achieved(times: list[float], n: int) -> float:
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (len(times) - n) / span if span > 0 else float("inf")


@dataclass
class RateRun:
    """Figure 4, one strategy: when the requests of a limited, saturated client started.

    Three clocks on the same requests (all ``time.monotonic()``):

    - ``permits``: when the host's limiter granted the permit, as ``(before, after)`` its
      ``try_acquire`` call (which returned 0): what the limiter itself decides, so the
      targets use these. The burst factor counts only requests *provably* inside one
      window (``after_j - before_i < period``), so a thread preempted between the
      decision and the clock read cannot fake a violation; the rate uses midpoints;
    - ``wire``: when urllib3's ``HTTPConnectionPool.urlopen`` was entered, just before
      the request is written;
    - ``arrivals``: when the server had read the request line.

    Each later clock adds the scheduling lag of 8 threads sharing one GIL (up to several
    ms on 2 cores), which can push permits granted just over a period apart into one
    window; ``wire`` and ``arrivals`` show how much.
    """

    strategy: str
    n: int
    period: float
    threads: int
    calls: int
    errors: int
    permits: list[tuple[float, float]]
    wire: list[float]
    arrivals: list[float]
    #: Which series the targets use: "permits", or "wire" when the limiter hook saw
    #: fewer permits than calls (the library's limiter classes changed).
    source: str = "permits"

    @property
    def starts(self) -> list[float]:
        """The series the targets use (permit midpoints, or the wire times)."""
        if self.source == "permits":
            return [(before + after) / 2 for before, after in self.permits]
        return self.wire

    @property
    def configured(self) -> float:
        """N / period."""
        return self.n / self.period

    @property
    def achieved(self) -> float:
        """Requests per second after the first window: ``(M - N) / (t_M - t_1)``.

        For a limiter admitting N per period in bursts, the first N start at t_1 and each
        later window admits N more, so this is N / period when the limiter keeps its rate
        and lower when each window starts late.
        """
        return _achieved(self.starts, self.n)

    @property
    def burst(self) -> float:
        """Most starts in any window ``[t, t + period)``, divided by N."""
        if self.source != "permits":
            return _window_max(self.wire, self.period) / self.n
        most = 0
        for i, (first, _) in enumerate(self.permits):
            inside = sum(1 for _, after in self.permits[i:] if after - first < self.period)
            most = max(most, inside)
        return most / self.n

    def burst_of(self, times: list[float]) -> float:
        """:attr:`burst` of another series."""
        return _window_max(times, self.period) / self.n if times else float("nan")


@contextlib.contextmanager
def wire_starts(marker: str) -> Iterator[list[float]]:
    """Record ``time.monotonic()`` whenever urllib3 is asked to send a URL containing ``marker``.

    Wraps ``urllib3.connectionpool.HTTPConnectionPool.urlopen`` (every requests call goes
    through it, once per attempt) for the duration of the block; the list fills in place.
    """
    original = HTTPConnectionPool.urlopen
    starts: list[float] = []

    def urlopen(self: HTTPConnectionPool, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if marker in url:
            starts.append(time.monotonic())
        return original(self, method, url, *args, **kwargs)

    HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]
    try:
        yield starts
    finally:
        HTTPConnectionPool.urlopen = original  # type: ignore[method-assign]


@contextlib.contextmanager
def permit_times() -> Iterator[list[tuple[float, float]]]:
    """Record ``(before, after)`` ``time.monotonic()`` around every permit a limiter grants.

    Wraps ``try_acquire`` of the limiter classes in ``requests_connection_manager._limiter``
    (an internal module: if it changes, the list stays empty and the figure falls back to
    the wire times).
    """
    times: list[tuple[float, float]] = []
    try:
        from requests_connection_manager import _limiter as module
    except ImportError:
        yield times
        return
    originals: dict[type, Any] = {}
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and "try_acquire" in vars(value)
            and not getattr(value, "_is_protocol", False)
        ):
            originals[value] = vars(value)["try_acquire"]

    def wrap(original: Callable[[Any], float]) -> Callable[[Any], float]:
        def try_acquire(self: Any) -> float:
            before = time.monotonic()
            wait = original(self)
            if wait == 0.0:
                times.append((before, time.monotonic()))
            return wait

        return try_acquire

    for cls, original in originals.items():
        setattr(cls, "try_acquire", wrap(original))  # noqa: B010 - a class attribute
    try:
        yield times
    finally:
        for cls, original in originals.items():
            setattr(cls, "try_acquire", original)  # noqa: B010


def figure_rate_limit(server: PyServer, s: Settings, log: Log) -> list[RateRun]:
    """Figure 4: ``rate_threads`` threads against a limit of N per period, for each strategy.

    Each run first opens one connection per thread (a few permits), waits a whole period
    plus 0.2 s so the limiter forgets them, then makes ``N * (periods + 1)`` calls: the
    first N start at once and the run spans ``periods`` periods.
    """
    runs = []
    for strategy in ("fixed-window", "sliding-window"):
        total = s.rate_n * (s.rate_periods + 1)
        log(f"figure 4: {strategy}, {total} calls at {s.rate_n} per {s.rate_period:g} s")
        cm = ConnectionManager(
            rate_limit_requests=s.rate_n,
            rate_limit_period=s.rate_period,
            rate_limit_strategy=strategy,
            rate_limit_max_wait=None,
            pool_maxsize=s.rate_threads,
        )
        url = server.base + f"/stamp/{strategy}"
        try:
            loops.once_per_thread(cm.get, server.base + f"/stamp/warm-{strategy}", s.rate_threads)
            time.sleep(s.rate_period + 0.2)
            server.stamps(strategy)
            with permit_times() as permits, wire_starts(f"/stamp/{strategy}") as wire:
                out = loops.fixed_total(cm.get, url, s.rate_threads, total)
        finally:
            cm.close()
        calls = total - int(out["errors"])
        runs.append(
            RateRun(
                strategy,
                s.rate_n,
                s.rate_period,
                s.rate_threads,
                calls,
                int(out["errors"]),
                sorted(permits),
                sorted(wire),
                sorted(server.stamps(strategy)),
                "permits" if len(permits) >= calls else "wire",
            )
        )
    return runs


# --------------------------------------------------------------------------- figure 5
@dataclass
class Memory:
    """Figure 5: traced memory after calling 1, ..., K distinct hosts."""

    points: list[tuple[int, int, int]] = field(default_factory=list)  # (called, tracked, bytes)
    seconds: float = 0.0

    def per_host(self) -> float:
        """Bytes per tracked host, while the table grows (first to second checkpoint)."""
        (_, t0, b0), (_, t1, b1) = self.points[0], self.points[1]
        return (b1 - b0) / max(1, t1 - t0)

    def plateau(self) -> float:
        """Memory at the last checkpoint over memory at the one before it."""
        return self.points[-1][2] / self.points[-2][2]


def _loopback(index: int) -> str:
    """The ``index``-th distinct loopback address, 127.1.0.1 on (never 127.0.0.1)."""
    return f"127.1.{index // 250}.{index % 250 + 1}"


def figure_memory(s: Settings, log: Log) -> Memory:
    """Figure 5: a manager calling distinct hosts on a port nothing listens on.

    Connection refused is immediate on loopback; ``max_retries=0`` makes one attempt per
    call. Memory is what tracemalloc traces after a full garbage collection, measured from
    just before the manager is created.
    """
    port = free_port()
    result = Memory()
    checkpoints = sorted(set(s.memory_hosts))
    start = time.perf_counter()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        cm = ConnectionManager(max_retries=0)
        called = 0
        for checkpoint in checkpoints:
            while called < checkpoint:
                with contextlib.suppress(requests.RequestException):
                    cm.get(f"http://{_loopback(called)}:{port}/")
                called += 1
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0] - base
            tracked = len(cm.get_stats()["hosts"])
            result.points.append((called, tracked, traced))
            log(f"figure 5: {called} hosts called, {tracked} tracked, {traced / 1024:.0f} KiB")
        cm.close()
    finally:
        tracemalloc.stop()
    result.seconds = time.perf_counter() - start
    return result


# ------------------------------------------------------------------------------ helpers
def _live(clients: list[Client], skipped: dict[str, str]) -> list[Client]:
    for client in clients:
        if client.skipped is not None:
            skipped[client.name] = client.skipped
    return [c for c in clients if c.skipped is None]


def _guard(client: Client, skipped: dict[str, str], measure: Callable[[], T]) -> Optional[T]:
    """Run one measurement; a dead 1.0.0 worker marks the client skipped instead of failing."""
    try:
        return measure()
    except LegacyError as exc:
        skipped[client.name] = client.skipped or str(exc)
        return None


def _drop_failed(values: dict[str, list[float]], skipped: dict[str, str]) -> None:
    for name in list(values):
        if name in skipped:
            values.pop(name)


def _close(clients: list[Client]) -> None:
    for client in clients:
        try:
            client.close()
        except Exception as exc:
            logging.getLogger(__name__).debug("closing %s: %s", client.name, exc)
