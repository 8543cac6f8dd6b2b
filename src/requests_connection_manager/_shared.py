"""Shared state across processes through Redis: one quota and one view of a failing host.

Installed with the ``redis`` extra (``redis`` and ``limits``). A :class:`SharedLink` owns
the Redis connection of one manager and hands out, per host key:

- a limiter backed by ``limits`` with its Redis storage (fixed or moving window, per
  ``rate_limit_strategy``), so every process draws from one quota;
- a pybreaker storage whose state lives in pybreaker's ``CircuitRedisStorage``, so a
  breaker opened by one process refuses calls in every process;
- half-open probe slots counted in Redis, so the probe bound holds across processes.

**Fail-open.** Every shared object keeps a local twin (an in-process limiter, a
``CircuitMemoryStorage``). When Redis fails, the call goes on with the local twin, one
warning is logged for the outage (not one per call), and the link tries Redis again at
most every ``retry_interval`` seconds (one ``PING``); when it answers, sharing resumes and
that is logged too. The connection made from ``redis_url`` uses short timeouts and no
client-side retries, so a dead Redis costs a call at most one short timeout per interval.

Known pitfalls of ``CircuitRedisStorage`` and what is done about them: creating a breaker
never resets shared state (keys are only created if missing, the initial state object is
built without notification); keys are namespaced per manager prefix and host key; a
missing key (expired, flushed) reads as a closed, clean breaker; pybreaker's own error
logging (one ``logger.exception`` per failed Redis call) is routed into the link's
health tracking instead of the log. Redis stores the opening time in whole seconds, so a
shared breaker may admit its probe up to one second early.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

import pybreaker

from ._limiter import MIN_WAIT, Limiter
from .events import SharedStateChanged

if TYPE_CHECKING:
    from datetime import datetime

    from .config import Policy, RateLimitConfig

__all__ = ["DEFAULT_REDIS_TIMEOUT", "FailoverStorage", "ProbeSlots", "SharedLimiter", "SharedLink"]

logger = logging.getLogger("requests_connection_manager")

#: Connect and read timeout, seconds, of the connection made from ``redis_url``.
DEFAULT_REDIS_TIMEOUT = 0.25
#: Seconds between attempts to reach Redis again during an outage.
DEFAULT_RETRY_INTERVAL = 2.0


def _no_subscriber(event: Any) -> None:
    """Where a link's events go until a manager subscribes."""


