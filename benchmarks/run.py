"""The benchmark suite: one command, every figure, side by side, with targets.

    python benchmarks/run.py                          # full run (a few minutes on 2 cores)
    python benchmarks/run.py --quick                  # smoke run (under a minute)
    python benchmarks/run.py --out docs/benchmarks.md # also write the page and its plot

Starts its own servers on 127.0.0.1 (nginx for the fast endpoint, installed with apt-get
if missing, else a threaded Python server; a threaded Python server for the 50 ms
endpoint), installs requests-connection-manager 1.0.0 in a throwaway venv for comparison,
measures, stops everything (also on Ctrl-C), prints the tables to stdout and progress to
stderr. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Optional

import figures
import report
from legacy import Legacy
from servers import Nginx, PyServer, find_or_install_nginx

PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
)


class Progress:
    """Progress lines on stderr, stamped with the seconds since the start; kept for the page."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        line = f"[{time.monotonic() - self.start:6.1f} s] {message}"
        self.lines.append(line)
        print(line, file=sys.stderr, flush=True)


def cpu_busy(seconds: float = 1.0) -> Optional[float]:
    """Share of all cores busy over ``seconds`` (from /proc/stat), or None where unknown."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields) - idle, sum(fields)

    try:
        busy0, total0 = sample()
        time.sleep(seconds)
        busy1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (busy1 - busy0) / max(1, total1 - total0)


def load_average() -> str:
    """The 1-minute load average, or "unknown"."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "unknown"


def kept_sections(page: str) -> list[str]:
    """The sections other scripts wrote into the page, each between its markers.

    ``<!-- name:begin -->`` ... ``<!-- name:end -->`` (``benchmarks/signals_figures.py``
    writes one): rewriting the page keeps them, after this script's own report.
    """
    return [
        match.group(0)
        for match in re.finditer(
            r"<!-- (?P<name>[\w.-]+):begin -->.*?<!-- (?P=name):end -->", page, re.DOTALL
        )
    ]


def _interrupt(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Benchmark ConnectionManager against urllib3, requests and rcm 1.0.0.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke mode: far fewer repetitions")
    parser.add_argument(
        "--out",
        type=Path,
        help="write the Markdown report here (the plot goes to img/throughput.png beside it)",
    )
    parser.add_argument("--no-legacy", action="store_true", help="do not install or measure 1.0.0")
    parser.add_argument(
        "--note", action="append", default=[], help="a note for the report (repeatable)"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace, log: Progress) -> report.Results:
    """Start the servers and the 1.0.0 worker, measure every figure, stop everything."""
    settings = figures.Settings.quick() if args.quick else figures.Settings()
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
    if args.out is not None:
        command += f" --out {args.out}"
    if args.no_legacy:
        command += " --no-legacy"
    if os.environ.get("PYTHONPATH"):
        command = f"PYTHONPATH={os.environ['PYTHONPATH']} {command}"
    notes: list[str] = list(args.note)
    extra: dict[str, str] = {}
    results = report.Results(
        command=command,
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        settings=settings,
        machine={},
        notes=notes,
        log=log.lines,
    )
    busy = cpu_busy()
    if busy is not None:
        extra["CPU busy before the run"] = (
            f"{busy:.0%} of all cores over 1 s; load average {load_average()}"
        )
        if busy > 0.10:
            notes.append(
                f"other processes kept {busy:.0%} of the CPU busy just before the run: "
                "absolute numbers are pessimistic and ratios noisier than on an idle machine"
            )
            log(notes[-1])
    with tempfile.TemporaryDirectory(prefix="rcm-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        pyserver = PyServer(workdir / "pyserver")
        log("starting the threaded Python server (50 ms endpoint, arrival times)")
        pyserver.start()
        stack.callback(pyserver.stop)

        executable, how = find_or_install_nginx(log)
        fast = pyserver.base + "/json"
        if executable is not None:
            nginx = Nginx(executable, workdir / "nginx")
            try:
                log(f"starting nginx ({how})")
                nginx.start()
                stack.callback(nginx.stop)
                fast = nginx.base + "/json"
                extra["fast server"] = f"{nginx.version()}, worker_processes 1, keep-alive"
            except RuntimeError as exc:
                notes.append(
                    f"nginx could not start ({exc}); the fast endpoint is the Python server"
                )
        else:
            notes.append(f"no nginx ({how}); the fast endpoint is the threaded Python server")
        if "fast server" not in extra:
            extra["fast server"] = "threaded Python server (fallback; nginx unavailable)"
            log(notes[-1])
        extra["slow server"] = "http.server.ThreadingHTTPServer, HTTP/1.1, own process"

        legacy: Optional[Legacy] = None
        if args.no_legacy:
            notes.append("requests-connection-manager 1.0.0 skipped: --no-legacy")
        else:
            legacy = Legacy(workdir / "legacy", log)
            stack.callback(legacy.close)
            if legacy.start():
                extra["1.0.0 venv"] = report.describe(legacy.info)
            else:
                message = f"requests-connection-manager 1.0.0 skipped: {legacy.skipped}"
                notes.append(message)
                log(message)
        results.machine = report.machine(extra)

        log(f"figure 1: per-call time against {fast}")
        results.per_call = figures.figure_per_call(fast, legacy, settings, log)
        log("figure 1b: per-call time with no_proxy set in the environment")
        results.per_call_no_proxy = figures.figure_per_call_env(
            fast, settings, log, figures.NO_PROXY_ENV, "figure 1b"
        )
        log("figure 1c: per-call time with proxies named and no_proxy listing the host")
        results.per_call_proxy_listed = figures.figure_per_call_env(
            fast, settings, log, figures.PROXY_LISTED_ENV, "figure 1c"
        )
        log("figure 2: throughput against the 50 ms endpoint")
        results.throughput = figures.figure_throughput(
            pyserver.base + "/slow", legacy, settings, log
        )
        log("figure 3: open-circuit rejection")
        results.rejection = figures.figure_rejection(legacy, settings, log)
        log("figure 4: rate limiter")
        results.rate = figures.figure_rate_limit(pyserver, settings, log)
        log("figure 5: memory per host")
        results.memory = figures.figure_memory(settings, log)
        results.machine["load average after the run"] = load_average()
        log("stopping servers")
    return results


def main(argv: Optional[list[str]] = None) -> int:
    """Run the suite; print the tables; write the report when ``--out`` is given."""
    args = parse(argv)
    log = Progress()
    for name in PROXY_VARIABLES:  # loopback only: never route through a proxy
        os.environ.pop(name, None)
        os.environ.pop(name.upper(), None)
    signal.signal(signal.SIGTERM, _interrupt)
    figures.quiet_library_logs()
    try:
        results = run(args, log)
    except KeyboardInterrupt:
        log("interrupted: servers and workers stopped")
        return 130
    results.seconds = time.monotonic() - log.start
    if args.out is not None and results.throughput is not None:
        image = args.out.parent / "img" / "throughput.png"
        problem = report.plot_throughput(results.throughput, image)
        if problem is None:
            results.plot = os.path.relpath(image, args.out.parent)
            log(f"plot written to {image}")
        else:
            results.notes.append(problem)
            log(problem)
    print("\n".join(report.tables(results)))
    if args.out is not None:
        log(f"report written to {args.out}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        kept = kept_sections(args.out.read_text() if args.out.exists() else "")
        args.out.write_text(report.render(results) + "".join(f"\n{block}\n" for block in kept))
    failed = [t for t in report.targets(results) if t.passed is False]
    print(f"\n{len(failed)} target(s) failed" if failed else "\nevery target passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
