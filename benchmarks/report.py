"""The report: machine description, the targets with PASS/FAIL, one table per figure, the plot.

:func:`render` returns Markdown (``docs/benchmarks.md``); the same tables go to stdout.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

from figures import (
    BASELINE,
    NO_PROXY_ENV,
    PROXY_LISTED_ENV,
    REFERENCE_NO_ENV,
    THREADS,
    Memory,
    PerCall,
    RateRun,
    Rejection,
    Settings,
    Throughput,
)
from servers import SLOW_SECONDS

PACKAGES = ("requests", "urllib3", "ratelimit", "pybreaker", "limits", "matplotlib")
CM = "ConnectionManager()"
CM_LIMITED = "ConnectionManager(non-blocking limiter)"


@dataclass
class Target:
    """One target: where, what, the measured value, and whether it holds (None: not shown)."""

    figure: str
    target: str
    measured: str
    passed: Optional[bool]

    @property
    def mark(self) -> str:
        """PASS, FAIL or info (no verdict)."""
        return "info" if self.passed is None else ("PASS" if self.passed else "FAIL")


@dataclass
class Results:
    """Everything one run produced."""

    command: str
    date: str
    settings: Settings
    machine: dict[str, str]
    notes: list[str] = field(default_factory=list)
    per_call: Optional[PerCall] = None
    per_call_no_proxy: Optional[PerCall] = None
    per_call_proxy_listed: Optional[PerCall] = None
    throughput: Optional[Throughput] = None
    rejection: list[Rejection] = field(default_factory=list)
    rate: list[RateRun] = field(default_factory=list)
    memory: Optional[Memory] = None
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)
    plot: Optional[str] = None  # path relative to the Markdown file


# ------------------------------------------------------------------------------ machine
def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[-1].split("=", 1)[-1].strip().strip('"')
    except OSError:
        pass
    return "unknown"


def source_state(package: Path) -> str:
    """Which code was measured: the git commit of ``package`` and its uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(package), *args], capture_output=True, text=True, timeout=30
        )
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return f"imported from {package} (not a git checkout)"
    changed = [Path(line[3:]).name for line in git("status", "--porcelain", "--", ".").splitlines()]
    state = f"commit {commit}" + (
        f" + uncommitted changes in {', '.join(sorted(changed))}" if changed else " (clean)"
    )
    return f"imported from {package}: {state}"


def machine(extra: dict[str, str]) -> dict[str, str]:
    """Describe this machine: CPU, cores, Python, OS and the package versions."""
    import requests_connection_manager

    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    info = {
        "CPU": _first("/proc/cpuinfo", "model name"),
        "cores": str(os.cpu_count()),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": f"{_first('/etc/os-release', 'PRETTY_NAME=')}, {platform.system()} "
        f"{platform.release()} ({platform.machine()})",
        "requests-connection-manager": f"{requests_connection_manager.__version__}, "
        + source_state(Path(requests_connection_manager.__file__).resolve().parent),
        "packages": ", ".join(versions),
    }
    info.update(extra)
    return info


# ------------------------------------------------------------------------------ targets
def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


#: Figures 1, 1b and 1c: ours per call, as a share of a bare Session's time.
PER_CALL_TARGET = 0.75
#: Ours minus requests.Session(trust_env=False), paired per repetition, in µs.
OWN_PATH_TARGET = 15.0
#: Figure 2: throughput against the 50 ms endpoint, as a share of a bare Session's.
THROUGHPUT_TARGETS = {16: 1.0, 64: 1.2}


def own_path(pc: PerCall) -> float:
    """Median over repetitions of ``ConnectionManager()`` minus ``Session(trust_env=False)``.

    What this library adds to a call once requests' environment lookups are set aside
    (the two clients run back to back within each repetition).
    """
    return statistics.median(
        ours - bare for ours, bare in zip(pc.values[CM], pc.values[REFERENCE_NO_ENV])
    )