class SharedLink:
    """The Redis connection of one manager, with its health.

    Args:
        client: A ``redis.Redis`` client.
        prefix: Namespace of every key this manager writes.
        owned: Close the client with :meth:`close` (True when made from a URL).
        retry_interval: Seconds between attempts to reach Redis again during an outage.
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        *,
        owned: bool = False,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._owned = owned
        self._retry_interval = retry_interval
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0
        self._outages = 0
        self._limits_storage: Any = None
        self._strategies: dict[str, Any] = {}
        self.publish: Callable[[Any], None] = _no_subscriber

    @classmethod
    def from_keywords(
        cls, redis_url: Any, redis_client: Any, prefix: Any, policy: Policy
    ) -> Optional[SharedLink]:
        """Validate the shared-state keywords and connect (lazily: nothing is sent yet).

        Returns:
            The link, or None when neither ``redis_url`` nor ``redis_client`` is given.

        Raises:
            TypeError: A keyword has the wrong type.
            ValueError: A keyword is out of range, or both are given.
        """
        if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"redis_prefix must be a non-empty str without spaces, got {prefix!r}")
        if redis_url is not None and redis_client is not None:
            raise ValueError("give redis_url or redis_client, not both")
        if redis_url is None and redis_client is None:
            return None
        limit = policy.rate_limit
        if limit is not None and not float(limit.period).is_integer():
            raise ValueError(
                "rate_limit_period must be a whole number of seconds with shared state, "
                f"got {limit.period!r}"
            )
        if redis_client is not None:
            if not callable(getattr(redis_client, "ping", None)):
                raise TypeError(
                    f"redis_client must be a redis.Redis client, got {type(redis_client).__name__}"
                )
            return cls(redis_client, prefix)
        if not isinstance(redis_url, str):
            raise TypeError(f"redis_url must be a str, got {type(redis_url).__name__}")
        return cls.connect(redis_url, prefix)

    @classmethod
    def connect(cls, url: str, prefix: str, timeout: float = DEFAULT_REDIS_TIMEOUT) -> SharedLink:
        """Make a link from a ``redis://`` URL with short timeouts and no client retries.

        Raises:
            ValueError: The URL is not a Redis URL, or the ``redis`` extra is missing.
        """
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise ValueError(
                "redis_url needs the 'redis' extra: "
                "pip install 'requests-connection-manager[redis]'"
            ) from exc
        try:
            client = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
            )
        except ValueError as exc:
            raise ValueError(f"redis_url is not a Redis URL: {exc}") from None
        return cls(client, prefix, owned=True)

    # ------------------------------------------------------------------------- health
    def available(self) -> bool:
        """Tell whether to use Redis now; during an outage, one caller per interval pings it."""
        if not self._down:
            return True
        now = time.monotonic()
        with self._lock:
            if now < self._retry_at:
                return False
            self._retry_at = now + self._retry_interval
        try:
            self.client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "still down"
            self.failed(exc)
            return False
        self._resumed()
        return True

    def failed(self, exc: Optional[BaseException]) -> None:
        """Record a failed Redis call; the first of an outage is logged as a warning."""
        with self._lock:
            self._retry_at = time.monotonic() + self._retry_interval
            if self._down:
                return
            self._down = True
            self._outages += 1
        if exc is not None and logger.isEnabledFor(logging.DEBUG):
            logger.debug("shared state: the Redis error", exc_info=exc)
        self.publish(
            SharedStateChanged(
                False, type(exc).__name__ if exc is not None else None, time.monotonic()
            )
        )

    def _resumed(self) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
        self.publish(SharedStateChanged(True, None, time.monotonic()))

    def status(self) -> dict[str, Any]:
        """The block of ``get_stats()`` that describes shared state."""
        return {
            "enabled": True,
            "backend": "redis",
            "prefix": self.prefix,
            "healthy": not self._down,
            "outages": self._outages,
        }

    def reinit_after_fork(self) -> None:
        """A fresh lock in a forked child (redis-py reconnects on its own after a fork)."""
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection if this link made it."""
        if self._owned:
            self.client.close()

    # ---------------------------------------------------------------------- factories
    def namespace(self, key: str) -> str:
        """The Redis namespace of one host key."""
        return f"{self.prefix}:{key}"

    def limiter(self, settings: RateLimitConfig, key: str, local: Limiter) -> SharedLimiter:
        """Return the shared limiter of ``key``, falling back to ``local``."""
        from limits import RateLimitItemPerSecond

        item = RateLimitItemPerSecond(
            settings.requests, int(settings.period), namespace=self.prefix
        )
        # The strategy is part of the key: the two keep different Redis types under it.
        identifiers = (key, settings.strategy)
        return SharedLimiter(self, self._strategy(settings.strategy), item, identifiers, local)

    def _strategy(self, name: str) -> Any:
        with self._lock:
            if name not in self._strategies:
                from limits.storage import RedisStorage
                from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

                if self._limits_storage is None:
                    self._limits_storage = RedisStorage(
                        "redis://", connection_pool=self.client.connection_pool
                    )
                kind = (
                    MovingWindowRateLimiter if name == "sliding-window" else FixedWindowRateLimiter
                )
                self._strategies[name] = kind(self._limits_storage)
            return self._strategies[name]

    def breaker_storage(self, key: str) -> FailoverStorage:
        """Return the breaker storage of ``key``: Redis while it answers, local otherwise."""
        return FailoverStorage(self, self.namespace(key))

    def probe_slots(self, key: str, ttl: float) -> ProbeSlots:
        """Return the cross-process half-open probe counter of ``key``."""
        return ProbeSlots(self, f"{self.namespace(key)}:probes", ttl)


class SharedLimiter:
    """A ``limits`` limiter in Redis, with an in-process twin used while Redis is down."""

    def __init__(
        self,
        link: SharedLink,
        strategy: Any,
        item: Any,
        identifiers: tuple[str, ...],
        local: Limiter,
    ) -> None:
        self._link = link
        self._strategy = strategy
        self._item = item
        self._identifiers = identifiers
        self._local = local

    def try_acquire(self) -> float:
        """Take a permit from the shared quota (or the local one during an outage)."""
        if self._link.available():
            try:
                if self._strategy.hit(self._item, *self._identifiers):
                    return 0.0
                stats = self._strategy.get_window_stats(self._item, *self._identifiers)
                return max(float(stats.reset_time) - time.time(), MIN_WAIT)
            except Exception as exc:  # noqa: BLE001 - any Redis failure: fail open to local
                self._link.failed(exc)
        return self._local.try_acquire()

    def quiet(self) -> bool:
        """The shared window lives in Redis; only the local twin's matters here."""
        return self._local.quiet()


