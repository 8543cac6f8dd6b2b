"""Shared state across processes through Redis: one quota and one view of a failing host.

Installed with the ``redis`` extra. A :class:`SharedLink` owns the Redis connection of one
manager (a single node, a Redis Cluster or a Sentinel-managed primary: see
:mod:`._redis_target`) and hands out, per host key:

- a :class:`~._shared_limiter.SharedLimiter`: permits from a fixed- or sliding-window
  script, exact across processes, answering the wait of a refusal in the same round trip;
  a process calling steadily takes them a lease at a time, so most calls make no round
  trip (:mod:`._shared_limiter` says how that stays exact);
- a :class:`~._fleet_host.FleetHost`: the host's breaker state and pause, cached in the
  process and kept fresh by pub/sub, so a healthy call to a host with a breaker costs no
  round trip at all; the breaker's transitions, its failure-rate window and its half-open
  probe leases are scripts (:mod:`._fleet_scripts`, which says why they replace
  pybreaker's ``CircuitRedisStorage`` and ``limits``).

**Fail-open.** Every shared object keeps a local twin (an in-process limiter, pybreaker's
in-memory state). When a Redis call fails, or two in a row answer slower than
:data:`SLOW_REDIS` (a slow Redis is an unhealthy one: it would eat every call's deadline),
calls go on with the local twin, :class:`~.events.SharedStateChanged` is published once for
the outage (logged as one warning), and the ticker thread tries Redis again every
``retry_interval`` seconds, off the calls' path. When it answers in time, sharing resumes
(published and logged too) and every cached view is read again at its next use.

**Configuration errors** are found at construction: a refused password, or an ACL user
without a command, key pattern or channel the scripts need, raises ``ValueError`` naming
``redis_url`` or ``redis_client``. An unreachable Redis is not an error: the manager
starts on local state, with one warning.

No lock is held across a Redis call; Redis time spent by a call counts inside its
``total_timeout`` like any other wait.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import _redis_target
from ._fleet_host import FleetHost
from ._fleet_scripts import CHECK, HostKeys, Script, parse_message
from ._fleet_scripts import run as run_script
from ._fleet_threads import Subscriber, Ticker
from ._limiter import Limiter
from ._shared_limiter import SharedLimiter
from .events import SharedStateChanged

if TYPE_CHECKING:
    from ._clock import Clock
    from ._redis_target import RedisTarget
    from .config import RateLimitConfig

__all__ = ["DEFAULT_REDIS_TIMEOUT", "SLOW_REDIS", "SharedLimiter", "SharedLink"]

logger = logging.getLogger("requests_connection_manager")

#: Connect and read timeout, seconds, of the connections made from ``redis_url``.
DEFAULT_REDIS_TIMEOUT = 0.25
#: Seconds between attempts to reach Redis again during an outage.
DEFAULT_RETRY_INTERVAL = 2.0
#: A Redis call slower than this (seconds) is a strike; two in a row make Redis unhealthy.
SLOW_REDIS = 0.1
_SLOW_STRIKES = 2
#: How long construction waits for the first subscription, in connect timeouts.
_FIRST_SUBSCRIBE_WAIT = 4
# Words of Redis errors that mean "this configuration can never work".
_REFUSALS = (
    "NOPERM",
    "NOAUTH",
    "WRONGPASS",
    "permission",
    "can't publish",
    "can't run",
    "can't access",
    "unknown command",
)


class SlowRedis(Exception):
    """Redis answered, but too slowly to be used on a call's path."""


def _no_subscriber(event: Any) -> None:
    """Where a link's events go until a manager subscribes."""


def _refusal(exc: BaseException) -> bool:
    """Tell whether a Redis error says the configuration is wrong (not a passing outage)."""
    try:
        from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
    except ImportError:  # pragma: no cover - the link exists only with redis-py
        return False
    if isinstance(exc, (AuthenticationError, NoPermissionError)):
        return True
    return isinstance(exc, ResponseError) and any(word in str(exc) for word in _REFUSALS)


