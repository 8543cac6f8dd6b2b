"""The measurement loops, shared by this process and the requests-connection-manager 1.0.0 worker.

Standard library only: the 1.0.0 worker (``legacy.py``) runs in a throwaway virtual
environment that has 1.0.0 and its dependencies and nothing of this project, and imports
this module by path, so both sides time exactly the same loop.

Every loop takes ``get``: one call of the client under test, ``get(url)``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from typing import Callable

#: One call of the client under test.
Get = Callable[[str], object]


def warm(get: Get, url: str, calls: int) -> None:
    """Make ``calls`` calls and ignore the outcome (connections opened, caches filled)."""
    for _ in range(calls):
        with contextlib.suppress(Exception):
            get(url)


def per_call(get: Get, url: str, calls: int) -> float:
    """Return the mean wall time of one call, in seconds, over ``calls`` sequential calls."""
    start = time.perf_counter()
    for _ in range(calls):
        get(url)
    return (time.perf_counter() - start) / calls


def per_call_timed(get: Get, url: str, calls: int) -> dict[str, float]:
    """Like :func:`per_call`, also returning this process's CPU time per call.

    The CPU time is the client's own cost (the server runs elsewhere): other processes
    competing for the cores inflate the wall time much more than it.

    Returns:
        ``seconds`` (wall) and ``cpu``, both per call.
    """
    cpu = time.process_time()
    start = time.perf_counter()
    for _ in range(calls):
        get(url)
    wall = time.perf_counter() - start
    return {"seconds": wall / calls, "cpu": (time.process_time() - cpu) / calls}


def throughput(get: Get, url: str, threads: int, duration: float) -> dict[str, float]:
    """Run ``threads`` threads calling ``get(url)`` back to back for ``duration`` seconds.

    The clock starts when every thread is ready and stops when the last call that started
    before ``duration`` ran out has finished, so a client that serialises its threads is
    charged for the queue it built.

    Returns:
        ``calls`` completed, ``errors`` raised and ``seconds`` elapsed.
    """
    stop = threading.Event()
    done = [0] * threads
    failed = [0] * threads
    ready = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        ready.wait()
        calls = errors = 0
        while not stop.is_set():
            try:
                get(url)
                calls += 1
            except Exception:
                errors += 1
        done[index] = calls
        failed[index] = errors

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    time.sleep(duration)
    stop.set()
    for thread in pool:
        thread.join()
    return {
        "calls": float(sum(done)),
        "errors": float(sum(failed)),
        "seconds": time.perf_counter() - start,
    }


def once_per_thread(get: Get, url: str, threads: int) -> int:
    """Make one call on each of ``threads`` threads, all at once (each opens a connection).

    Returns:
        How many of the calls raised.
    """
    ready = threading.Barrier(threads)
    failed = [0]

    def worker() -> None:
        ready.wait()
        try:
            get(url)
        except Exception:
            failed[0] += 1

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return failed[0]


def trip(get: Get, url: str) -> str:
    """Make one call that is expected to fail; return the name of what it raised."""
    try:
        get(url)
    except Exception as exc:
        return type(exc).__name__
    return "no error"


def rejections(get: Get, url: str, calls: int) -> dict[str, object]:
    """Time ``calls`` calls that are expected to be refused at once (an open breaker).

    Returns:
        ``seconds_per_call`` (mean wall time), ``cpu_per_call`` (this process's CPU time)
        and ``errors``: exception class name to count
        (``"no error"`` counts calls that returned).
    """
    outcomes: Counter[str] = Counter()
    cpu = time.process_time()
    start = time.perf_counter()
    for _ in range(calls):
        try:
            get(url)
            outcomes["no error"] += 1
        except Exception as exc:
            outcomes[type(exc).__name__] += 1
    elapsed = time.perf_counter() - start
    return {
        "seconds_per_call": elapsed / calls,
        "cpu_per_call": (time.process_time() - cpu) / calls,
        "errors": dict(outcomes),
    }


def fixed_total(get: Get, url: str, threads: int, total: int) -> dict[str, float]:
    """Run ``threads`` threads that together make exactly ``total`` calls of ``get(url)``.

    Returns:
        ``calls`` completed, ``errors`` raised and ``seconds`` elapsed.
    """
    lock = threading.Lock()
    issued = [0]
    failed = [0]

    def worker() -> None:
        while True:
            with lock:
                if issued[0] >= total:
                    return
                issued[0] += 1
            try:
                get(url)
            except Exception:
                with lock:
                    failed[0] += 1

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    start = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return {
        "calls": float(total - failed[0]),
        "errors": float(failed[0]),
        "seconds": time.perf_counter() - start,
    }
