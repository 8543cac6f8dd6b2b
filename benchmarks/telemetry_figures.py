"""What OpenTelemetry costs per call: paired runs, telemetry on against telemetry off.

Two settings, each against a local fast server (nginx ``GET /json``, or the Python
server when nginx is missing), one thread, keep-alive:

1. ``opentelemetry-api`` installed and **no SDK configured** (the global providers are the
   API's no-op proxies): ``ConnectionManager()`` against ``ConnectionManager(telemetry=False)``.
   The target is at most 2 % per call. A second ``telemetry=False`` client shows the noise
   of the measurement (an A/A comparison).
2. **The SDK configured**, with in-memory exporters: a ``TracerProvider`` with a
   ``SimpleSpanProcessor`` (spans exported synchronously, at the end of each span) or a
   ``BatchSpanProcessor`` (exported by a background thread), and a ``MeterProvider`` with
   an ``InMemoryMetricReader``; against ``telemetry=False``.

Within a repetition the clients take turns call by call (the order flipped every
repetition), so load from elsewhere on the machine hits them alike; each figure is the
median over repetitions of the ratio on/off (wall, and the calling thread's CPU time: the
server runs in another process), as ``figures.paired_ratio`` does. The subscriber's own
CPU cost per call is also measured alone, feeding it the four events of a plain call.

Run: ``PYTHONPATH=src python benchmarks/telemetry_figures.py [--calls N] [--reps N]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import loops
from figures import paired_ratio, quiet_library_logs
from servers import Nginx, PyServer

from requests_connection_manager import ConnectionManager
from requests_connection_manager import _telemetry as telemetry
from requests_connection_manager.events import (
    AttemptFinished,
    AttemptStarted,
    RequestFinished,
    RequestStarted,
)

OFF = "telemetry=False"
#: The same client again: its ratio to OFF is the noise of the measurement (an A/A test).
AGAIN = "telemetry=False, again (A/A)"


def _server(workdir: Path) -> tuple[Any, str]:
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin")
    if nginx is not None:
        server: Any = Nginx(nginx, workdir / "nginx")
        try:
            server.start()
            return server, f"nginx ({server.version()})"
        except RuntimeError as exc:
            print(f"nginx did not start ({exc}); using the Python server", file=sys.stderr)
    server = PyServer(workdir / "py")
    server.start()
    return server, "the Python server (ThreadingHTTPServer)"


def _paired(
    clients: dict[str, ConnectionManager],
    url: str,
    calls: int,
    reps: int,
    warmup: int,
    between: Callable[[], None] = lambda: None,
) -> dict[str, dict[str, list[float]]]:
    """Per client, per repetition: mean wall and CPU seconds per call.

    The clients take turns call by call (A B A B ..., the order flipped every repetition),
    so a burst of load from elsewhere on the machine hits them alike; each call is timed
    on its own (wall: ``perf_counter_ns``, CPU: this thread's ``thread_time_ns``).
    """
    for cm in clients.values():
        loops.warm(cm.get, url, warmup)
    out: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in clients}
    names = list(clients)
    wall_clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for rep in range(reps):
        between()
        order = [(n, clients[n].get) for n in (names if rep % 2 == 0 else names[::-1])]
        wall = dict.fromkeys(names, 0)
        cpu = dict.fromkeys(names, 0)
        for _ in range(calls):
            for name, get in order:
                w, c = wall_clock(), cpu_clock()
                get(url)
                cpu[name] += cpu_clock() - c
                wall[name] += wall_clock() - w
        for name in names:
            out[name]["wall"].append(wall[name] / calls / 1e9)
            out[name]["cpu"].append(cpu[name] / calls / 1e9)
        print(f"  repetition {rep + 1}/{reps}", file=sys.stderr)
    return out


def _summary(values: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    off = values[OFF]
    summary = {}
    for name, v in values.items():
        summary[name] = {
            "wall_us": statistics.median(v["wall"]) * 1e6,
            "cpu_us": statistics.median(v["cpu"]) * 1e6,
            "wall_ratio": paired_ratio(v["wall"], off["wall"]),
            "cpu_ratio": paired_ratio(v["cpu"], off["cpu"]),
        }
    return summary


def _subscriber_cost(subscriber: Optional[Callable[[Any], None]], calls: int) -> float:
    """CPU seconds per call the subscriber takes for one plain call's four events."""
    host = "http://127.0.0.1:8080"
    headers: dict[str, str] = {}
    handle = subscriber if subscriber is not None else (lambda event: None)
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for i in range(calls):
            handle(RequestStarted(i, host, "GET", f"{host}/json", 0.0))
            handle(AttemptStarted(i, host, 1, False, None, 0.0, headers))
            handle(AttemptFinished(i, host, 1, 200, None, "success", 0.001, 0.0))
            handle(RequestFinished(i, host, 1, 200, None, 0.001, 0.0))
        best = min(best, (time.process_time() - start) / calls)
    return best


def _sdk() -> dict[str, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    simple_exporter, batch_exporter = InMemorySpanExporter(), InMemorySpanExporter()
    simple = TracerProvider()
    simple.add_span_processor(SimpleSpanProcessor(simple_exporter))
    batch = TracerProvider()
    batch.add_span_processor(BatchSpanProcessor(batch_exporter))
    return {
        "simple": simple,
        "batch": batch,
        "meters": MeterProvider(metric_readers=[InMemoryMetricReader()]),
        "exporters": (simple_exporter, batch_exporter),
    }


def _table(summary: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        "| client | wall µs/call | CPU µs/call | wall vs off | CPU vs off |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['wall_us']:.0f} | {s['cpu_us']:.0f} | "
            f"{(s['wall_ratio'] - 1) * 100:+.1f} % | {(s['cpu_ratio'] - 1) * 100:+.1f} % |"
        )
    return lines


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="calls per repetition")
    parser.add_argument("--reps", type=int, default=15, help="repetitions")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up calls per client")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if telemetry._api() is None:
        print("opentelemetry-api is not installed: pip install '.[otel]'", file=sys.stderr)
        return 2
    quiet_library_logs()
    api = telemetry._api()
    assert api is not None
    global_tracer = telemetry._global_provider(api.trace, "_TRACER_PROVIDER", lambda: None)
    if global_tracer is not None:
        print("a global tracer provider is set: figure 1 needs none", file=sys.stderr)
        return 2
    results: dict[str, Any] = {"calls": args.calls, "reps": args.reps}
    with tempfile.TemporaryDirectory(prefix="rcm-tel-") as tmp:
        server, described = _server(Path(tmp))
        url = f"{server.base}/json"
        results["server"] = described
        try:
            print("figure 1: opentelemetry-api, no SDK", file=sys.stderr)
            clients = {
                OFF: ConnectionManager(telemetry=False),
                AGAIN: ConnectionManager(telemetry=False),
                "no SDK": ConnectionManager(),
            }
            try:
                results["no_sdk"] = _summary(
                    _paired(clients, url, args.calls, args.reps, args.warmup)
                )
                results["subscriber_no_sdk_us"] = (
                    _subscriber_cost(clients["no SDK"]._engine.telemetry, 20_000) * 1e6
                )
            finally:
                for cm in clients.values():
                    cm.close()
            print("figure 2: SDK with in-memory exporters", file=sys.stderr)
            sdk = _sdk()
            clients = {
                OFF: ConnectionManager(telemetry=False),
                "SDK, SimpleSpanProcessor": ConnectionManager(
                    tracer_provider=sdk["simple"], meter_provider=sdk["meters"]
                ),
                "SDK, BatchSpanProcessor": ConnectionManager(
                    tracer_provider=sdk["batch"], meter_provider=sdk["meters"]
                ),
            }

            def clear() -> None:
                for exporter in sdk["exporters"]:
                    exporter.clear()

            try:
                results["sdk"] = _summary(
                    _paired(clients, url, args.calls, args.reps, args.warmup, clear)
                )
                subscriber = clients["SDK, SimpleSpanProcessor"]._engine.telemetry
                results["subscriber_sdk_us"] = _subscriber_cost(subscriber, 5_000) * 1e6
                clear()
                results["subscriber_none_us"] = _subscriber_cost(None, 20_000) * 1e6
            finally:
                for cm in clients.values():
                    cm.close()
                sdk["simple"].shutdown()
                sdk["batch"].shutdown()
                sdk["meters"].shutdown()
        finally:
            server.stop()
    lines = [
        f"{args.reps} repetitions of {args.calls} keep-alive GETs against {results['server']}, "
        "one thread; medians; ratios paired per repetition.",
        "",
        "Figure 1: opentelemetry-api installed, no SDK configured",
        "",
        *_table(results["no_sdk"]),
        "",
        "Figure 2: the SDK with in-memory exporters",
        "",
        *_table(results["sdk"]),
        "",
        "The subscriber alone, CPU µs per call (the four events of a plain call; the events "
        f"themselves cost {results['subscriber_none_us']:.2f} µs): "
        f"no SDK {results['subscriber_no_sdk_us'] - results['subscriber_none_us']:.2f} µs, "
        f"SDK {results['subscriber_sdk_us'] - results['subscriber_none_us']:.2f} µs.",
    ]
    print("\n".join(lines))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
