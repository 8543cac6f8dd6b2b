"""The two background threads of a shared-state link: the subscriber and the ticker.

Both are daemon threads that hold their link only through a weak reference, so a manager
that is dropped without ``close()`` does not live on through them: each loop ends within
a second of its link being collected, and at once when the link is closed.

- :class:`Subscriber` listens to the prefix's events channel for good. On any error (the
  node died, a failover, a silent peer that stops answering its ``PING``) it reports the
  subscription lost, so cached state is polled instead, and subscribes again with a short
  back-off, trying each candidate node; every confirmation bumps the link's epoch, so every
  cached view is read again (messages published while it was away are lost: pub/sub is
  at-most-once).
- :class:`Ticker` runs the link's periodic work every :data:`TICK` seconds: flushing batched
  counts, renewing probe leases, and checking whether Redis answers again during an outage.
  None of this is on a call's path.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from ._shared import SharedLink

__all__ = ["TICK", "Subscriber", "Ticker"]

logger = logging.getLogger("requests_connection_manager")

#: Seconds between two runs of the ticker's work.
TICK = 0.05
#: Seconds between two PINGs on an idle subscription; three unanswered ones mean it is lost.
PING_EVERY = 1.0
#: Seconds a subscriber waits for a message before it looks at its link again.
_READ = 0.2
_BACKOFF_MAX = 1.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Lost(Exception):
    """The subscription ended: the server unsubscribed us or stopped answering."""


class _LinkThread:
    """A daemon thread that runs :meth:`_run` and holds its link only weakly.

    Attributes:
        thread_name: The thread's name.
        join_timeout: Seconds :meth:`stop` waits for the thread to end.

    Args:
        link: The link the thread works for.
    """

    thread_name = "rcm-fleet"
    join_timeout = 1.0

    def __init__(self, link: SharedLink) -> None:
        self._link = weakref.ref(link)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait, at most :attr:`join_timeout` seconds, for it to end."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.join_timeout)

    def _run(self) -> None:
        raise NotImplementedError


class Subscriber(_LinkThread):
    """Keeps one subscription to the link's events channel alive, in a daemon thread.

    It notices :meth:`stop` within a read timeout.

    Args:
        link: The link to report messages and (un)subscriptions to.
    """

    thread_name = "rcm-fleet-sub"
    join_timeout = _READ * 3

    def __init__(self, link: SharedLink) -> None:
        super().__init__(link)
        #: Set after the first attempt to subscribe, whatever its outcome.
        self.first_attempt = threading.Event()
        #: The error of the first attempt, or None when it subscribed.
        self.first_error: Optional[BaseException] = None

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            link = self._link()
            if link is None:
                return
            try:
                candidates = link.target.subscriber_clients()
            except Exception as exc:  # noqa: BLE001 - Redis unreachable: try again later
                candidates = []
                self._first(exc)
            channel = link.channel
            del link
            for client in candidates:
                if self._stop.is_set():
                    break
                if self._listen(client, channel):
                    backoff = 0.05
            for client in candidates:
                with contextlib.suppress(Exception):
                    client.close()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    def _first(self, exc: Optional[BaseException]) -> None:
        if not self.first_attempt.is_set():
            self.first_error = exc
            self.first_attempt.set()

    def _listen(self, client: Any, channel: str) -> bool:
        """Subscribe through ``client`` and dispatch until the subscription ends.

        Returns:
            True when it had subscribed.
        """
        pubsub = client.pubsub()
        subscribed = False
        try:
            pubsub.subscribe(channel)
            last_ping = last_pong = time.monotonic()
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=_READ)
                now = time.monotonic()
                if message is None:
                    if now - last_pong > 3 * PING_EVERY:
                        raise _Lost("no answer to PING")
                    if now - last_ping > PING_EVERY:
                        pubsub.ping()
                        last_ping = now
                    continue
                last_pong = now  # any traffic shows the connection is alive
                link = self._link()
                if link is None:
                    return subscribed
                kind = _text(message["type"])
                if kind == "message":
                    link.on_message(message["data"])
                elif kind == "subscribe":
                    subscribed = True
                    link.subscribed()
                    self._first(None)
                elif kind == "unsubscribe":
                    raise _Lost("unsubscribed by the server")
                del link
        except Exception as exc:  # noqa: BLE001 - any failure: subscribe again
            self._first(exc)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("shared state: subscription lost (%r)", exc)
        finally:
            link = self._link()
            if link is not None and subscribed:
                link.unsubscribed()
            with contextlib.suppress(Exception):
                pubsub.close()
        return subscribed


class Ticker(_LinkThread):
    """Runs ``link.tick()`` every :data:`TICK` seconds in a daemon thread.

    Args:
        link: The link whose periodic work this runs.
    """

    thread_name = "rcm-fleet-tick"

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            link = self._link()
            if link is None:
                return
            try:
                link.tick()
            except Exception as exc:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("shared state: background work failed", exc_info=exc)
            del link
