"""The servers the benchmarks talk to, all on 127.0.0.1.

- :class:`Nginx`: the fast endpoint (``GET /json``), nginx with a configuration written
  into a temporary directory, started as a child process and stopped at the end.
- :class:`PyServer`: a threaded Python server (``ThreadingHTTPServer``, HTTP/1.1
  keep-alive) in a child process: ``/slow`` answers after 50 ms, ``/json`` at once (the
  fallback when nginx is unavailable), ``/stamp/<tag>`` records ``time.monotonic()`` when
  the request arrives, ``/stamps/<tag>`` returns and forgets those arrival times.
- :class:`CountingListener`: a socket that accepts connections, counts them and closes
  them at once: a host that fails every request and shows whether anything reached it.

Run ``python servers.py --serve`` to start the Python server in the foreground (it prints
``PORT <n>``); it uses the standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Callable, ClassVar, Optional

#: How long ``/slow`` takes, in seconds.
SLOW_SECONDS = 0.05
JSON_BODY = b'{"ok":true}'

Log = Callable[[str], None]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(port: int, path: str, timeout: float, alive: Callable[[], bool]) -> None:
    """Wait until ``GET path`` on 127.0.0.1:``port`` answers 200.

    Raises:
        RuntimeError: The server died or did not answer within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the server exited before it answered")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                return
            last = f"status {response.status}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
        time.sleep(0.05)
    raise RuntimeError(f"no 200 from 127.0.0.1:{port}{path} within {timeout:g} s ({last})")


def _stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------------- nginx
NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    tcp_nodelay on;
    server {{
        listen 127.0.0.1:{port};
        location /json {{
            default_type application/json;
            return 200 '{{"ok":true}}';
        }}
    }}
}}
"""


def find_or_install_nginx(log: Log) -> tuple[Optional[str], str]:
    """Return ``(path to nginx, note)``; install it with apt-get when it is missing.

    Returns:
        The executable (None when it cannot be had) and a sentence saying what happened.
    """
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found:
        return found, "nginx found on this machine"
    if shutil.which("apt-get") is None:
        return None, "nginx is not installed and apt-get is not available"
    log("nginx not found: apt-get install -y nginx")
    reason = ""
    for commands in (
        [["apt-get", "install", "-y", "nginx"]],
        [["apt-get", "update"], ["apt-get", "install", "-y", "nginx"]],
    ):
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                reason = f"`{' '.join(command)}` exited {done.returncode}: " + " / ".join(tail)
                break
        else:
            found = shutil.which("nginx") or (
                "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
            )
            if found:
                return found, "nginx installed by this run with apt-get"
            reason = "apt-get succeeded but no nginx executable was found"
    return None, reason


class Nginx:
    """nginx serving ``GET /json`` on a free loopback port, configured in ``workdir``.

    Args:
        executable: The nginx binary.
        workdir: A private temporary directory for the configuration, pid and error log.
    """

    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable = executable
        self.workdir = workdir
        self.port = free_port()
        self._process: Optional[subprocess.Popen[bytes]] = None

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def version(self) -> str:
        """The ``nginx -v`` banner, e.g. ``nginx/1.22.1``."""
        done = subprocess.run([self.executable, "-v"], capture_output=True, text=True)
        return (done.stderr or done.stdout).strip().replace("nginx version: ", "")

    def start(self) -> None:
        """Write the configuration, start nginx and wait until ``/json`` answers.

        Raises:
            RuntimeError: nginx did not start; the message carries its error log.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.workdir, port=self.port))
        output = open(self.workdir / "nginx.out", "wb")  # noqa: SIM115 - closed in stop()
        self._output: IO[bytes] = output
        self._process = subprocess.Popen(
            [
                self.executable,
                "-p",
                str(self.workdir),
                "-c",
                str(conf),
                "-e",
                str(self.workdir / "error.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us, and we stop nginx ourselves
        )
        process = self._process
        try:
            wait_for_http(self.port, "/json", 10, lambda: process.poll() is None)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"nginx did not start: {exc}; {self._logs()}") from exc

    def _logs(self) -> str:
        text = []
        for name in ("nginx.out", "error.log"):
            path = self.workdir / name
            if path.exists():
                text.extend(path.read_text(errors="replace").strip().splitlines()[-3:])
        return " / ".join(text) or "no log output"

    def stop(self) -> None:
        """Stop nginx (SIGTERM: fast shutdown); idempotent."""
        if self._process is not None:
            _stop(self._process)
            self._process = None
            self._output.close()


# ------------------------------------------------------------------ threaded Python server
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stamps: ClassVar[dict[str, list[float]]] = {}
    stamps_lock: ClassVar[threading.Lock] = threading.Lock()

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this Nagle + delayed ACK add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        arrived = time.monotonic()
        path = self.path
        body = JSON_BODY
        if path.startswith("/stamp/"):
            with self.stamps_lock:
                self.stamps.setdefault(path[len("/stamp/") :], []).append(arrived)
        elif path.startswith("/stamps/"):
            with self.stamps_lock:
                body = json.dumps(self.stamps.pop(path[len("/stamps/") :], [])).encode()
        elif path == "/slow":
            time.sleep(SLOW_SECONDS)
        elif path != "/json":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # 64 threads connect at once; the default backlog is 5


def serve_forever(port: int = 0) -> None:
    """Serve on 127.0.0.1:``port`` until killed; print ``PORT <n>`` once listening."""
    server = _Server(("127.0.0.1", port), _Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


class PyServer:
    """The threaded Python server, in a child process of its own (its own GIL).

    Args:
        workdir: Where its stderr goes.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self._process: Optional[subprocess.Popen[bytes]] = None

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server process and wait until it answers.

        Raises:
            RuntimeError: The server did not start.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._errors = open(self.workdir / "pyserver.err", "wb")  # noqa: SIM115 - see stop()
        self._process = subprocess.Popen(
            [sys.executable, "-I", str(Path(__file__).resolve()), "--serve"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            start_new_session=True,
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], 10)
        line = self._process.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the Python server did not start (said {line!r})")
        self.port = int(line.split()[1])
        process = self._process
        wait_for_http(self.port, "/json", 10, lambda: process.poll() is None)

    def stamps(self, tag: str) -> list[float]:
        """Return (and forget) the monotonic arrival times recorded under ``tag``."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", f"/stamps/{tag}")
            return [float(t) for t in json.loads(connection.getresponse().read())]
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop the server process; idempotent."""
        if self._process is not None:
            _stop(self._process)
            self._process = None
            self._errors.close()


# -------------------------------------------------------------------------- counting host
class CountingListener:
    """A loopback port that accepts every connection, counts it and closes it at once.

    Every request sent to it fails (the connection closes without a response), and
    :attr:`accepted` tells how many connections reached it.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.05)
        self.port = int(self._sock.getsockname()[1])
        self._accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="counting-listener", daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._accepted += 1
            connection.close()

    def accepted(self, settle: float = 0.2) -> int:
        """Connections accepted so far, after ``settle`` seconds for the backlog to drain."""
        time.sleep(settle)
        return self._accepted

    def close(self) -> None:
        """Stop accepting and close the socket."""
        self._stop.set()
        self._thread.join()
        self._sock.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve_forever()
    else:
        print("usage: python servers.py --serve", file=sys.stderr)
        sys.exit(2)
