"""requests-connection-manager 1.0.0, measured in a throwaway virtual environment of its own.

The PyPI package 1.0.0 has the import name of this project, so it can never share a
process or an environment with it. :class:`Legacy` creates a virtual environment in a
temporary directory, installs ``requests-connection-manager==1.0.0`` there with pip, and
starts this file in it as a worker (``python -I legacy.py --worker``). The worker imports
``loops`` from this directory (standard library only) and runs the very loops the main
process runs, on commands sent as JSON lines on its stdin; it answers with one JSON line
on stdout per command.

Commands: ``hello``; ``make`` (``id``, ``kind`` = ``"rcm"`` or ``"session"``, ``kwargs``);
``warm``, ``per_call``, ``throughput``, ``trip``, ``rejections`` (``id``, ``url`` and the
loop's own arguments); ``close`` (``id``); ``exit``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, Callable, Optional

PACKAGE = "requests-connection-manager==1.0.0"
HERE = Path(__file__).resolve().parent

Log = Callable[[str], None]


class LegacyError(RuntimeError):
    """The 1.0.0 worker failed a command or died."""


def _tail(text: str, lines: int = 3) -> str:
    return " / ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


class Legacy:
    """The 1.0.0 worker process and the virtual environment it runs in.

    Args:
        workdir: A private temporary directory (the venv goes in ``workdir/venv``).
        log: Progress messages.
    """

    def __init__(self, workdir: Path, log: Log) -> None:
        self.workdir = workdir
        self.log = log
        self.skipped: Optional[str] = None
        self.info: dict[str, Any] = {}
        self._process: Optional[subprocess.Popen[str]] = None
        self._stderr: Optional[IO[str]] = None

    def start(self) -> bool:
        """Create the venv, install 1.0.0 and start the worker.

        Returns:
            True when the worker is ready; False with :attr:`skipped` set to the reason.
        """
        venv = self.workdir / "venv"
        python = venv / "bin" / "python"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        steps = [
            ("create a virtual environment", [sys.executable, "-m", "venv", str(venv)]),
            (
                f"pip install {PACKAGE}",
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    PACKAGE,
                ],
            ),
        ]
        for what, command in steps:
            self.log(f"1.0.0: {what}")
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
            except (OSError, subprocess.TimeoutExpired) as exc:
                self.skipped = f"could not {what}: {exc}"
                return False
            if done.returncode != 0:
                self.skipped = (
                    f"could not {what} (exit {done.returncode}): "
                    f"{_tail(done.stderr or done.stdout)}"
                )
                return False
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.workdir / "worker.err", "w")  # noqa: SIM115 - see close()
        self._process = subprocess.Popen(
            [str(python), "-I", str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            env=env,
            cwd=str(self.workdir),
            start_new_session=True,
        )
        try:
            self.info = self.call("hello")
        except LegacyError as exc:
            self.skipped = f"the 1.0.0 worker did not start: {exc}"
            self.close()
            return False
        if self.info.get("version") != "1.0.0":
            self.skipped = f"the worker imported version {self.info.get('version')!r}, not 1.0.0"
            self.close()
            return False
        return True

    @property
    def ready(self) -> bool:
        """True while the worker runs."""
        return self._process is not None and self._process.poll() is None

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one command and return the worker's answer.

        Raises:
            LegacyError: The worker reported an error, or died.
        """
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise LegacyError("the worker is not running")
        try:
            process.stdin.write(json.dumps({"op": op, **args}) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except OSError as exc:
            raise LegacyError(f"{op}: {exc}") from exc
        if not line:
            raise LegacyError(f"{op}: the worker exited; stderr: {self._stderr_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise LegacyError(f"{op}: {answer['error']}")
        return answer

    def _stderr_tail(self) -> str:
        path = self.workdir / "worker.err"
        return _tail(path.read_text(errors="replace")) if path.exists() else ""

    def close(self) -> None:
        """Stop the worker; idempotent. The venv goes with the temporary directory."""
        process = self._process
        self._process = None
        if process is not None:
            try:
                if process.poll() is None and process.stdin is not None:
                    process.stdin.write('{"op": "exit"}\n')
                    process.stdin.flush()
                process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


# ------------------------------------------------------------------------------ the worker
def _worker() -> None:  # pragma: no cover - runs in the 1.0.0 venv
    """Answer commands from stdin, one JSON line each, until ``exit`` or end of input."""
    import logging
    import platform
    from importlib import metadata

    sys.path.insert(0, str(HERE))
    import loops
    import requests
    from requests.adapters import HTTPAdapter

    from requests_connection_manager import ConnectionManager

    # As in the main process: the library's log records are made, but go nowhere.
    library_logger = logging.getLogger("requests_connection_manager")
    library_logger.addHandler(logging.NullHandler())
    library_logger.propagate = False

    clients: dict[str, Any] = {}

    def make(kind: str, kwargs: dict[str, Any]) -> Any:
        if kind == "rcm":
            return ConnectionManager(**kwargs)
        session = requests.Session()
        size = int(kwargs.get("pool_maxsize", 10))
        session.mount("http://", HTTPAdapter(pool_maxsize=size))
        return session

    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        try:
            if op == "exit":
                break
            if op == "hello":
                import requests_connection_manager as rcm

                answer: dict[str, Any] = {
                    "version": metadata.version("requests-connection-manager"),
                    "module": rcm.__file__,
                    "python": platform.python_version(),
                    "packages": {
                        name: metadata.version(name)
                        for name in ("requests", "urllib3", "ratelimit", "pybreaker")
                    },
                }
            elif op == "make":
                clients[command["id"]] = make(command["kind"], command["kwargs"])
                answer = {}
            elif op == "close":
                clients.pop(command["id"]).close()
                answer = {}
            else:
                get = clients[command.pop("id")].get
                if op == "warm":
                    loops.warm(get, **command)
                    answer = {}
                elif op == "per_call":
                    answer = dict(loops.per_call_timed(get, **command))
                elif op == "throughput":
                    answer = dict(loops.throughput(get, **command))
                elif op == "trip":
                    answer = {"raised": loops.trip(get, **command)}
                elif op == "rejections":
                    answer = dict(loops.rejections(get, **command))
                else:
                    answer = {"error": f"unknown op {op!r}"}
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        _worker()
    else:
        print("legacy.py is started by run.py (python legacy.py --worker)", file=sys.stderr)
        sys.exit(2)