class _ErrorSink:
    """Stands in for ``CircuitRedisStorage.logger``: a failed call marks an outage instead."""

    def __init__(self, link: SharedLink) -> None:
        self._link = link

    def exception(self, *args: Any, **kwargs: Any) -> None:
        self._link.failed(sys.exc_info()[1])

    error = warning = exception


class FailoverStorage(pybreaker.CircuitBreakerStorage):
    """A pybreaker storage: ``CircuitRedisStorage`` while Redis answers, memory otherwise.

    Args:
        link: The manager's shared link.
        namespace: This host's key namespace in Redis.
    """

    def __init__(self, link: SharedLink, namespace: str) -> None:
        super().__init__("redis-failover")
        self._link = link
        self._namespace = namespace
        self._local = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self._remote: Optional[pybreaker.CircuitRedisStorage] = None

    def _store(self) -> pybreaker.CircuitBreakerStorage:
        if not self._link.available():
            return self._local
        remote = self._remote
        if remote is None:
            try:
                # Creating it only adds missing keys (SETNX): shared state is never reset.
                remote = pybreaker.CircuitRedisStorage(
                    pybreaker.STATE_CLOSED, self._link.client, namespace=self._namespace
                )
            except Exception as exc:  # noqa: BLE001 - any Redis failure: fail open to local
                self._link.failed(exc)
                return self._local
            remote.logger = _ErrorSink(self._link)  # type: ignore[assignment]
            self._remote = remote
        return remote

    @property
    def state(self) -> str:
        """The breaker's state name."""
        return str(self._store().state)

    @state.setter
    def state(self, state: str) -> None:
        store = self._store()
        store.state = state
        if store is not self._local:
            self._local.state = state  # the twin follows, for the next outage

    def increment_counter(self) -> None:
        """Add one to the failure counter."""
        self._store().increment_counter()

    def reset_counter(self) -> None:
        """Set the failure counter to zero."""
        self._store().reset_counter()

    def increment_success_counter(self) -> None:
        """Add one to the success counter (pybreaker >= 1.3)."""
        store = self._store()
        if hasattr(store, "increment_success_counter"):
            store.increment_success_counter()

    def reset_success_counter(self) -> None:
        """Set the success counter to zero (pybreaker >= 1.3)."""
        store = self._store()
        if hasattr(store, "reset_success_counter"):
            store.reset_success_counter()

    @property
    def counter(self) -> int:
        """Consecutive failures."""
        return int(self._store().counter)

    @property
    def success_counter(self) -> int:
        """Consecutive half-open successes (pybreaker >= 1.3)."""
        return int(getattr(self._store(), "success_counter", 0))

    @property
    def opened_at(self) -> Optional[datetime]:
        """When the breaker last opened."""
        return self._store().opened_at

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        store = self._store()
        store.opened_at = when
        if store is not self._local:
            self._local.opened_at = when


class ProbeSlots:
    """Half-open probes in flight across every process, counted in Redis (best effort).

    A slot is taken with ``INCR`` and given back with ``DECR``; the key expires after
    ``ttl`` seconds, so a process that dies holding a slot delays recovery by at most that.
    While Redis is down, only the local bound applies.
    """

    def __init__(self, link: SharedLink, key: str, ttl: float) -> None:
        self._link = link
        self._key = key
        self._ttl = max(1, int(ttl + 0.999))
        self._held = 0
        self._lock = threading.Lock()

    def take(self, maximum: int) -> bool:
        """Take a slot if fewer than ``maximum`` are taken across processes."""
        if not self._link.available():
            return True
        try:
            pipe = self._link.client.pipeline()
            pipe.incr(self._key)
            pipe.expire(self._key, self._ttl)
            taken = int(pipe.execute()[0])
            if taken > maximum:
                self._link.client.decr(self._key)
                return False
        except Exception as exc:  # noqa: BLE001 - any Redis failure: local bound only
            self._link.failed(exc)
            return True
        with self._lock:
            self._held += 1
        return True

    def give(self) -> None:
        """Give back a slot taken by :meth:`take` (nothing if it was taken locally)."""
        with self._lock:
            if not self._held:
                return
            self._held -= 1
        try:
            self._link.client.decr(self._key)
        except Exception as exc:  # noqa: BLE001 - the key expires on its own
            self._link.failed(exc)
