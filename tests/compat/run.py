"""Run requests' own test suite against ``ConnectionManager`` sessions and compare.

Usage (from any directory)::

    python tests/compat/run.py [--quick] [--keep] [--jobs N] [--timeout S] [--src DIR]

1. Fetches the test suite of the *installed* requests version: ``pip download
   --no-binary :all: --no-deps requests==<version>`` (the sdist ships ``tests/``),
   unpacked once into a cache directory (``$RCM_COMPAT_CACHE``, else
   ``$XDG_CACHE_HOME/rcm-compat``, else ``~/.cache/rcm-compat``), never into the repository.
2. Runs it four times, each in its own pytest process with ``-p rcm_compat_plugin``
   (see that module for how ``Session()`` is substituted and how the network is guarded):
   ``baseline`` (plain requests), ``neutral`` (every session is a ConnectionManager's with
   no retries, breaker, budget, limit or timeout), ``defaults`` (``ConnectionManager()``)
   and ``mixin`` (every session is ``class MixinSession(ConnectionManagerMixin,
   requests.Session)`` built with the neutral keywords: no manager at all).
   The package under test is the one in this checkout's ``src/`` (or ``--src DIR``).
3. Compares: ``neutral`` and ``mixin`` must pass every test that passes in ``baseline``;
   ``defaults`` may differ only in the tests listed under the heading "Differences with
   ConnectionManager() defaults" of ``docs/compatibility.md`` (a table whose first column
   is the test's node id in backticks, the second the reason; a node id ending in ``[*]``
   covers every parametrisation). Exits 1 when a criterion fails, 2 when the run itself
   could not be made.

``--quick`` runs only the modules that exercise sessions and the transport
(``test_requests.py``, ``test_lowlevel.py``, ``test_adapters.py``, ``test_hooks.py``),
without the slow ``TestTimeout`` class. ``--keep`` keeps the work directory (each mode's
pytest log and JSON outcomes); it is kept anyway when a criterion fails.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SRC = ROOT / "src"
ALLOW_LIST_DOC = ROOT / "docs" / "compatibility.md"
ALLOW_LIST_HEADING = "Differences with ConnectionManager() defaults"
MODES = ("baseline", "neutral", "defaults", "mixin")
#: Modes that must pass every baseline-passing test (``defaults`` has its allow-list).
STRICT_MODES = frozenset({"neutral", "mixin"})
PLUGIN = "rcm_compat_plugin"
# What requests' test suite imports beyond pytest (see its requirements-dev.txt and
# pyproject's test dependency group); all are in this project's ``test`` extra.
SUITE_MODULES = {
    "pytest_httpbin": "pytest-httpbin",
    "httpbin": "httpbin",
    "pytest_mock": "pytest-mock",
    "trustme": "trustme",
    "socks": "PySocks",
    "pytest_timeout": "pytest-timeout",
}
QUICK_FILES = (
    "tests/test_requests.py",
    "tests/test_lowlevel.py",
    "tests/test_adapters.py",
    "tests/test_hooks.py",
)
QUICK_DESELECT = "not TestTimeout"
PASSED = "passed"


class RunError(Exception):
    """The compatibility run could not be made (as opposed to a failed criterion)."""


# ------------------------------------------------------------------------ the suite
def cache_root() -> Path:
    """The directory holding unpacked suites, one ``requests-<version>`` per version."""
    explicit = os.environ.get("RCM_COMPAT_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rcm-compat"


def fetch_suite(version: str, root: Path) -> Path:
    """Return the unpacked sdist of ``requests==version``, downloading it if not cached.

    Args:
        version: The requests version whose tests to fetch.
        root: The cache directory.

    Returns:
        The sdist's top directory (it contains ``tests/``).

    Raises:
        RunError: pip could not download it, or the sdist has no ``tests/``.
    """
    target = root / f"requests-{version}"
    if (target / ".complete").is_file() and (target / "tests").is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="download-", dir=root) as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-binary",
            ":all:",
            "--no-deps",
            "--dest",
            tmp,
            f"requests=={version}",
        ]
        print(f"compat: downloading the requests {version} sdist into {root}", flush=True)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        archives = sorted(Path(tmp).glob("requests-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise RunError(
                f"pip download of requests=={version} failed:\n{done.stdout}{done.stderr}"
            )
        unpacked = Path(tmp) / "unpacked"
        _extract(archives[0], unpacked)
        tops = [p for p in unpacked.iterdir() if p.is_dir()]
        if len(tops) != 1 or not (tops[0] / "tests").is_dir():
            raise RunError(f"the requests {version} sdist has no tests/ directory")
        (tops[0] / ".complete").write_text(archives[0].name + "\n", encoding="utf-8")
        if target.exists():  # an incomplete earlier attempt
            shutil.rmtree(target)
        try:
            tops[0].rename(target)
        except OSError:
            if not (target / ".complete").is_file():  # not another run that won the race
                raise
    return target


def _extract(archive: Path, into: Path) -> None:
    """Unpack a tar.gz, refusing members that would land outside ``into``."""
    into.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
            return
        base = into.resolve()
        for member in tar.getmembers():
            where = (into / member.name).resolve()
            if base not in where.parents and where != base:
                raise RunError(f"unsafe path in {archive.name}: {member.name}")
            if not (member.isdir() or member.isfile()):
                raise RunError(f"unexpected member in {archive.name}: {member.name}")
        tar.extractall(into)  # noqa: S202 - every member checked above


def check_suite_dependencies() -> None:
    """Fail early, with the fix, when a package requests' suite needs is missing."""
    import importlib.util

    missing = [
        dist for module, dist in SUITE_MODULES.items() if not importlib.util.find_spec(module)
    ]
    if missing:
        raise RunError(
            "requests' test suite needs " + ", ".join(missing) + f": pip install -e '{ROOT}[test]'"
        )


