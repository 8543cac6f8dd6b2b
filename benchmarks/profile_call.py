"""Where a ConnectionManager call spends the time a bare ``requests.Session`` call does not.

    python benchmarks/profile_call.py [--calls 3000] [--top 15] [--no-py-spy]

Against nginx (or the threaded Python server when nginx is missing) on 127.0.0.1:

1. cProfile of keep-alive GETs through a bare Session and through ``ConnectionManager()``,
   profiled in alternating chunks: the top entries of each by cumulative time;
2. cProfile of refused calls on an open breaker (figure 3 of ``run.py``);
3. py-spy (if installed: ``pip install py-spy``), sampling both clients in one process:
   the extra samples of the ConnectionManager path, attributed to the function of this
   library that spends them (its own code, or what it calls that a bare Session does not);
4. an ablation without any profiler: per-call time of ``ConnectionManager`` with features
   switched off through public keywords, interleaved, median and minimum of 25 x 200.

cProfile charges every Python function call a fixed cost, so it exaggerates deep call
chains; py-spy (sampling) and the ablation give undistorted proportions.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

import loops
import requests
from figures import quiet_library_logs
from servers import CountingListener, Nginx, PyServer, find_or_install_nginx

from requests_connection_manager import ConnectionManager

PACKAGE_DIR = "requests_connection_manager/"
# (library function, callee) pairs that are the work a bare Session does too.
_DELEGATIONS = {
    ("ResilientAdapter._attempt", "HTTPAdapter.send"),
    ("ResilientAdapter._read_body", "Response.content"),
}


# ------------------------------------------------------------------------------ cProfile
def _profile_pair(url: str, calls: int, chunk: int = 250) -> tuple[pstats.Stats, pstats.Stats]:
    """Profile a Session and a ConnectionManager in alternating chunks of ``chunk`` calls."""
    session = requests.Session()
    cm = ConnectionManager()
    profiles = (cProfile.Profile(), cProfile.Profile())
    clients: tuple[loops.Get, loops.Get] = (session.get, cm.get)
    for get in clients:
        loops.warm(get, url, 100)
    for _ in range(max(1, calls // chunk)):
        for profiler, get in zip(profiles, clients):
            profiler.enable()
            loops.per_call(get, url, chunk)
            profiler.disable()
    session.close()
    cm.close()
    return pstats.Stats(profiles[0]), pstats.Stats(profiles[1])


def _where(key: tuple[str, int, str]) -> str:
    path, line, name = key
    for marker in ("site-packages/", "src/", "python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "python3.":
                path = path.split("/", 1)[-1]
            break
    return f"{path}:{line}({name})" if path != "~" else name


def _extra_calls(base: pstats.Stats, ours: pstats.Stats, calls: int) -> list[str]:
    """Function calls per request that the ConnectionManager path makes and a Session does not.

    Call counts are exact (no timing noise): the list is what a leaner path must remove.
    """
    a: dict[Any, Any] = base.stats  # type: ignore[attr-defined]
    b: dict[Any, Any] = ours.stats  # type: ignore[attr-defined]
    rows = []
    totals: dict[str, float] = {"Python": 0.0, "C": 0.0}
    for key in set(a) | set(b):
        extra = ((b[key][1] if key in b else 0) - (a[key][1] if key in a else 0)) / calls
        if abs(extra) >= 0.01 and "loops.py" not in key[0]:
            totals["C" if key[0] == "~" else "Python"] += extra
            rows.append((key[0] != "~", -extra, _where(key)))
    rows.sort()
    lines = [
        f"extra calls per request: {totals['Python']:+.0f} Python functions, "
        f"{totals['C']:+.0f} C functions"
    ]
    lines += [f"{-extra:+6.1f}  {where}" for _, extra, where in rows]
    return lines


def _top(stats: pstats.Stats, top: int) -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(top)
    text = out.getvalue()
    return text[text.find("   ncalls") :].rstrip()


# ------------------------------------------------------------------------------- py-spy
def _spy_session(get: loops.Get, url: str, calls: int) -> float:
    return loops.per_call(get, url, calls)


def _spy_cm(get: loops.Get, url: str, calls: int) -> float:
    return loops.per_call(get, url, calls)


def spy_target(url: str, seconds: float, out: Path) -> None:
    """The process py-spy samples: Session and ConnectionManager alternately."""
    quiet_library_logs()
    session = requests.Session()
    cm = ConnectionManager()
    loops.warm(session.get, url, 100)
    loops.warm(cm.get, url, 100)
    times: dict[str, list[float]] = {"session": [], "cm": []}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        times["session"].append(_spy_session(session.get, url, 200))
        times["cm"].append(_spy_cm(cm.get, url, 200))
    out.write_text(json.dumps({k: statistics.median(v) for k, v in times.items()}))


def _frame(text: str) -> tuple[str, str]:
    """``"Class.func (path/file.py:12)"`` -> ``("Class.func", "path/file.py")``."""
    name, _, where = text.partition(" (")
    return name, where.rstrip(")").rsplit(":", 1)[0]


def spy_attribution(raw: str, top: int) -> list[str]:
    """Attribute the ConnectionManager path's extra samples (py-spy raw output)."""
    totals: Counter[str] = Counter()
    extra: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        names = [name for name, _ in frames]
        if "_spy_session" in names:
            totals["session"] += count
            continue
        if "_spy_cm" not in names:
            continue
        totals["cm"] += count
        ours = [i for i, (_, path) in enumerate(frames) if PACKAGE_DIR in path]
        if not ours:
            continue
        name = names[ours[-1]]
        callee = names[ours[-1] + 1] if ours[-1] + 1 < len(names) else None
        if callee is None:
            extra[f"{name} (own code)"] += count
        elif (name, callee) in _DELEGATIONS or (
            name.rsplit(".", 1)[-1] == callee.rsplit(".", 1)[-1]  # super().same_method()
        ):
            continue
        else:
            extra[f"{name} -> {callee}"] += count
    session, cm = totals["session"], totals["cm"]
    if not session or not cm:
        return ["py-spy: no samples of both paths"]
    attributed = sum(extra.values())
    lines = [
        f"samples: Session {session}, ConnectionManager {cm} "
        f"(ratio {cm / session:.3f}; "
        f"the extra is {(cm - session) / session:.1%} of a Session call)",
        f"attributed to this library's functions: {attributed / session:.1%} of a Session call; "
        f"the rest ({(cm - session - attributed) / session:.1%}) is requests/urllib3 code that "
        "runs slower or more often on the ConnectionManager path",
        f"{'% of Session':>12}  where (library function -> what it calls)",
    ]
    lines += [f"{n / session:12.2%}  {what}" for what, n in extra.most_common(top)]
    return lines


