"""Per-host state: limiter, breaker, pause and counters, found in O(1) and bounded in number.

A :class:`HostState` is created once per host key, race-free, and kept in a
least-recently-used table. When the table is over its bound, idle hosts are dropped from
the cold end (clean ones first); a host with a request in flight, a pause pending, or a
breaker that still refuses calls (open, within its recovery timeout) is never dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._breaker import HostBreaker
from ._budget import RetryBudget
from ._clock import Clock
from ._limiter import Limiter, LimiterFactory
from .config import BreakerSettings, BudgetSettings, Policy, RateLimitSettings

if TYPE_CHECKING:
    from ._shared import SharedLink

__all__ = ["HostRegistry", "HostState", "HostStats"]

#: Hosts kept before idle ones are dropped.
DEFAULT_MAX_HOSTS = 1024

# How many entries from the cold end one insertion looks at for something to drop.
_EVICTION_SCAN = 8

_COUNTERS = (
    "requests",
    "attempts",
    "retries",
    "failures",
    "rejected_open",
    "throttled",
    "breaker_opened",
    "retries_denied",
)


class HostStats:
    """Exact counters for one host; every update takes a short lock."""

    __slots__ = ("_lock", "_values")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = dict.fromkeys(_COUNTERS, 0)
        self._values["throttle_wait_seconds"] = 0.0

    def add(self, name: str, amount: float = 1) -> None:
        """Add ``amount`` to the counter ``name``."""
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> dict[str, Any]:
        """Return a consistent copy of the counters."""
        with self._lock:
            values = dict(self._values)
        out: dict[str, Any] = {name: int(values[name]) for name in _COUNTERS}
        out["throttle_wait_seconds"] = round(values["throttle_wait_seconds"], 6)
        return out


class HostState:
    """Everything kept per host key.

    Attributes:
        key: ``scheme://host:port``.
        limiter: The host's rate limiter, or None.
        breaker: The host's breaker, or None.
        stats: The host's counters.
    """

    __slots__ = (
        "_lock",
        "_paused_until",
        "breaker",
        "breaker_settings",
        "budget",
        "budget_settings",
        "in_flight",
        "key",
        "limit_settings",
        "limiter",
        "stats",
    )

    def __init__(
        self, key: str, limiter: Optional[Limiter], breaker: Optional[HostBreaker]
    ) -> None:
        self.key = key
        self.limiter = limiter
        self.breaker = breaker
        self.limit_settings: Optional[RateLimitSettings] = None
        self.breaker_settings: Optional[BreakerSettings] = None
        self.budget: Optional[RetryBudget] = None
        self.budget_settings: Optional[BudgetSettings] = None
        self.stats = HostStats()
        self.in_flight = 0
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def pause_until(self, until: float) -> None:
        """Pause the host for every caller until the monotonic time ``until`` (extend only)."""
        with self._lock:
            if until > self._paused_until:
                self._paused_until = until

    def paused_for(self, now: float) -> float:
        """Return the seconds the host remains paused at monotonic time ``now``."""
        return max(0.0, self._paused_until - now)

    def snapshot(self, now: float) -> dict[str, Any]:
        """Return this host's block of ``get_stats()``."""
        out = self.stats.snapshot()
        out["breaker_state"] = self.breaker.state if self.breaker is not None else "disabled"
        out["paused_for"] = round(self.paused_for(now), 3)
        return out

    def evictable(self, now: float, *, lossless: bool) -> bool:
        """Tell whether this host may be dropped from the table.

        Never while a request is in flight, a pause is pending, its rate-limit window
        still holds permits, or its breaker still refuses calls. With ``lossless``, only
        when nothing at all would be lost (a clean closed breaker); without, a closed
        breaker's partial failure count may go.
        """
        if self.in_flight or self.paused_for(now) > 0.0:
            return False
        if self.limiter is not None and not self.limiter.quiet():
            return False
        breaker = self.breaker
        if breaker is None:
            return True
        return breaker.is_idle() if lossless else breaker.can_forget()