def pytest_config_args(suite: Path, workdir: Path) -> list[str]:
    """Point pytest at the suite's own configuration, or at an empty one."""
    for name, marker in (
        ("pytest.ini", ""),
        ("pyproject.toml", "[tool.pytest.ini_options]"),
        ("tox.ini", "[pytest]"),
        ("setup.cfg", "[tool:pytest]"),
    ):
        path = suite / name
        if path.is_file() and marker in path.read_text(encoding="utf-8", errors="replace"):
            return ["-c", str(path)]
    empty = workdir / "pytest.ini"
    empty.write_text("[pytest]\n", encoding="utf-8")
    return ["-c", str(empty)]


# ------------------------------------------------------------------------- the modes
@dataclass
class ModeResult:
    """One mode's run: its report (None if pytest left none), exit code and time."""

    mode: str
    returncode: int
    seconds: float
    log: Path
    report: Optional[dict[str, Any]] = None

    def outcome(self, nodeid: str) -> str:
        """The outcome of ``nodeid`` in this mode (``missing`` if it did not run)."""
        if self.report is None:
            return "missing"
        entry = self.report["outcomes"].get(nodeid)
        return "missing" if entry is None else str(entry["outcome"])

    def message(self, nodeid: str) -> str:
        """The failure message of ``nodeid`` on one line (at most 240 characters)."""
        if self.report is None:
            return f"no report: see {self.log}"
        entry = self.report["outcomes"].get(nodeid) or {}
        text = " ".join(str(entry.get("message", "")).split())
        return text if len(text) <= 240 else text[:239] + "…"