def run_py_spy(url: str, seconds: float, top: int) -> list[str]:
    """Sample :func:`spy_target` with py-spy and attribute the extra samples."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.access(spy, os.X_OK):
        return ["py-spy not found (pip install py-spy): section skipped"]
    with tempfile.TemporaryDirectory(prefix="rcm-spy-") as tmp:
        raw = Path(tmp) / "raw.txt"
        timing = Path(tmp) / "timing.json"
        command = [
            spy,
            "record",
            "--rate",
            "1000",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--",
            sys.executable,
            str(Path(__file__).resolve()),
            "--spy-target",
            url,
            "--seconds",
            str(seconds),
            "--timing",
            str(timing),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not raw.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-2:]
            return [f"py-spy failed (exit {done.returncode}): {' / '.join(tail)}"]
        times = json.loads(timing.read_text())
        lines = [
            f"per call while sampled: Session {times['session'] * 1e6:.1f} µs, "
            f"ConnectionManager {times['cm'] * 1e6:.1f} µs "
            f"(+{(times['cm'] - times['session']) * 1e6:.1f} µs)"
        ]
        return lines + spy_attribution(raw.read_text(), top)


# ------------------------------------------------------------------------------ ablation
def _no_env_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy, netrc or CA-bundle lookups in the environment
    return session


def ablation(url: str, reps: int, calls: int) -> list[str]:
    """Per-call time of feature-stripped managers, interleaved, without a profiler."""
    session = requests.Session()
    variants: dict[str, Callable[[], Any]] = {
        "requests.Session": lambda: session,
        "requests.Session, timeout=30 per call": requests.Session,
        "requests.Session(trust_env=False)": _no_env_session,
        "ConnectionManager()": ConnectionManager,
        "  circuit_breaker_failure_threshold=None": functools.partial(
            ConnectionManager, circuit_breaker_failure_threshold=None
        ),
        "  retry_budget=None": functools.partial(ConnectionManager, retry_budget=None),
        "  timeout=None": functools.partial(ConnectionManager, timeout=None),
        "  max_retries=0": functools.partial(ConnectionManager, max_retries=0),
        "  all four of the above": functools.partial(
            ConnectionManager,
            circuit_breaker_failure_threshold=None,
            retry_budget=None,
            timeout=None,
            max_retries=0,
        ),
        "  + non-blocking limiter": functools.partial(
            ConnectionManager, rate_limit_requests=10**9, rate_limit_period=1
        ),
        "  + total_timeout=30": functools.partial(ConnectionManager, total_timeout=30),
    }
    clients = {name: make() for name, make in variants.items()}
    gets: dict[str, loops.Get] = {name: client.get for name, client in clients.items()}
    gets["requests.Session, timeout=30 per call"] = functools.partial(
        clients["requests.Session, timeout=30 per call"].get, timeout=30
    )
    for get in gets.values():
        loops.warm(get, url, 100)
    values: dict[str, list[float]] = {name: [] for name in gets}
    for _ in range(reps):
        for name, get in gets.items():
            values[name].append(loops.per_call(get, url, calls))
    for client in clients.values():
        client.close()
    base_median = statistics.median(values["requests.Session"])
    base_min = min(values["requests.Session"])
    lines = [f"{'':42s} {'median':>9s} {'ratio':>6s} {'extra':>9s}   {'min':>8s} {'ratio':>6s}"]
    for name, v in values.items():
        median = statistics.median(v)
        lines.append(
            f"{name:42s} {median * 1e6:7.1f}µs {median / base_median:6.3f} "
            f"{(median - base_median) * 1e6:+7.1f}µs   {min(v) * 1e6:6.1f}µs "
            f"{min(v) / base_min:6.3f}"
        )
    return lines


# ---------------------------------------------------------------------------------- main
def main(argv: Optional[list[str]] = None) -> int:
    """Profile both paths and print the report."""
    parser = argparse.ArgumentParser(prog="python benchmarks/profile_call.py")
    parser.add_argument("--calls", type=int, default=3000, help="profiled calls per client")
    parser.add_argument("--top", type=int, default=15, help="entries per listing")
    parser.add_argument("--no-py-spy", action="store_true", help="skip the py-spy section")
    parser.add_argument("--spy-target", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--timing", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.spy_target:
        spy_target(args.spy_target, args.seconds, args.timing)
        return 0
    quiet_library_logs()
    with tempfile.TemporaryDirectory(prefix="rcm-profile-") as tmp:
        executable, _ = find_or_install_nginx(lambda m: print(m, file=sys.stderr))
        server: Any = Nginx(executable, Path(tmp)) if executable else PyServer(Path(tmp))
        server.start()
        try:
            url = server.base + "/json"
            print(f"== 1. keep-alive GET {url}: {args.calls} calls each, cProfile")
            base, ours = _profile_pair(url, args.calls)
            for name, stats in (("requests.Session", base), ("ConnectionManager()", ours)):
                print(f"\n-- {name}, top {args.top} by cumulative time\n{_top(stats, args.top)}")
            print("\n-- calls a ConnectionManager() request makes that a Session request does not")
            print("\n".join(_extra_calls(base, ours, max(1, args.calls // 250) * 250)))

            listener = CountingListener()
            refused = ConnectionManager(circuit_breaker_failure_threshold=1, max_retries=0)
            loops.trip(refused.get, listener.base + "/")
            loops.rejections(refused.get, listener.base + "/", 100)
            profiler = cProfile.Profile()
            profiler.enable()
            loops.rejections(refused.get, listener.base + "/", args.calls)
            profiler.disable()
            refused.close()
            listener.close()
            print(f"\n== 2. refused calls on an open breaker, top {args.top} by cumulative time")
            print(_top(pstats.Stats(profiler), args.top))

            if not args.no_py_spy:
                print("\n== 3. py-spy: where the ConnectionManager path's extra time goes")
                print("\n".join(run_py_spy(url, args.seconds, args.top + 10)))

            print("\n== 4. ablation, no profiler: 25 x 200 calls per variant, interleaved")
            print("\n".join(ablation(url, 25, 200)))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
