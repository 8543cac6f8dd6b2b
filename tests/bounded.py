"""Run a call in a daemon thread and wait for it a bounded time: a hang becomes a failed check.

A test about a deadline or a wake-up must not hang when the library does: it runs the
call here, waits at most ``timeout`` seconds, and asserts on whether it finished. A call
that is still running is left behind in a daemon thread (the servers' teardown usually
ends it).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

__all__ = ["Bounded", "start_bounded"]


class Bounded:
    """A call running in a daemon thread.

    Attributes:
        value: What the call returned (once finished without an error).
        error: What it raised (any ``BaseException``), or None.
        elapsed: Seconds it took, once finished.
    """

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: Optional[BaseException] = None
        self.elapsed: Optional[float] = None
        self._fn = fn
        self._thread = threading.Thread(target=self._run, daemon=True, name="bounded-call")

    def _run(self) -> None:
        start = time.monotonic()
        try:
            self.value = self._fn()
        except BaseException as exc:  # reported to the test, whatever it is
            self.error = exc
        finally:
            self.elapsed = time.monotonic() - start

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; return True if the call has finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """True while the call has not finished."""
        return self._thread.is_alive()


def start_bounded(fn: Callable[[], Any]) -> Bounded:
    """Start ``fn()`` in a daemon thread and return its handle."""
    call = Bounded(fn)
    call._thread.start()
    return call
