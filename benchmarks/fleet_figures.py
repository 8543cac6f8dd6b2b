"""Shared-state figures: round trips and time added per call, propagation, failover.

Run from the repository root (needs ``redis-server`` and ``redis-cli`` on PATH and the
``redis`` extra)::

    PYTHONPATH=src:. python -m benchmarks.fleet_figures            # everything
    PYTHONPATH=src:. python -m benchmarks.fleet_figures costs      # or one part

Every part starts its own servers on free loopback ports.

**costs** - for each configuration (breaker only, with the defaults' failure-ratio rule;
breaker + fixed-window limit; breaker + sliding-window limit) and each Redis (one node via
``redis://``, a 3+3 cluster via ``redis+cluster://``): ``REPS`` rounds of ``CALLS``
keep-alive GETs to a loopback HTTP server, alternating a manager without shared state and
one with it, after a warm-up. Reported: the median over rounds of the mean time per call,
for each, and the median of the rounds' differences (the time shared state adds: paired
rounds cancel most of the drift of a shared machine); the CPU time the calling thread adds
per call (``added_cpu_us``: ``time.thread_time``, which other processes' load inflates
less; Redis's own work is not in it); the time the call's path spends in Redis scripts,
per call (``redis_us``: each script timed where the link runs it); a redis-py ``PING``
round trip on the same machine for scale (``ping_us``); round trips per call on the
call's path (every script the manager runs, counted by the thread that runs it: the
caller's thread is the call's path, ``rcm-fleet-tick`` the background flusher); and the
scripts the Redis nodes ran per call (``INFO commandstats``: EVALSHA + EVAL, background
included).

**propagation** - a listener process keeps a manager on ``N`` hosts (dead loopback ports,
so each call fails fast), each with a failure streak started; the main process then opens
the breakers one by one, 20 ms apart. Latency = the listener's ``BreakerStateChanged``
event minus the opener's own (``time.monotonic()`` is one clock for every process of the
machine).

**failover** - calls in a loop (one thread, 2 ms apart) through a manager on the cluster
and on Sentinel while the primary holding the host's slot is SIGKILLed: when the outage is
noticed and when sharing resumes (``SharedStateChanged``, from the kill), the calls made,
the errors raised (anything not a ``ConnectionManagerError`` escapes the contract), and the
longest call.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable

import requests_connection_manager._shared as shared_module
from benchmarks.servers import Nginx, PyServer, find_or_install_nginx
from requests_connection_manager import ConnectionManager, ConnectionManagerError
from requests_connection_manager.events import BreakerStateChanged, SharedStateChanged
from tests.rediscluster import LocalRedisCluster
from tests.redisfleet import script_calls
from tests.redissentinel import LocalSentinel
from tests.redisserver import RedisServer
from tests.servers import free_port

CALLS = 100
REPS = 41
HOSTS = 40
CONFIGS: dict[str, dict[str, Any]] = {
    "breaker only (defaults)": {},
    "breaker + fixed-window limit": {"rate_limit_requests": 10**9, "rate_limit_period": 1},
    "breaker + sliding-window limit": {
        "rate_limit_requests": 10**9,
        "rate_limit_period": 1,
        "rate_limit_strategy": "sliding-window",
    },
}


@contextmanager
def _http() -> Iterator[str]:
    """``GET /json`` on nginx (else the threaded Python server), in a process of its own.

    Not a thread of this process: a server thread would compete for this process's GIL
    while a call waits for Redis, and charge the wait to shared state.
    """
    workdir = Path(tempfile.mkdtemp(prefix="rcm-fleet-http-"))
    executable, _ = find_or_install_nginx(lambda message: None)
    server: Any = Nginx(executable, workdir) if executable else PyServer(workdir)
    server.start()
    try:
        yield f"{server.base}/json"
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


class _ScriptCounter:
    """Counts every script a link runs by the name of the thread that runs it, and times them."""

    def __init__(self) -> None:
        self.by_thread: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._real = shared_module.run_script
        self._lock = threading.Lock()

    def __enter__(self) -> _ScriptCounter:
        def counted(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return self._real(*args)
            finally:
                name = threading.current_thread().name
                with self._lock:
                    self.by_thread[name] += 1
                    self.seconds[name] += time.perf_counter() - start

        shared_module.run_script = counted  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        shared_module.run_script = self._real

    def take(self) -> tuple[Counter[str], Counter[str]]:
        with self._lock:
            counts, self.by_thread = self.by_thread, Counter()
            seconds, self.seconds = self.seconds, Counter()
        return counts, seconds


def _run(manager: ConnectionManager, url: str) -> tuple[float, float]:
    """Wall time and the calling thread's CPU time per call, µs."""
    start, cpu = time.perf_counter(), time.thread_time()
    for _ in range(CALLS):
        manager.get(url)
    wall = (time.perf_counter() - start) / CALLS * 1e6
    return wall, (time.thread_time() - cpu) / CALLS * 1e6