def run_mode(
    mode: str,
    suite: Path,
    workdir: Path,
    *,
    src: Path,
    quick: bool,
    timeout: float,
    mode_timeout: float,
) -> ModeResult:
    """Run requests' suite once in ``mode`` in its own pytest process."""
    report = workdir / f"{mode}.json"
    log = workdir / f"{mode}.log"
    command = [
        sys.executable,
        "-m",
        "pytest",
        *pytest_config_args(suite, workdir),
        "--rootdir",
        str(suite),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-p",
        "no:xdist",
        "-p",
        PLUGIN,
        "--rcm-compat-mode",
        mode,
        "--rcm-compat-report",
        str(report),
        f"--timeout={timeout:g}",
        "-q",
        "-rfE",
    ]
    if quick:
        command += ["-k", QUICK_DESELECT, *(f for f in QUICK_FILES if (suite / f).is_file())]
    else:
        command.append("tests")
    env = dict(os.environ)
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS"):
        env.pop(name, None)
    paths = [str(src), str(HERE)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=suite,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = process.wait(timeout=mode_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            returncode = -1
            with log.open("a", encoding="utf-8") as note:
                note.write(f"\ncompat: killed after {mode_timeout:g} s\n")
    seconds = time.monotonic() - started
    data = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else None
    return ModeResult(mode, returncode, seconds, log, data)


# ------------------------------------------------------------------------ allow-list
@dataclass
class AllowList:
    """The documented differences with ``ConnectionManager()`` defaults."""

    exact: dict[str, str] = field(default_factory=dict)
    families: dict[str, str] = field(default_factory=dict)

    def reason(self, nodeid: str) -> Optional[str]:
        """The documented reason ``nodeid`` may differ, or None."""
        if nodeid in self.exact:
            return self.exact[nodeid]
        base = nodeid.split("[", 1)[0]
        return self.families.get(base) if nodeid != base else None

    def entries(self) -> list[str]:
        """Every documented node id (families end in ``[*]``)."""
        return sorted(self.exact) + sorted(f"{base}[*]" for base in self.families)

    def matches(self, entry: str, nodeid: str) -> bool:
        """Tell whether ``entry`` (from :meth:`entries`) covers ``nodeid``."""
        if entry.endswith("[*]"):
            return nodeid.split("[", 1)[0] == entry[:-3] and "[" in nodeid
        return nodeid == entry


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def parse_allow_list(text: str, heading: str = ALLOW_LIST_HEADING) -> AllowList:
    """Read the table under ``heading``: node id (first column), reason (second).

    Args:
        text: The markdown document.
        heading: The heading's text (any level); the section ends at the next heading of
            the same or a higher level.

    Returns:
        The allow-list.

    Raises:
        RunError: The heading is missing, or a row has no node id or no reason.
    """
    allow = AllowList()
    level = 0
    found = False
    row = 0  # row number within the current table: 1 is its header, 2 its separator
    for number, line in enumerate(text.splitlines(), 1):
        match = _HEADING.match(line)
        if match:
            if found and len(match.group(1)) <= level:
                break
            if match.group(2) == heading:
                found, level = True, len(match.group(1))
            continue
        if not found:
            continue
        if not line.lstrip().startswith("|"):
            row = 0
            continue
        row += 1
        if row <= 2:
            continue  # the table's header and separator
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        nodeid = cells[0].strip("`").strip()
        if "::" not in nodeid or len(cells) < 2 or not cells[1]:
            raise RunError(f"{ALLOW_LIST_DOC.name}:{number}: expected | `node id` | reason |")
        if nodeid.endswith("[*]"):
            allow.families[nodeid[:-3]] = cells[1]
        else:
            allow.exact[nodeid] = cells[1]
    if not found:
        raise RunError(f'no heading "{heading}" in {ALLOW_LIST_DOC}')
    return allow


# -------------------------------------------------------------------------- verdict
@dataclass
class Verdict:
    """The comparison of the modes."""

    lines: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    ok: bool = True


def compare(results: dict[str, ModeResult], allow: AllowList) -> Verdict:
    """Apply the criteria and describe the outcome.

    Args:
        results: The result of every mode of ``MODES``.
        allow: The documented differences of ``defaults``.

    Returns:
        The result lines (one per mode), the details, and whether every criterion holds.
    """
    verdict = Verdict()
    baseline = results["baseline"]
    if baseline.report is None or not baseline.report["outcomes"]:
        verdict.ok = False
        verdict.lines.append(f"compat: baseline produced no results (see {baseline.log})")
        return verdict
    passing = sorted(n for n, e in baseline.report["outcomes"].items() if e["outcome"] == PASSED)
    total = len(passing)
    verdict.lines.append(
        f"compat: baseline {total} passed of {len(baseline.report['outcomes'])} tests "
        f"(plain requests {baseline.report['requests_version']})"
    )
    for mode in MODES[1:]:
        result = results[mode]
        if result.report is not None and result.report.get("managers_created", 0) == 0:
            verdict.ok = False
            verdict.details.append(f"{mode}: no managed session was made: substitution failed")
        broken = [n for n in passing if result.outcome(n) != PASSED]
        documented = [n for n in broken if mode not in STRICT_MODES and allow.reason(n)]
        undocumented = [n for n in broken if n not in documented]
        if undocumented:
            verdict.ok = False
        summary = f"compat: {mode} {total - len(broken)}/{total} of baseline-passing tests"
        if mode not in STRICT_MODES:
            summary += (
                f" ({len(documented)} documented differences, {len(undocumented)} undocumented)"
            )
        elif undocumented:
            summary += f" ({len(undocumented)} failing)"
        verdict.lines.append(summary)
        for nodeid in undocumented:
            verdict.details.append(
                f"{mode}: FAIL {nodeid} [{result.outcome(nodeid)}] {result.message(nodeid)}"
            )
        for nodeid in documented:
            verdict.details.append(f"{mode}: documented {nodeid}: {allow.reason(nodeid)}")
        if mode == "defaults":
            for entry in allow.entries():
                covered = [n for n in passing if allow.matches(entry, n)]
                if not covered:
                    verdict.details.append(
                        f"defaults: note: documented {entry} did not pass in baseline or did "
                        "not run"
                    )
                elif not any(n in broken for n in covered):
                    verdict.details.append(f"defaults: note: documented {entry} passed this time")
    return verdict


def blocked_lines(results: dict[str, ModeResult]) -> list[str]:
    """Describe every non-loopback network attempt the guard refused, per mode."""
    lines = []
    for mode, result in results.items():
        blocked = {} if result.report is None else result.report.get("blocked", {})
        for nodeid, attempts in sorted(blocked.items()):
            shown = ", ".join(sorted(set(attempts)))
            lines.append(f"compat: {mode}: network guard refused {shown} in {nodeid}")
    return lines


# ----------------------------------------------------------------------------- main
def main(argv: Optional[list[str]] = None) -> int:
    """Run the four modes, compare, print the verdict; return the exit code."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="the session/transport subset")
    parser.add_argument("--keep", action="store_true", help="keep logs and JSON outcomes")
    parser.add_argument("--jobs", type=int, default=3, help="modes run at once (1 to 4)")
    parser.add_argument("--timeout", type=float, default=60, help="per-test timeout, s")
    parser.add_argument("--mode-timeout", type=float, default=1800, help="per-mode bound, s")
    parser.add_argument("--cache-dir", type=Path, default=None, help="suite cache directory")
    parser.add_argument(
        "--src",
        type=Path,
        default=SRC,
        help="directory holding the requests_connection_manager package to test "
        "(default: this checkout's src/)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        return _main(args, started)
    except RunError as exc:
        print(f"compat: cannot run: {exc}", file=sys.stderr)
        print(f"compat: total time {time.monotonic() - started:.1f} s")
        return 2


def _main(args: argparse.Namespace, started: float) -> int:
    src = args.src.resolve()
    if not (src / "requests_connection_manager" / "__init__.py").is_file():
        raise RunError(f"no requests_connection_manager package in {src}")
    allow = parse_allow_list(ALLOW_LIST_DOC.read_text(encoding="utf-8"))
    check_suite_dependencies()
    version = metadata.version("requests")
    suite = fetch_suite(version, args.cache_dir or cache_root())
    workdir = Path(tempfile.mkdtemp(prefix="rcm-compat-"))
    print(
        f"compat: requests {version} suite from {suite}; urllib3 {metadata.version('urllib3')}; "
        f"Python {sys.version.split()[0]}; package under test {src}"
        + ("; quick subset" if args.quick else ""),
        flush=True,
    )
    jobs = max(1, min(len(MODES), args.jobs))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {
            mode: pool.submit(
                run_mode,
                mode,
                suite,
                workdir,
                src=src,
                quick=args.quick,
                timeout=args.timeout,
                mode_timeout=args.mode_timeout,
            )
            for mode in MODES
        }
        results = {mode: future.result() for mode, future in futures.items()}
    for result in results.values():
        counts: dict[str, int] = {}
        for entry in (result.report or {}).get("outcomes", {}).values():
            counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
        shown = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no report"
        took = f"{result.seconds:.1f} s (pytest exit {result.returncode})"
        print(f"compat: {result.mode}: {shown} in {took}")
    verdict = compare(results, allow)
    out = io.StringIO()
    for line in blocked_lines(results):
        out.write(line + "\n")
    for line in verdict.details:
        out.write(f"compat: {line}\n")
    for line in verdict.lines:
        out.write(line + "\n")
    sys.stdout.write(out.getvalue())
    if args.keep or not verdict.ok:
        print(f"compat: logs and outcomes kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    status = "OK" if verdict.ok else "FAILED"
    print(f"compat: {status}; total time {time.monotonic() - started:.1f} s")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