def targets(r: Results) -> list[Target]:
    """Evaluate every target on the run's numbers."""
    out: list[Target] = []
    figures_1 = (
        ("1 per-call", "", r.per_call),
        ("1b per-call, no_proxy set", "", r.per_call_no_proxy),
        ("1c per-call, proxies named, no_proxy lists the host", "", r.per_call_proxy_listed),
    )
    for figure, _, pc in figures_1:
        if pc is None or BASELINE not in pc.values:
            continue
        for name in (CM, CM_LIMITED):
            if name in pc.values:
                ratio = pc.ratio(name)
                out.append(
                    Target(
                        figure,
                        f"{name} ≤ {PER_CALL_TARGET} x bare Session",
                        f"{ratio:.3f} x (CPU {pc.cpu_ratio(name):.3f} x)",
                        ratio <= PER_CALL_TARGET,
                    )
                )
        if CM in pc.values and REFERENCE_NO_ENV in pc.values:
            own = own_path(pc)
            out.append(
                Target(
                    figure,
                    f"own path: {CM} - {REFERENCE_NO_ENV} ≤ {OWN_PATH_TARGET:.0f} µs",
                    f"{own * 1e6:,.1f} µs",
                    own <= OWN_PATH_TARGET / 1e6,
                )
            )
    if r.throughput is not None:
        tp = r.throughput
        for name in (CM, CM_LIMITED):
            for threads, target in THROUGHPUT_TARGETS.items():
                if name in tp.values and BASELINE in tp.values:
                    ratio = tp.ratio(name, threads)
                    out.append(
                        Target(
                            "2 throughput",
                            f"{name} at {threads} threads ≥ {target} x bare Session",
                            f"{ratio:.3f} x",
                            ratio >= target,
                        )
                    )
    ours = next((row for row in r.rejection if row.name == "ConnectionManager"), None)
    if ours is not None and ours.seconds:
        out.append(
            Target(
                "3 open circuit",
                "ConnectionManager ≤ 20 µs per refused call",
                _us(ours.median),
                ours.median <= 20e-6,
            )
        )
        out.append(
            Target(
                "3 open circuit",
                "zero connections while refusing",
                f"{ours.connections_during} connections in {ours.calls:,} calls",
                ours.connections_during == 0,
            )
        )
    for run in r.rate:
        ratio = run.achieved / run.configured
        out.append(
            Target(
                "4 rate limit",
                f"{run.strategy}: achieved ≥ 0.97 x configured",
                f"{ratio:.3f} x",
                ratio >= 0.97,
            )
        )
        bound = 2.0 if run.strategy == "fixed-window" else 1.0
        out.append(
            Target(
                "4 rate limit",
                f"{run.strategy}: burst factor ≤ {bound:.1f}",
                f"{run.burst:.2f}",
                run.burst <= bound,
            )
        )
    if r.memory is not None and len(r.memory.points) >= 3:
        called, tracked, _ = r.memory.points[-1]
        evicted = tracked < called
        out.append(
            Target(
                "5 memory",
                "bounded: memory flat once the host table is full (last/previous ≤ 1.10)",
                f"{r.memory.per_host():,.0f} B/host; {tracked:,} of {called:,} hosts kept; "
                f"last/previous {r.memory.plateau():.2f}",
                (r.memory.plateau() <= 1.10) if evicted else None,
            )
        )
    return out


# ------------------------------------------------------------------------------- tables
def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _skipped(skipped: dict[str, str]) -> list[str]:
    return [f"- **{name}**: skipped: {reason}" for name, reason in skipped.items()]