def _ping_us(redis_url: str) -> float:
    """One PING round trip from redis-py, µs (the floor of one round trip on this machine)."""
    import redis

    client = redis.Redis.from_url(redis_url.replace("redis+cluster", "redis").split(",")[0])
    try:
        start = time.perf_counter()
        for _ in range(CALLS):
            client.ping()
        return (time.perf_counter() - start) / CALLS * 1e6
    finally:
        client.close()


def _costs_one(url: str, redis_url: str, ports: list[int], extra: dict[str, Any]) -> dict[str, Any]:
    local = ConnectionManager(**extra)
    shared = ConnectionManager(redis_url=redis_url, **extra)
    try:
        for manager in (local, shared):
            for _ in range(100):
                manager.get(url)
        times: dict[str, list[float]] = {"local": [], "shared": [], "added": [], "ping": []}
        cpu: list[float] = []
        with _ScriptCounter() as counter:
            counter.take()
            before = script_calls(ports)
            for _ in range(REPS):
                (local_us, local_cpu), (shared_us, shared_cpu) = _run(local, url), _run(shared, url)
                times["local"].append(local_us)
                times["shared"].append(shared_us)
                times["added"].append(shared_us - local_us)
                cpu.append(shared_cpu - local_cpu)
            ran = script_calls(ports) - before
            counted, seconds = counter.take()
        for _ in range(5):
            times["ping"].append(_ping_us(redis_url))
        assert shared.get_stats()["shared_state"]["healthy"], "Redis fell over during the run"
    finally:
        local.close()
        shared.close()
    calls = CALLS * REPS
    return {
        "local_us": round(statistics.median(times["local"]), 1),
        "shared_us": round(statistics.median(times["shared"]), 1),
        "added_us": round(statistics.median(times["added"]), 1),
        "added_cpu_us": round(statistics.median(cpu), 1),
        "redis_us": round(seconds["MainThread"] / calls * 1e6, 1),
        "ping_us": round(statistics.median(times["ping"]), 1),
        "call_path_round_trips": round(counted["MainThread"] / calls, 3),
        "background_round_trips": round(counted["rcm-fleet-tick"] / calls, 3),
        "scripts_run_per_call": round(ran / calls, 3),
    }


def costs() -> None:
    """Round trips and time added per call (see the module docstring)."""
    with _http() as url, RedisServer() as single, LocalRedisCluster() as cluster:
        setups = [
            ("single", single.url, [single.port]),
            ("cluster", cluster.url, [n.port for n in cluster.primaries()]),
        ]
        for name, redis_url, ports in setups:
            for config, extra in CONFIGS.items():
                result = _costs_one(url, redis_url, ports, extra)
                print(json.dumps({"redis": name, "config": config, **result}), flush=True)


# ---------------------------------------------------------------------- propagation
_LISTENER = """
import json, sys, threading, time
from requests_connection_manager import ConnectionManager
seen, lock = {}, threading.Lock()
def on_event(event):
    if type(event).__name__ == "BreakerStateChanged" and event.new == "open":
        with lock:
            seen.setdefault(event.host, time.monotonic())
redis_url, ports = sys.argv[1], json.loads(sys.argv[2])
with ConnectionManager(redis_url=redis_url, max_retries=0, timeout=0.5,
                       circuit_breaker_failure_threshold=2, on_event=on_event) as cm:
    for port in ports:
        try:
            cm.get(f"http://127.0.0.1:{port}/")
        except Exception:
            pass
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while len(seen) < len(ports) and time.monotonic() < deadline:
        time.sleep(0.01)
    print(json.dumps(seen), flush=True)
"""


