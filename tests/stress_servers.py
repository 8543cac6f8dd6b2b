"""The stress test's servers, in a process of their own, keeping counts only.

Run as ``python -m tests.stress_servers``. It starts two :class:`~tests.servers.AppServer`
instances that keep no request records (``record=False``) and prints one JSON line with
their ports: ``{"good": PORT, "bad": PORT}``. ``good`` (127.0.0.1) serves ``/ok``,
``/flaky`` (every fifth request a 503) and ``/slow`` (10 ms); ``bad`` (127.0.0.2) answers
500 on ``/down``. Then it reads commands on stdin, one per line: ``totals`` prints
``{"good": N, "bad": M}`` (requests received so far), ``stop`` (or end of input) exits.

Running the servers outside the test process keeps their memory (werkzeug's parsing,
http.server's header objects, per-request records) out of the test's tracemalloc
measurement, which then sees the client alone.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading

from werkzeug import Request, Response

from tests.servers import AppServer


def flaky_handler() -> object:
    """A handler answering 503 to every fifth request, 200 otherwise."""
    counter = itertools.count(1)
    lock = threading.Lock()

    def handler(request: Request) -> Response:
        with lock:
            n = next(counter)
        return Response("no", status=503) if n % 5 == 0 else Response("ok")

    return handler


def main() -> int:
    """Serve until told to stop; report totals on request."""
    with AppServer(record=False) as good, AppServer("127.0.0.2", record=False) as bad:
        good.ok("/ok")
        good.route("/flaky", flaky_handler())  # type: ignore[arg-type]
        good.slow("/slow", 0.01)
        bad.ok("/down", b"down", status=500)
        print(json.dumps({"good": good.port, "bad": bad.port}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "totals":
                print(json.dumps({"good": good.total(), "bad": bad.total()}), flush=True)
            elif command == "stop":
                break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