def tables(r: Results) -> list[str]:
    """The summary and one table per figure, as Markdown lines."""
    s = r.settings
    lines = ["## Targets", ""]
    lines += _table(
        ["figure", "target", "measured", "result"],
        [[t.figure, t.target, t.measured, f"**{t.mark}**"] for t in targets(r)],
    )

    if r.per_call is not None:
        pc = r.per_call
        lines += [
            "",
            "## 1. Per-call time: keep-alive GET of a small JSON body",
            "",
            f"`GET {pc.url}` ({r.machine.get('fast server', 'server')}), one thread; "
            f"{pc.reps} repetitions x {pc.calls} calls per client, interleaved; "
            "median of the per-repetition means. Ratios are paired: the median over "
            "repetitions of (client / bare Session) within the repetition. CPU is the "
            "client process's own CPU time per call (the server runs in another process), "
            "which background load on the machine disturbs far less than the wall time.",
            "",
        ]
        has_base = BASELINE in pc.values
        rows = []
        for name, values in pc.values.items():
            cpu = pc.cpu.get(name, [])
            rows.append(
                [
                    name,
                    _us(statistics.median(values)),
                    f"{min(values) * 1e6:,.1f}-{max(values) * 1e6:,.1f}",
                    f"**{pc.ratio(name):.3f}**" if has_base else "-",
                    _us(statistics.median(cpu)) if cpu else "-",
                    f"{pc.cpu_ratio(name):.3f}" if has_base and cpu else "-",
                    f"≤ {PER_CALL_TARGET}" if name in (CM, CM_LIMITED) else "",
                ]
            )
        lines += _table(
            [
                "client",
                "per call (median)",
                "range over reps (µs)",
                "ratio to bare Session",
                "CPU per call",
                "CPU ratio",
                "target",
            ],
            rows,
        )
        lines += _skipped(pc.skipped)

    environments = (
        (
            "1b",
            "with `no_proxy` set in the environment",
            r.per_call_no_proxy,
            NO_PROXY_ENV,
        ),
        (
            "1c",
            "with proxies named and `no_proxy` listing the host",
            r.per_call_proxy_listed,
            PROXY_LISTED_ENV,
        ),
    )
    for number, title, pc, environment in environments:
        if pc is None:
            continue
        variables = ", ".join(f"`{k}={v}`" for k, v in environment.items())
        lines += [
            "",
            f"### {number}. The same {title}",
            "",
            "requests scans `os.environ` for proxy variables on every call, and a library may "
            "skip that while the environment names no proxy; many machines set such variables "
            f"(here {variables}: nothing is proxied, `no_proxy` lists the host called). "
            f"{pc.reps} repetitions x {pc.calls} calls, paired ratios as above; target "
            f"≤ {PER_CALL_TARGET} for ours.",
            "",
        ]
        rows = [
            [
                name,
                _us(statistics.median(values)),
                f"**{pc.ratio(name):.3f}**" if BASELINE in pc.values else "-",
                f"{pc.cpu_ratio(name):.3f}" if BASELINE in pc.cpu else "-",
            ]
            for name, values in pc.values.items()
        ]
        lines += _table(["client", "per call (median)", "ratio to bare Session", "CPU ratio"], rows)

    if r.throughput is not None:
        tp = r.throughput
        lines += [
            "",
            f"## 2. Throughput against a {SLOW_SECONDS * 1000:.0f} ms endpoint",
            "",
            f"`GET {tp.url}` (threaded Python server in its own process); calls/s over "
            f"{tp.seconds:g} s per point (the clock stops when the last call started in that "
            f"time has finished), median of {tp.reps}; every pool holds {max(THREADS)} "
            "connections. In brackets: paired ratio to bare Session (median over "
            "repetitions of the ratio within each).",
            "",
        ]
        header = ["client"] + [f"{t} thread{'s' if t > 1 else ''}" for t in THREADS] + ["errors"]
        rows = [["ideal (threads / 0.05 s)"] + [f"{t / SLOW_SECONDS:,.0f}" for t in THREADS] + [""]]
        for name, per_threads in tp.values.items():
            row = [name]
            for t in THREADS:
                value = statistics.median(per_threads[t])
                if BASELINE in tp.values:
                    row.append(f"{value:,.1f} ({tp.ratio(name, t):.2f})")
                else:
                    row.append(f"{value:,.1f}")
            row.append(str(tp.errors.get(name, 0)))
            rows.append(row)
        lines += _table(header, rows)
        lines += _skipped(tp.skipped)
        legacy = next((name for name in tp.values if name.startswith("rcm 1.0.0")), None)
        if legacy is not None:
            top = statistics.median(tp.values[legacy][max(THREADS)])
            lines += [
                "",
                f"1.0.0 serialises its threads (pybreaker's `CircuitBreaker.call()` holds a lock "
                f"around the request): {top:,.1f} calls/s at {max(THREADS)} threads, where one "
                f"call at a time gives {1 / SLOW_SECONDS:,.0f}.",
            ]
        if r.plot:
            lines += ["", f"![throughput by thread count]({r.plot})"]

    if r.rejection:
        lines += [
            "",
            "## 3. Open-circuit rejection",
            "",
            "A host that accepts every connection and closes it at once (every request "
            "fails), counting the connections. `circuit_breaker_failure_threshold=1, "
            "max_retries=0`: one failing call opens the breaker, then "
            f"{s.reject_reps} x {s.reject_calls} refused calls are timed (after 200 "
            "untimed ones); median of the per-repetition means.",
            "",
        ]
        rows = []
        for rej in r.rejection:
            if rej.skipped:
                rows.append([rej.name, f"skipped: {rej.skipped}", "", "", "", "", ""])
                continue
            counted = "" if rej.counted_rejections is None else f"{rej.counted_rejections:,}"
            rows.append(
                [
                    rej.name,
                    _us(rej.median),
                    _us(statistics.median(rej.cpu)) if rej.cpu else "-",
                    rej.tripped_with,
                    ", ".join(f"{k} x {v:,}" for k, v in sorted(rej.outcomes.items())),
                    f"{rej.connections_trip} / {rej.connections_during} in {rej.calls:,} calls",
                    counted,
                ]
            )
        lines += _table(
            [
                "client",
                "per refused call",
                "CPU per refused call",
                "tripping call raised",
                "timed calls raised",
                "connections: trip / refusals",
                "`rejected_open` in get_stats()",
            ],
            rows,
        )

    if r.rate:
        lines += [
            "",
            "## 4. Rate limiter",
            "",
            f"{s.rate_threads} threads calling as fast as they can, limit N = {s.rate_n} per "
            f"{s.rate_period:g} s, `rate_limit_max_wait=None`; M = N x {s.rate_periods + 1} "
            f"calls, so the run spans {s.rate_periods} periods. Achieved rate = "
            "(M - N) / (t_M - t_1); burst factor = most requests in any window "
            "[t, t + period), divided by N. Three clocks on the same requests: **permit** "
            "(the limiter granted it: what the targets use), **wire** (urllib3's "
            "`HTTPConnectionPool.urlopen` entered, just before the request is written) and "
            "**server** (the server read the request line). Wire and server add the "
            "scheduling lag of 8 threads on one GIL.",
            "",
        ]
        rows = []
        for run in r.rate:
            span = run.starts[-1] - run.starts[0] if run.starts else 0.0
            bound = "≤ 2.0" if run.strategy == "fixed-window" else "≤ 1.0"
            rows.append(
                [
                    run.strategy,
                    f"{run.calls} ({run.errors} errors)",
                    f"{span:.3f} s",
                    f"{run.achieved:.2f} / {run.configured:.2f} = "
                    f"**{run.achieved / run.configured:.3f}** (≥ 0.97)",
                    f"**{run.burst:.2f}** ({bound})",
                    f"{run.burst_of(run.wire):.2f}",
                    f"{run.burst_of(run.arrivals):.2f}",
                ]
            )
        lines += _table(
            [
                "strategy",
                "calls",
                "t_M - t_1 (permits)",
                "achieved / configured (req/s)",
                "burst factor (permits)",
                "burst (wire)",
                "burst (server)",
            ],
            rows,
        )
        lines += [
            f"- {run.strategy}: the limiter hook saw {len(run.permits)} permits for "
            f"{run.calls} calls; the targets use the wire times"
            for run in r.rate
            if run.source != "permits"
        ]

    if r.memory is not None:
        mem = r.memory
        lines += [
            "",
            "## 5. Memory per tracked host",
            "",
            "One `ConnectionManager(max_retries=0)` calls distinct loopback hosts "
            "(127.1.x.y) on a port nothing listens on (connection refused); memory traced by "
            "tracemalloc after a full collection, from before the manager was created "
            f"({mem.seconds:.1f} s with tracing on).",
            "",
        ]
        rows = [
            [f"{called:,}", f"{tracked:,}", f"{traced / 1024:,.0f} KiB"]
            for called, tracked, traced in mem.points
        ]
        lines += _table(["hosts called", "hosts tracked (get_stats)", "traced memory"], rows)
        lines += [
            "",
            f"Bytes per tracked host (first two rows): **{mem.per_host():,.0f} B**.",
        ]
    return lines


