"""Quick figures for the core issue: concurrency and per-call overhead vs a bare Session.

Run: python benchmarks/core_figures.py  (loopback only; about 20 s). Not part of the tests.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import requests

from requests_connection_manager import ConnectionManager


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle + delayed ACK adds 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.05)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def per_call(get: Callable[[str], object], url: str, n: int) -> float:
    for _ in range(50):
        get(url)
    start = time.perf_counter()
    for _ in range(n):
        get(url)
    return (time.perf_counter() - start) / n


def throughput(get: Callable[[str], object], url: str, threads: int, calls: int) -> float:
    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        list(pool.map(lambda _: get(url), range(calls)))
        return calls / (time.perf_counter() - start)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=16)
    session.mount("http://", adapter)
    cm = ConnectionManager(pool_maxsize=16)
    cm_limited = ConnectionManager(pool_maxsize=16, rate_limit_requests=10**9, rate_limit_period=1)
    clients: dict[str, Callable[[str], object]] = {
        "bare Session": session.get,
        "ConnectionManager": cm.get,
        "CM + limiter": cm_limited.get,
    }

    rounds: dict[str, list[float]] = {k: [] for k in clients}
    for _ in range(5):  # interleave A B C A B C ...
        for name, get in clients.items():
            rounds[name].append(per_call(get, base + "/fast", 400))
    print("per-call time, keep-alive GET of a small JSON body (median of 5 x 400 calls)")
    base_t = statistics.median(rounds["bare Session"])
    for name, values in rounds.items():
        t = statistics.median(values)
        print(f"  {name:18s} {t * 1e6:8.1f} us   ratio {t / base_t:5.3f}")

    print("throughput, 8 threads, 50 ms endpoint, 160 calls (median of 3)")
    tp: dict[str, list[float]] = {k: [] for k in clients}
    for _ in range(3):
        for name, get in clients.items():
            tp[name].append(throughput(get, base + "/slow", 8, 160))
    base_tp = statistics.median(tp["bare Session"])
    for name, values in tp.items():
        v = statistics.median(values)
        print(f"  {name:18s} {v:8.1f} calls/s   ratio {v / base_tp:5.3f}   (ideal 160)")
    cm.close()
    cm_limited.close()
    session.close()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
