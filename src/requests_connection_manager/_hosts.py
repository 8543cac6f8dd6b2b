"""Per-host state: limiter, breaker, pause, quota and counters, found in O(1) and bounded.

A :class:`HostState` is created once per host key, race-free, and kept in a
least-recently-used table. When the table is over its bound, hosts are dropped from the
cold end, in this order of preference:

1. hosts whose loss changes nothing (clean breaker, no window, no pause);
2. hosts whose closed breaker has a partial failure count;
3. hosts paused (a ``Retry-After``, an advertised quota): losing one costs at most one
   request that the server will answer with a new pause;
4. hosts with a rate-limit window in use: losing one lets that host's limiter start a new
   window early. It comes last, and only so that the table stays bounded whatever
   thousands of hosts a caller (or a hostile redirect chain) may name.

A host with a request in flight, or whose breaker still refuses calls (open, within its
recovery timeout), is never dropped. Pauses are capped at :data:`MAX_PAUSE`, so a hostile
``Retry-After`` cannot pin a host for years.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._breaker import HostBreaker
from ._budget import RetryBudget
from ._clock import Clock
from ._limiter import Limiter, LimiterFactory
from ._quota import QuotaState
from ._slowdown import HostSlowdown
from ._throttle import AdaptiveThrottle

if TYPE_CHECKING:
    from ._fleet_host import FleetHost
    from ._shared import SharedLink
    from .config import Policy

__all__ = ["DEFAULT_MAX_HOSTS", "MAX_PAUSE", "HostRegistry", "HostState", "HostStats"]

#: Hosts kept before idle ones are dropped.
DEFAULT_MAX_HOSTS = 1024
#: The longest a host is paused, seconds, whatever a server asks for (one hour).
MAX_PAUSE = 3600.0
#: The longest hint-less slow-down pause, seconds (further capped by ``retry_after_max``).
MAX_SLOWDOWN = 30.0

# How many entries from the cold end one insertion looks at for something to drop.
_EVICTION_SCAN = 8

COUNTERS = (
    "requests",
    "attempts",
    "retries",
    "failures",
    "rejected_open",
    "throttled",
    "breaker_opened",
    "retries_denied",
    "rejected_local",
    "paused",
)


class HostStats:
    """Exact counters for one host; every update takes one short lock."""

    __slots__ = ("_lock", "_values")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = dict.fromkeys(COUNTERS, 0)
        self._values["throttle_wait_seconds"] = 0.0

    def add(self, name: str, amount: float = 1, other: Optional[str] = None) -> None:
        """Add ``amount`` to the counter ``name`` (and 1 to ``other``, in the same lock)."""
        with self._lock:
            self._values[name] += amount
            if other is not None:
                self._values[other] += 1

    def snapshot(self) -> dict[str, Any]:
        """Return a consistent copy of the counters."""
        with self._lock:
            values = dict(self._values)
        out: dict[str, Any] = {name: int(values[name]) for name in COUNTERS}
        out["throttle_wait_seconds"] = round(values["throttle_wait_seconds"], 6)
        return out

    def reinit_after_fork(self) -> None:
        """Give the counters a fresh lock in a forked child."""
        self._lock = threading.Lock()


class HostState:
    """Everything kept per host key.

    Attributes:
        key: ``scheme://host:port`` (plus `` [pattern]`` for an endpoint with its own state).
        policy: The policy the parts were built from.
        limiter: The host's client rate limiter, or None.
        breaker: The host's breaker, or None.
        budget: The host's retry budget, or None.
        quota: What is left of the quota the server advertised (None until one is).
        slowdown: The shared pause for 429s that give no hint.
        throttle: Adaptive client-side throttling, or None.
        fleet: The host's shared state (Redis: breaker view and pause), or None.
        stats: The host's counters.
        in_flight: Attempts on the wire now.
    """

    __slots__ = (
        "_lock",
        "_paused_until",
        "breaker",
        "budget",
        "fleet",
        "in_flight",
        "key",
        "limiter",
        "policy",
        "quota",
        "slowdown",
        "stats",
        "throttle",
        "users",
    )

    def __init__(self, key: str) -> None:
        self.key = key
        self.policy: Optional[Policy] = None
        self.limiter: Optional[Limiter] = None
        self.breaker: Optional[HostBreaker] = None
        self.budget: Optional[RetryBudget] = None
        self.quota: Optional[QuotaState] = None
        self.slowdown: Optional[HostSlowdown] = None
        self.throttle: Optional[AdaptiveThrottle] = None
        self.fleet: Optional[FleetHost] = None
        self.stats = HostStats()
        self.in_flight = 0
        self.users = 0
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def quota_state(self) -> QuotaState:
        """The host's quota count, built when a server first advertises one."""
        quota = self.quota
        if quota is None:
            with self._lock:
                if self.quota is None:
                    self.quota = QuotaState()
                quota = self.quota
        return quota

    def slowdown_for(self, rng: Any) -> Optional[HostSlowdown]:
        """The host's slow-down for bare 429s, built on first use (capped by the policy).

        None when ``retry_after_max`` is 0: the caller never waits for the server.
        """
        slowdown = self.slowdown
        if slowdown is None:
            limit = MAX_SLOWDOWN if self.policy is None else self.policy.retries.retry_after_max
            maximum = min(MAX_SLOWDOWN, limit)
            if maximum <= 0:
                return None
            slowdown = HostSlowdown(maximum=maximum, initial=min(0.5, maximum), rng=rng)
            with self._lock:
                if self.slowdown is None:
                    self.slowdown = slowdown
                slowdown = self.slowdown
        return slowdown

    def pause_until(self, until: float, now: float) -> float:
        """Pause the host for every caller until ``until`` (extend only; capped).

        Returns:
            The seconds the host is now paused for, from ``now``.
        """
        until = min(until, now + MAX_PAUSE)
        with self._lock:
            if until > self._paused_until:
                self._paused_until = until
            return max(0.0, self._paused_until - now)

    def paused_for(self, now: float) -> float:
        """Return the seconds the host remains paused at monotonic time ``now``."""
        return max(0.0, self._paused_until - now)

    def snapshot(self, now: float) -> dict[str, Any]:
        """Return this host's block of ``get_stats()``."""
        out = self.stats.snapshot()
        out["breaker_state"] = self.breaker.state if self.breaker is not None else "disabled"
        out["paused_for"] = round(self.paused_for(now), 3)
        out["quota_remaining"] = None if self.quota is None else self.quota.known(now)
        if self.throttle is not None:
            out["throttle_probability"] = round(self.throttle.probability(now), 4)
        return out

    def evictable(self, now: float, tier: int) -> bool:
        """Tell whether this host may be dropped from the table (see the module docstring).

        Args:
            now: Monotonic time.
            tier: 0 when nothing may be lost, 1 when a closed breaker's partial count may
                go, 2 when a pause or a quota count may go too, 3 when a rate-limit window
                may go too.
        """
        if self.users or self.in_flight:
            return False
        breaker = self.breaker
        if breaker is not None and not (
            breaker.is_idle(now) if tier == 0 else breaker.can_forget()
        ):
            return False
        quota = self.quota
        if tier < 2 and (
            self.paused_for(now) > 0.0 or (quota is not None and not quota.quiet(now))
        ):
            return False
        return tier >= 3 or self.limiter is None or self.limiter.quiet()

    def reinit_after_fork(self) -> None:
        """Fresh locks in a forked child (parts with locks are rebuilt by the registry)."""
        self._lock = threading.Lock()
        self.stats.reinit_after_fork()
        if self.quota is not None:
            self.quota.reinit_after_fork()