def _propagation_one(redis_url: str) -> dict[str, Any]:
    ports = [free_port() for _ in range(HOSTS)]
    listener = subprocess.Popen(
        [sys.executable, "-c", _LISTENER, redis_url, json.dumps(ports)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert listener.stdout is not None
    assert listener.stdout.readline().strip() == "ready"
    opened: dict[str, float] = {}

    def on_event(event: Any) -> None:
        if isinstance(event, BreakerStateChanged) and event.new == "open":
            opened.setdefault(event.host, time.monotonic())

    with ConnectionManager(
        redis_url=redis_url,
        max_retries=0,
        timeout=0.5,
        circuit_breaker_failure_threshold=2,
        on_event=on_event,
    ) as cm:
        for port in ports:
            with suppress(ConnectionManagerError):
                cm.get(f"http://127.0.0.1:{port}/")
            time.sleep(0.02)
    seen = json.loads(listener.communicate(timeout=60)[0].strip().splitlines()[-1])
    latencies = sorted((seen[host] - at) * 1000 for host, at in opened.items() if host in seen)
    return {
        "heard": f"{len(latencies)}/{len(ports)}",
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "max_ms": round(latencies[-1], 2),
    }


def propagation() -> None:
    """How soon another process hears that a breaker opened (see the module docstring)."""
    with RedisServer() as single, LocalRedisCluster() as cluster, LocalSentinel() as sentinel:
        for name, url in (
            ("single", single.url),
            ("cluster", cluster.url),
            ("sentinel", _sentinel_url(sentinel)),
        ):
            print(json.dumps({"redis": name, **_propagation_one(url)}), flush=True)


def _sentinel_url(sentinel: LocalSentinel) -> str:
    hosts = ",".join(f"127.0.0.1:{n.port}" for n in sentinel.sentinel_nodes)
    return f"redis+sentinel://{hosts}/{sentinel.service}"


# ------------------------------------------------------------------------ failover
def _failover_one(
    redis_url: str, url: str, kill: Callable[[str], Any], wait: Callable[[], Any]
) -> dict[str, Any]:
    events: list[tuple[float, bool]] = []

    def on_event(event: Any) -> None:
        if isinstance(event, SharedStateChanged):
            events.append((time.monotonic(), event.healthy))

    errors: Counter[str] = Counter()
    calls, longest = 0, 0.0
    stop = threading.Event()
    with ConnectionManager(
        redis_url=redis_url,
        rate_limit_requests=10**6,
        rate_limit_period=1,
        on_event=on_event,
    ) as cm:
        host = url.split("/")[2]

        def loop() -> None:
            nonlocal calls, longest
            while not stop.is_set():
                began = time.monotonic()
                try:
                    cm.get(url)
                except ConnectionManagerError as exc:
                    errors[type(exc).__name__] += 1
                except Exception as exc:
                    errors[f"ESCAPED {type(exc).__name__}"] += 1
                longest = max(longest, time.monotonic() - began)
                calls += 1
                time.sleep(0.002)

        worker = threading.Thread(target=loop)
        worker.start()
        time.sleep(0.5)
        killed = time.monotonic()
        kill(f"{{rcm:http://{host}}}:br")
        wait()
        promoted = time.monotonic() - killed
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(ok for at, ok in events if at > killed):
            time.sleep(0.05)
        stop.set()
        worker.join(10)
    down = [at - killed for at, ok in events if not ok and at >= killed]
    up = [at - killed for at, ok in events if ok and at >= killed]
    return {
        "promoted_s": round(promoted, 2),
        "outage_noticed_s": round(down[0], 3) if down else None,
        "sharing_resumed_s": round(up[0], 2) if up else None,
        "outages": len(down),
        "calls": calls,
        "errors": dict(errors),
        "longest_call_ms": round(longest * 1000, 1),
    }


def failover() -> None:
    """Kill the primary holding a host's slot (see the module docstring)."""
    with _http() as url, LocalRedisCluster() as cluster:

        def kill_owner(key: str) -> None:
            cluster.kill(cluster.primary_for(key))

        key = f"{{rcm:http://{url.split('/')[2]}}}:br"
        result = _failover_one(
            cluster.url, url, kill_owner, lambda: cluster.wait_failover(cluster.keyslot(key))
        )
        print(json.dumps({"redis": "cluster", **result}), flush=True)
    with _http() as url, LocalSentinel() as sentinel:
        result = _failover_one(
            _sentinel_url(sentinel),
            url,
            lambda key: sentinel.kill_primary(),
            sentinel.wait_failover,
        )
        print(json.dumps({"redis": "sentinel", **result}), flush=True)


def main() -> None:
    """Run the parts named on the command line (all by default)."""
    parts = {"costs": costs, "propagation": propagation, "failover": failover}
    for name in sys.argv[1:] or list(parts):
        print(f"# {name}", flush=True)
        parts[name]()


if __name__ == "__main__":
    main()