# ------------------------------------------------------------------------------ render
def render(r: Results) -> str:
    """The whole Markdown page."""
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{r.command}` on {r.date}; the run took {r.seconds:.0f} s. Loopback "
        "only; not part of the test suite. Re-run it after any change to the request path.",
        "",
        "## Machine",
        "",
    ]
    lines += _table(["", ""], [[k, v] for k, v in r.machine.items()])
    if r.notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in r.notes]
    lines += ["", *tables(r)]
    lines += [
        "",
        "## Method",
        "",
        "- Clients: `urllib3.PoolManager` (the floor), a bare `requests.Session`, "
        "`ConnectionManager()` with its defaults, `ConnectionManager(rate_limit_requests=10**9, "
        "rate_limit_period=1)` (a limiter that never blocks), and requests-connection-manager "
        "1.0.0 from PyPI, installed in a throwaway venv and driven by a worker process that "
        "runs the same loops (`benchmarks/loops.py`). 1.0.0 gets the non-blocking limiter "
        "too: its default (100 per 60 s) would block. Its venv resolves its own dependencies "
        "(see Machine), so a bare Session in that venv is measured as its reference.",
        "- Clients are interleaved (A B C … A B C …) within every repetition and warmed up "
        "first; figures are medians over repetitions; ratios compare numbers from the same run.",
        "- The library's log records go to a `NullHandler` in both processes (made, not written).",
        "- `requests.Session(trust_env=False)` shows what requests' per-call lookups of the "
        "environment (proxy variables, CA bundle, `.netrc`) cost a bare Session; the **own "
        "path** target subtracts it from `ConnectionManager()` within each repetition (the "
        "median of those differences): what this library adds once the environment is set "
        "aside. A bare Session inside the 1.0.0 venv is the baseline that venv's versions give.",
        "- Where the time of one call goes (cProfile, py-spy, an ablation by keyword): "
        "`python benchmarks/profile_call.py`.",
        "- The fast endpoint is nginx (`worker_processes 1`, keep-alive, `return 200`); the "
        "50 ms endpoint and the arrival-time endpoint are a `ThreadingHTTPServer` in a process "
        "of its own, so the client keeps its GIL.",
    ]
    lines += ["", "<details><summary>Raw numbers of figures 1 and 2 (per repetition)</summary>", ""]
    if r.per_call is not None:
        lines += ["Figure 1, µs per call:", "", "```"]
        lines += [
            f"{name:42s} " + " ".join(f"{v * 1e6:7.1f}" for v in values)
            for name, values in r.per_call.values.items()
        ]
        lines += ["```", ""]
    if r.throughput is not None:
        lines += ["Figure 2, calls/s:", "", "```"]
        for name, per_threads in r.throughput.values.items():
            for threads, values in per_threads.items():
                lines.append(
                    f"{name:42s} {threads:3d} threads " + " ".join(f"{v:8.1f}" for v in values)
                )
        lines += ["```", ""]
    lines += ["</details>"]
    if r.log:
        lines += [
            "",
            "<details><summary>Progress log of this run (stderr)</summary>",
            "",
            "```",
            *r.log,
            "```",
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def plot_throughput(tp: Throughput, path: Path) -> Optional[str]:
    """Save figure 2 as a PNG at ``path``.

    Returns:
        None, or why no plot was made (matplotlib missing).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"no plot: matplotlib is not installed ({exc})"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    threads = list(THREADS)
    ax.plot(
        threads,
        [t / SLOW_SECONDS for t in threads],
        "k--",
        linewidth=1,
        label="ideal (threads / 0.05 s)",
    )
    markers = "osD^v<>"
    for i, (name, values) in enumerate(tp.values.items()):
        ax.plot(
            threads,
            [statistics.median(values[t]) for t in threads],
            marker=markers[i % len(markers)],
            label=name,
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(threads)
    ax.set_xticklabels([str(t) for t in threads])
    ax.set_xlabel("threads")
    ax.set_ylabel("calls per second (log)")
    ax.set_title(f"Throughput against a {SLOW_SECONDS * 1000:.0f} ms endpoint (median)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return None


def describe(info: dict[str, Any]) -> str:
    """One line for the 1.0.0 venv: Python and package versions."""
    packages = ", ".join(f"{k} {v}" for k, v in info.get("packages", {}).items())
    return f"Python {info.get('python', '?')}; {packages}"