class HostRegistry:
    """The table of host states.

    Args:
        clock: The manager's clock.
        on_transition: Called as ``(host_key, old_state, new_state)`` on breaker changes.
        max_hosts: How many hosts to keep before idle ones are dropped.
        shared: Redis-backed state shared with other processes, or None.
    """

    def __init__(
        self,
        clock: Clock,
        on_transition: Optional[Callable[[str, str, str], None]] = None,
        max_hosts: int = DEFAULT_MAX_HOSTS,
        shared: Optional[SharedLink] = None,
    ) -> None:
        self._clock = clock
        self._shared = shared
        self._limiters = LimiterFactory(clock.monotonic)
        self._on_transition = on_transition
        self._max_hosts = max_hosts
        self._hosts: OrderedDict[str, HostState] = OrderedDict()
        self._lock = threading.Lock()

    def _create(self, key: str, policy: Policy) -> HostState:
        state = HostState(key, None, None)
        self._build(state, policy)
        return state

    def _build(self, state: HostState, policy: Policy) -> None:
        """(Re)build the limiter and breaker of ``state`` from ``policy``; under the lock."""
        if state.limit_settings != policy.rate_limit or state.limiter is None:
            state.limiter = (
                self._limiter(policy.rate_limit, state.key)
                if policy.rate_limit is not None
                else None
            )
        state.limit_settings = (
            policy.rate_limit
        )  # equal values: keep the limiter, take the new object
        if state.breaker_settings != policy.breaker or state.breaker is None:
            state.breaker = (
                self._breaker(state, policy.breaker) if policy.breaker is not None else None
            )
        state.breaker_settings = policy.breaker
        if state.budget_settings != policy.budget or state.budget is None:
            budget = policy.budget
            state.budget = None if budget is None else RetryBudget(budget.ratio, budget.burst)
        state.budget_settings = policy.budget

    def _limiter(self, settings: RateLimitSettings, key: str) -> Limiter:
        local = self._limiters.build(settings, key)
        if self._shared is None:
            return local
        return self._shared.limiter(settings, key, local)

    def _breaker(self, state: HostState, settings: BreakerSettings) -> HostBreaker:
        shared = self._shared
        return HostBreaker(
            state.key,
            settings,
            self._clock,
            on_transition=self._transition_callback(state),
            storage=None if shared is None else shared.breaker_storage(state.key),
            probe_slots=None
            if shared is None
            else shared.probe_slots(state.key, settings.recovery_timeout),
        )

    def _transition_callback(self, state: HostState) -> Callable[[str, str], None]:
        def changed(old: str, new: str) -> None:
            if new == "open":
                state.stats.add("breaker_opened")
            if self._on_transition is not None:
                self._on_transition(state.key, old, new)

        return changed

    def acquire(self, key: str, policy: Policy) -> HostState:
        """Return the state of ``key``, creating it once; mark a request in flight.

        Args:
            key: The host key.
            policy: The policy to build the limiter and breaker from, on creation.

        Returns:
            The host state. Call :meth:`release` when the request is done.
        """
        with self._lock:
            state = self._hosts.get(key)
            if state is None:
                state = self._create(key, policy)
                state.in_flight += 1  # before eviction: the new host must not be the one dropped
                self._hosts[key] = state
                if len(self._hosts) > self._max_hosts:
                    self._evict()
                return state
            self._hosts.move_to_end(key)
            if (
                state.limit_settings is not policy.rate_limit
                or state.breaker_settings is not policy.breaker
                or state.budget_settings is not policy.budget
            ):
                self._build(state, policy)  # settings changed: new limiter / breaker
            state.in_flight += 1
        return state

    def peek(self, key: str) -> Optional[HostState]:
        """Return the state of ``key`` if it is tracked, without creating or warming it."""
        return self._hosts.get(key)

    def release(self, state: HostState) -> None:
        """Mark a request on ``state`` as finished."""
        with self._lock:
            state.in_flight -= 1

    def _evict(self) -> None:
        """Drop hosts from the cold end until the table is within bounds; O(1) per call.

        Looks at the few least recently used hosts only: first for one whose loss changes
        nothing, then for one whose breaker is closed (or open past its recovery time).
        Hosts that cannot go yet are moved to the hot end, so the next look goes further.
        """
        now = self._clock.monotonic()
        cold = list(islice(self._hosts.items(), _EVICTION_SCAN))
        for lossless in (True, False):
            for key, state in cold:
                if key in self._hosts and state.evictable(now, lossless=lossless):
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