class SharedLink:
    """The Redis connection of one manager, with its health, cache and background threads.

    Args:
        target: Where Redis is, and its client.
        prefix: Namespace of every key this manager writes.
        retry_interval: Seconds between attempts to reach Redis again during an outage.
    """

    def __init__(
        self,
        target: RedisTarget,
        prefix: str,
        *,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        self.target = target
        self.prefix = prefix
        #: The events channel of this prefix.
        self.channel = f"{prefix}:rcm:events"
        self.publish: Callable[[Any], None] = _no_subscriber
        #: The subscription is confirmed and not lost since.
        self.live = False
        #: Bumped at every (re)subscription and every recovery: older copies are stale.
        self.epoch = 0
        self._retry_interval = retry_interval
        self._lock = threading.Lock()
        self._down = False
        self._strikes = 0
        self._retry_at = 0.0
        self._outages = 0
        self._closed = False
        self._hosts: weakref.WeakValueDictionary[str, FleetHost] = weakref.WeakValueDictionary()
        # Limiters that may hold unused leased permits: kept alive until they are given
        # back, even when their host is forgotten (closed manager, evicted host).
        self._holding: set[SharedLimiter] = set()
        self._new_ids()
        self._pid = os.getpid()
        self._subscriber = Subscriber(self)
        self._ticker = Ticker(self)

    @classmethod
    def from_keywords(cls, redis_url: Any, redis_client: Any, prefix: Any) -> Optional[SharedLink]:
        """Validate the shared-state keywords and make the link (not started: see :meth:`start`).

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
        if redis_client is not None:
            return cls(_redis_target.from_client(redis_client, DEFAULT_REDIS_TIMEOUT), prefix)
        if redis_url is None:
            return None
        if not isinstance(redis_url, str):
            raise TypeError(f"redis_url must be a str, got {type(redis_url).__name__}")
        return cls(_redis_target.from_url(redis_url, DEFAULT_REDIS_TIMEOUT), prefix)

    # ------------------------------------------------------------------------- start
    def start(self) -> None:
        """Check the configuration against Redis, then start listening and ticking.

        Raises:
            ValueError: Redis refused the password, or the user lacks a command, key
                pattern or channel the scripts need (``redis_url``/``redis_client`` named).
        """
        try:
            client = self.target.client()
            tag = f"{{{self.prefix}:~check}}"
            keys, args = [f"{tag}:h", f"{tag}:z"], [self.channel]
            client.eval(CHECK.source, 2, *keys, *args)  # EVAL, and EVALSHA next
            client.evalsha(CHECK.sha, 2, *keys, *args)
        except Exception as exc:  # noqa: BLE001 - sorted below: refusal or outage
            self._refused_or_down(exc)
        self._start_threads()
        if not self._down and self._subscriber.first_attempt.wait(
            self.target.timeout * _FIRST_SUBSCRIBE_WAIT
        ):
            error = self._subscriber.first_error
            if error is not None and _refusal(error):
                self.close()
                self._raise_refused(error)

    def _refused_or_down(self, exc: BaseException) -> None:
        if _refusal(exc):
            self.target.close()
            self._raise_refused(exc)
        self.failed(exc)

    def _raise_refused(self, exc: BaseException) -> None:
        raise ValueError(
            f"{self.target.keyword}: Redis refused the shared-state setup "
            f"({type(exc).__name__}: {exc}); check the password, and that the user may run "
            f"EVAL, EVALSHA, PUBLISH and SUBSCRIBE on keys '{{{self.prefix}:*' and channel "
            f"'{self.channel}'"
        ) from None

    def _start_threads(self) -> None:
        self._pid = os.getpid()
        self._subscriber.start()
        self._ticker.start()

    # ------------------------------------------------------------------------- health
    def usable(self) -> bool:
        """Tell whether to use Redis now (False during an outage: use local state)."""
        if self._pid != os.getpid():
            self._after_fork()
        return not self._down

    def run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a script in one round trip; None when Redis failed (or is down)."""
        if self._down:
            return None
        started = time.perf_counter()
        try:
            reply = run_script(self.target.client(), script, keys, args, self.target.owned)
        except Exception as exc:  # noqa: BLE001 - any Redis failure: fail open to local
            self.failed(exc)
            return None
        elapsed = time.perf_counter() - started
        if elapsed > SLOW_REDIS:
            with self._lock:
                self._strikes += 1
                strikes = self._strikes
            if strikes >= _SLOW_STRIKES:
                self.failed(SlowRedis(f"{elapsed * 1000:.0f} ms for one command"))
        elif self._strikes:
            self._strikes = 0
        return reply

    def failed(self, exc: Optional[BaseException]) -> None:
        """Record a failed (or slow) Redis call; the first of an outage is published."""
        with self._lock:
            self._retry_at = time.monotonic() + self._retry_interval
            if self._down or self._closed:
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
            self._strikes = 0
            self.epoch += 1  # whatever was cached during the outage is read again
        self.publish(SharedStateChanged(True, None, time.monotonic()))

    def _probe(self) -> None:
        """During an outage, one health check per interval (off the calls' path)."""
        now = time.monotonic()
        if now < self._retry_at:
            return
        self._retry_at = now + self._retry_interval
        started = time.perf_counter()
        try:
            self.target.check_health()
        except Exception as exc:  # noqa: BLE001 - any failure means "still down"
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("shared state: Redis still unusable (%r)", exc)
            return
        if time.perf_counter() - started <= SLOW_REDIS:
            self._resumed()

    def tick(self) -> None:
        """The ticker's work: health checks during an outage; else flushes and leases."""
        if self._down:
            self._probe()
            return
        now = time.monotonic()
        for host in list(self._hosts.values()):
            host.tick(now)
        with self._lock:
            holding = list(self._holding)
        for limiter in holding:
            limiter.tick()
            self._let_go(limiter)

    # ----------------------------------------------------------------------- pub/sub
    def subscribed(self) -> None:
        """The subscriber (re)subscribed: every copy read before now is stale."""
        with self._lock:
            self.epoch += 1
            self.live = True

    def unsubscribed(self) -> None:
        """The subscription is lost: copies are polled until it is back."""
        self.live = False

    def token(self) -> int:
        """The epoch a read made now belongs to (-1 without a subscription: polled)."""
        return self.epoch if self.live else -1

    def on_message(self, data: Any) -> None:
        """A message of the events channel: hand it to the host it is about."""
        parsed = parse_message(data)
        if parsed is None:
            return
        host = self._hosts.get(parsed[0])
        if host is not None:
            host.apply(parsed[1])

    def unique(self) -> str:
        """An id no other process or call uses (permits, leases)."""
        return f"{self._id}.{next(self._ids)}"

    def _new_ids(self) -> None:
        """A prefix of ids no other process uses (a forked child must not reuse its parent's)."""
        self._id = f"{os.getpid()}.{secrets.token_hex(4)}"
        self._ids = itertools.count(1)

    def hold(self, limiter: SharedLimiter) -> None:
        """``limiter`` holds unused leased permits: keep it until they are given back."""
        with self._lock:
            self._holding.add(limiter)

    def _let_go(self, limiter: SharedLimiter) -> None:
        with self._lock:
            if not limiter.holds():
                self._holding.discard(limiter)

    # ---------------------------------------------------------------------- factories
    def host(self, key: str, clock: Clock, on_pause: Callable[[float, float], float]) -> FleetHost:
        """A new cached view of ``key`` for one host state; messages about ``key`` go to it."""
        host = FleetHost(self, key, clock, on_pause)
        self._hosts[key] = host
        return host

    def limiter(self, settings: RateLimitConfig, key: str, local: Limiter) -> SharedLimiter:
        """Return the shared limiter of ``key``, falling back to ``local``."""
        return SharedLimiter(self, settings, HostKeys(self.prefix, key), local)

    # ------------------------------------------------------------------------ the rest
    def status(self) -> dict[str, Any]:
        """The block of ``get_stats()`` that describes shared state."""
        return {
            "enabled": True,
            "backend": "redis",
            "topology": self.target.kind,
            "prefix": self.prefix,
            "healthy": not self._down,
            "subscribed": self.live,
            "outages": self._outages,
        }

    def _after_fork(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.live = False
            self.epoch += 1
            self._subscriber = Subscriber(self)
            self._ticker = Ticker(self)
        if not self._closed:
            self._start_threads()

    def reinit_after_fork(self) -> None:
        """Fresh locks and no cached host in a forked child; threads restart at the next use."""
        self._lock = threading.Lock()
        self.live = False
        self._hosts = weakref.WeakValueDictionary()  # the host table is rebuilt empty too
        self._holding = set()  # the parent's leases are the parent's
        self._new_ids()
        self.target.reinit_after_fork()

    def close(self) -> None:
        """Give back leased permits; stop the threads; close the connection if ours."""
        with self._lock:
            holding, self._holding = list(self._holding), set()
        try:
            for limiter in holding:
                limiter.close()
        finally:  # interrupted (Ctrl-C) while giving back: the threads stop all the same
            with self._lock:
                self._closed = True
            self._subscriber.stop()
            self._ticker.stop()
            self.target.close()