class HostRegistry:
    """The table of host states.

    Args:
        clock: The manager's clock.
        on_transition: Called as ``(host_key, old_state, new_state)`` on breaker changes.
        max_hosts: How many hosts to keep before idle ones are dropped.
        shared: Redis-backed state shared with other processes, or None.
        rng: The random source of the hosts' jitter.
    """

    def __init__(
        self,
        clock: Clock,
        on_transition: Optional[Callable[[str, str, str], None]] = None,
        max_hosts: int = DEFAULT_MAX_HOSTS,
        shared: Optional[SharedLink] = None,
        rng: Optional[random.Random] = None,
    ) -> None:
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._shared = shared
        self._limiters = LimiterFactory(clock.monotonic)
        self._on_transition = on_transition
        self._max_hosts = max_hosts
        self._hosts: OrderedDict[str, HostState] = OrderedDict()
        self._lock = threading.Lock()

    def _build(self, state: HostState, policy: Policy) -> None:
        """(Re)build the parts of ``state`` whose settings changed; under the lock."""
        if self._shared is not None and state.fleet is None:
            state.fleet = self._shared.host(state.key, self._clock, state.pause_until)
        old = state.policy
        if old is None or old.rate_limit != policy.rate_limit or state.limiter is None:
            limit = policy.rate_limit
            state.limiter = None if limit is None else self._limiter(limit, state.key)
        if old is None or old.breaker != policy.breaker or state.breaker is None:
            breaker = policy.breaker
            state.breaker = None if breaker is None else self._breaker(state, policy)
        if old is None or old.budget != policy.budget or state.budget is None:
            budget = policy.budget
            state.budget = None if budget is None else RetryBudget(budget.ratio, budget.burst)
        signals = policy.signals
        if old is None or old.signals != signals or old.retries != policy.retries:
            state.slowdown = None  # built on the first bare 429, with the new cap
            state.throttle = (
                AdaptiveThrottle(
                    k=signals.adaptive_throttling_k,
                    rng=self._rng,
                    max_probability=signals.adaptive_throttling_max_probability,
                )
                if signals.adaptive_throttling
                else None
            )
        state.policy = policy

    def _limiter(self, settings: Any, key: str) -> Limiter:
        local = self._limiters.build(settings, key)
        if self._shared is None:
            return local
        return self._shared.limiter(settings, key, local)

    def _breaker(self, state: HostState, policy: Policy) -> HostBreaker:
        settings = policy.breaker
        assert settings is not None
        return HostBreaker(
            state.key,
            settings,
            self._clock,
            on_transition=self._transition_callback(state),
            fleet=state.fleet,
        )

    def _transition_callback(self, state: HostState) -> Callable[[str, str], None]:
        def changed(old: str, new: str) -> None:
            if self._on_transition is not None:
                self._on_transition(state.key, old, new)

        return changed

    def acquire(self, key: str, policy: Policy) -> HostState:
        """Return the state of ``key``, creating it once; it is not dropped until released.

        Args:
            key: The host key.
            policy: The policy to build the parts from (rebuilt when it changed).

        Returns:
            The host state. Call :meth:`release` when the request is done.
        """
        with self._lock:
            state = self._hosts.get(key)
            if state is None:
                state = HostState(key)
                self._build(state, policy)
                state.users += 1  # before eviction: the new host must not be the one dropped
                self._hosts[key] = state
                if len(self._hosts) > self._max_hosts:
                    self._evict()
                return state
            self._hosts.move_to_end(key)
            if state.policy is not policy:
                self._build(state, policy)  # settings changed: new limiter / breaker
            state.users += 1
        return state

    def peek(self, key: str) -> Optional[HostState]:
        """Return the state of ``key`` if it is tracked, without creating or warming it."""
        return self._hosts.get(key)

    def release(self, state: HostState) -> None:
        """Mark a request on ``state`` as finished."""
        with self._lock:
            state.users -= 1

    def _evict(self) -> None:
        """Drop hosts from the cold end until the table is within bounds; O(1) per call.

        Looks at the few least recently used hosts only, tier by tier (see the module
        docstring). Hosts that cannot go yet are moved to the hot end, so the next look
        goes further.
        """
        now = self._clock.monotonic()
        cold = list(islice(self._hosts.items(), _EVICTION_SCAN))
        for tier in (0, 1, 2, 3):
            for key, state in cold:
                if key in self._hosts and state.evictable(now, tier):
                    del self._hosts[key]
                    if len(self._hosts) <= self._max_hosts:
                        return
        for key, _ in cold:
            if key in self._hosts:
                self._hosts.move_to_end(key)

    def states(self) -> list[HostState]:
        """Return the tracked host states, least recently used first."""
        with self._lock:
            return list(self._hosts.values())

    def clear(self) -> None:
        """Forget every host."""
        with self._lock:
            self._hosts.clear()

    def reinit_after_fork(self) -> None:
        """Start the forked child with an empty table, fresh locks and fresh limiters.

        Locks held by other threads of the parent at the fork stay held forever in the
        child, so nothing that holds one is kept: the child learns its hosts anew.
        """
        self._lock = threading.Lock()
        self._hosts = OrderedDict()
        self._limiters = LimiterFactory(self._clock.monotonic)
