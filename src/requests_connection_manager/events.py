"""What happened, as it happened: the event stream of a manager.

Every step of the pipeline that a person may want to see — an attempt starting or ending,
a wait, a refusal, a retry, a breaker changing state, Redis going away — is published as a
small immutable event. The library's own logging, the per-host counters of ``get_stats()``,
the command line's ``-v`` and the demo's timeline are subscribers of this stream, and so can
you be::

    def show(event):
        if isinstance(event, RetryScheduled):
            print(f"retrying {event.url} in {event.wait:.2f} s after {event.outcome}")

    cm = ConnectionManager(on_event=show)      # or: cm.subscribe(show)

Subscribers run synchronously in the thread that made the call, in the order they were
added, and must be quick. One that raises is logged (once per subscriber and type of error)
and the call goes on. Every URL in an event is redacted; no event carries a secret.

One request (one redirect hop) publishes, in order::

    RequestStarted
      [Waited | Refused | HostPaused]*          admission: pause, limiter, breaker, quota
      AttemptStarted  AttemptFinished           once per attempt
      [RetryScheduled | RetryDenied]            between attempts
    RequestFinished                             with the response's status or the error
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, NamedTuple, Optional, Union

__all__ = [
    "AttemptFinished",
    "AttemptStarted",
    "BreakerStateChanged",
    "Event",
    "EventBus",
    "HostPaused",
    "Refused",
    "RequestFinished",
    "RequestStarted",
    "RetryDenied",
    "RetryScheduled",
    "SharedStateChanged",
    "Subscriber",
    "Waited",
]

logger = logging.getLogger("requests_connection_manager")


class RequestStarted(NamedTuple):
    """A request (one redirect hop of a call) entered the pipeline.

    Attributes:
        request_id: Unique within the manager; ties the events of one request together.
        host: The host key, ``scheme://host:port`` (plus ``[pattern]`` for an endpoint
            with its own limiter and breaker).
        method: The HTTP method.
        url: The URL, redacted.
        time: Monotonic time of the event.
    """

    request_id: int
    host: str
    method: str
    url: str
    time: float


class AttemptStarted(NamedTuple):
    """An attempt was admitted and is about to be sent.

    Attributes:
        request_id: The request it belongs to.
        host: The host key.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        probe: True when it is a half-open breaker probe.
        idempotency_key: The ``Idempotency-Key`` it carries, if any (not a secret).
        time: Monotonic time of the event.
        headers: The attempt's request headers. Read them through
            ``requests_connection_manager.utils``' redaction before showing them; a
            subscriber may *add* headers (trace context, for instance), which this
            attempt then carries.
    """

    request_id: int
    host: str
    attempt: int
    probe: bool
    idempotency_key: Optional[str]
    time: float
    headers: Any = None


class AttemptFinished(NamedTuple):
    """An attempt ended.

    Attributes:
        request_id: The request it belongs to.
        host: The host key.
        attempt: Its number (1 for the first).
        status: The response status, or None when it failed without one.
        error: The requests exception class name when it failed without a response.
        verdict: ``"success"``, ``"failure"`` (counted against the host by the breaker) or
            ``"neutral"`` (says nothing about the host: a client-side error, the caller's
            own deadline, a local file error). A response below 500 is a success.
        duration: Seconds the attempt took.
        time: Monotonic time of the event.
    """

    request_id: int
    host: str
    attempt: int
    status: Optional[int]
    error: Optional[str]
    verdict: str
    duration: float
    time: float


class RetryScheduled(NamedTuple):
    """Another attempt will follow after ``wait`` seconds.

    Attributes:
        request_id: The request it belongs to.
        host: The host key.
        method: The HTTP method.
        url: The URL, redacted.
        attempt: The attempt that failed.
        outcome: What it ended with, e.g. ``"status 503"`` or ``"ConnectTimeout"``.
        wait: Seconds of backoff before the next attempt (a host pause may add to it).
        time: Monotonic time of the event.
    """

    request_id: int
    host: str
    method: str
    url: str
    attempt: int
    outcome: str
    wait: float
    time: float


class RetryDenied(NamedTuple):
    """A retry was not made because the host's retry budget is spent.

    Attributes:
        request_id: The request it belongs to.
        host: The host key.
        attempt: The attempt that would have been retried.
        time: Monotonic time of the event.
    """

    request_id: int
    host: str
    attempt: int
    time: float


class Waited(NamedTuple):
    """The request waited before an attempt.

    Attributes:
        request_id: The request it belongs to.
        host: The host key.
        reason: ``"pause"`` (a Retry-After, a server quota reset or a slow-down seen by any
            caller), ``"rate_limit"`` (the client limiter), ``"quota"`` (answers in flight
            to say what remains of the server's quota) or ``"backoff"`` (between retries).
        seconds: How long it waited.
        time: Monotonic time of the event (the end of the wait).
    """

    request_id: int
    host: str
    reason: str
    seconds: float
    time: float


class Refused(NamedTuple):
    """The request was refused without an attempt (or without a further one).

    Attributes:
        request_id: The request it belongs to.
        host: The host key.
        reason: ``"breaker"`` (open circuit), ``"rate_limit"`` (no permit in time),
            ``"pause"`` (the host is paused longer than allowed), ``"retry_after"`` (the
            server asked to wait longer than allowed) or ``"throttle"`` (adaptive
            client-side throttling rejected it locally).
        retry_after: Seconds after which a new attempt may be admitted, if known.
        time: Monotonic time of the event.
    """

    request_id: int
    host: str
    reason: str
    retry_after: Optional[float]
    time: float


class HostPaused(NamedTuple):
    """Every caller of a host must wait: the host is paused until ``seconds`` from now.

    Attributes:
        host: The host key.
        seconds: Length of the pause.
        source: ``"retry-after"``, ``"quota"`` (a server's rate-limit headers said the
            quota is spent) or ``"slow-down"`` (a 429 without any hint).
        time: Monotonic time of the event.
    """

    host: str
    seconds: float
    source: str
    time: float


class BreakerStateChanged(NamedTuple):
    """A host's circuit breaker changed state.

    Attributes:
        host: The host key.
        old: The previous state (``""`` for a new breaker).
        new: ``"closed"``, ``"open"`` or ``"half-open"``.
        time: Monotonic time of the event.
    """

    host: str
    old: str
    new: str
    time: float


class RequestFinished(NamedTuple):
    """A request left the pipeline.

    Attributes:
        request_id: The request.
        host: The host key.
        attempts: Attempts sent on the wire.
        status: The status of the response returned, or None when it raised.
        error: The class name of the exception raised, or None.
        duration: Seconds from ``RequestStarted``.
        time: Monotonic time of the event.
    """

    request_id: int
    host: str
    attempts: int
    status: Optional[int]
    error: Optional[str]
    duration: float
    time: float


class SharedStateChanged(NamedTuple):
    """Shared state (Redis) became unusable, or usable again.

    Attributes:
        healthy: True when sharing resumed, False when calls fell back to local state.
        cause: The class name of the error that started an outage, or None.
        time: Monotonic time of the event.
    """

    healthy: bool
    cause: Optional[str]
    time: float


#: Any event of the stream.
Event = Union[
    RequestStarted,
    AttemptStarted,
    AttemptFinished,
    RetryScheduled,
    RetryDenied,
    Waited,
    Refused,
    HostPaused,
    BreakerStateChanged,
    RequestFinished,
    SharedStateChanged,
]
#: A subscriber: a callable taking one event.
Subscriber = Callable[[Any], Any]


class EventBus:
    """Delivers events to subscribers, synchronously, in subscription order.

    Subscribing and unsubscribing are safe from any thread; publishing iterates over an
    immutable snapshot and takes no lock. A subscriber with an ``event_types`` attribute (a
    set of event classes) receives only events of those classes; the library's own
    subscribers (stats, logging, telemetry) say which they handle, so an event nobody
    handles costs no call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[Subscriber, ...] = ()
        # The subscribers of each event class, found on its first publication: a subscriber
        # with an ``event_types`` attribute (a set of classes) gets only those.
        self._routes: dict[type, tuple[Subscriber, ...]] = {}
        self._reported: set[tuple[int, type[BaseException]]] = set()

    def subscribe(self, subscriber: Subscriber) -> None:
        """Add ``subscriber``; it receives every event published from now on.

        Raises:
            TypeError: ``subscriber`` is not callable.
        """
        if not callable(subscriber):
            raise TypeError(f"a subscriber must be callable, got {type(subscriber).__name__}")
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)
            self._routes = {}

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Remove ``subscriber``; one that is not subscribed is ignored."""
        with self._lock:
            found = list(self._subscribers)
            if subscriber in found:
                found.remove(subscriber)
                self._subscribers = tuple(found)
                self._routes = {}

    def publish(self, event: Any) -> None:
        """Hand ``event`` to every subscriber; a subscriber's error never reaches the caller."""
        routes = self._routes
        subscribers = routes.get(type(event))
        if subscribers is None:
            kind = type(event)
            subscribers = tuple(
                subscriber
                for subscriber in self._subscribers
                if kind in getattr(subscriber, "event_types", (kind,))
            )
            routes[kind] = subscribers
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # noqa: BLE001 - a subscriber must not break a call
                self._report(subscriber, exc)

    def _report(self, subscriber: Subscriber, exc: Exception) -> None:
        key = (id(subscriber), type(exc))
        if key in self._reported:
            return
        self._reported.add(key)
        logger.error(
            "event subscriber %s raised %s; it keeps receiving events, this is reported once",
            getattr(subscriber, "__qualname__", type(subscriber).__name__),
            type(exc).__name__,
        )

    def reinit_after_fork(self) -> None:
        """Give the bus a fresh lock in a forked child."""
        self._lock = threading.Lock()
