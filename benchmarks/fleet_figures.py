"""Shared state figures: Redis round trips per request and latency added, on loopback.

Run: ``python benchmarks/fleet_figures.py`` (needs ``redis-server`` on PATH and the
``redis`` extra). Starts its own redis-server and HTTP server on free loopback ports.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from requests_connection_manager import ConnectionManager

CALLS = 400
REPS = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else delayed ACKs add 40 ms to every response

    def do_GET(self) -> None:
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _http() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/json"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        client.close()
        process.kill()
        process.wait()


# Commands Redis runs inside limits' Lua scripts (one EVALSHA round trip runs them all).
_INSIDE_SCRIPTS = {"lpush", "ltrim", "lindex", "lrange", "incrby", "expire"}


def _round_trips(client: redis.Redis) -> int:
    """Commands sent by clients so far: every command, minus those run inside scripts."""
    stats = client.info("commandstats")
    return sum(
        int(entry["calls"])
        for name, entry in stats.items()
        if name.removeprefix("cmdstat_") not in _INSIDE_SCRIPTS
    )


def main() -> None:
    configs: dict[str, dict[str, Any]] = {
        "breaker only (defaults)": {},
        "breaker + fixed-window limit": {"rate_limit_requests": 10**9, "rate_limit_period": 1},
        "breaker + sliding-window limit": {
            "rate_limit_requests": 10**9,
            "rate_limit_period": 1,
            "rate_limit_strategy": "sliding-window",
        },
    }
    with _redis() as redis_url, _http() as url:
        client = redis.Redis.from_url(redis_url)
        print(
            f"{'configuration':34} {'local us':>9} {'shared us':>10} {'added us':>9} "
            f"{'round trips/call':>17}"
        )
        for name, extra in configs.items():
            local = ConnectionManager(**extra)
            shared = ConnectionManager(redis_url=redis_url, **extra)
            for manager in (local, shared):
                for _ in range(50):
                    manager.get(url)
            times: dict[str, list[float]] = {"local": [], "shared": []}
            per_call: list[float] = []
            for _ in range(REPS):
                for label, manager in (("local", local), ("shared", shared)):
                    before = _round_trips(client)
                    start = time.perf_counter()
                    for _ in range(CALLS):
                        manager.get(url)
                    times[label].append((time.perf_counter() - start) / CALLS * 1e6)
                    if label == "shared":
                        # minus the INFO that reads the counters
                        per_call.append((_round_trips(client) - before - 1) / CALLS)
            local_us = statistics.median(times["local"])
            shared_us = statistics.median(times["shared"])
            print(
                f"{name:34} {local_us:9.1f} {shared_us:10.1f} {shared_us - local_us:9.1f} "
                f"{statistics.median(per_call):17.2f}"
            )
            assert shared.get_stats()["shared_state"]["healthy"], "Redis fell over during the run"
            local.close()
            shared.close()
        client.close()


if __name__ == "__main__":
    main()
