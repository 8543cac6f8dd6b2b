"""The per-host circuit breaker: pybreaker's state and storage, driven without its lock on I/O.

``pybreaker.CircuitBreaker.call()`` holds the breaker's lock while the guarded function
runs, so every thread using one breaker waits in line (pybreaker issue #3). This module
never hands a request to pybreaker. It keeps pybreaker's ``CircuitBreaker`` and storage as
the state (closed / open / half-open, failure counter, opening time, listeners) and drives
it with pybreaker's own transitions (``open()``, ``half_open()``, ``close()``) in three
short critical sections around the request: :meth:`HostBreaker.admit` before it,
:meth:`HostBreaker.record_success` or :meth:`HostBreaker.record_failure` after it.
No lock is held while the request is on the wire.

What this adds to pybreaker:

- at most ``half_open_max_calls`` probes in flight while half-open (pybreaker's
  ``calling()`` admits every concurrent caller);
- the call whose failure opens the breaker gets its real error, not ``CircuitBreakerError``;
- a second way to open: the share of failed attempts over a sliding time window
  (:class:`~._failure_rate.FailureRateWindow`), with a minimum number of attempts, where
  an attempt slower than ``slow_call_duration`` counts as failed;
- an injectable clock for the opening time, so the state machine can be tested instantly;
- with shared state (``fleet``, a :class:`~._fleet_host.FleetHost`), the fleet's view: the
  transitions are decided in Redis by one script each (a failure that reaches the
  threshold or the fleet's failure ratio, a probe lease, a probe's verdict) and the
  pybreaker state here *follows* them: its storage stays in memory, a copy of the shared
  hash kept fresh by pub/sub, so pybreaker's listeners hear every change any process makes
  (as pybreaker itself does when it notices a storage changed elsewhere). While Redis is
  down, the same in-memory state is the local twin and the local rules apply.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Optional

import pybreaker

from ._boundary import made_clean
from ._clock import Clock
from ._failure_rate import FailureRateWindow
from ._fleet_host import PROBE_CLOSED, PROBE_GRANTED
from .config import BreakerConfig
from .exceptions import CircuitBreakerOpen

if TYPE_CHECKING:
    from ._fleet_host import FleetHost

__all__ = ["HostBreaker"]

# How long a caller turned away because every half-open probe slot is taken is told to wait.
_PROBE_BUSY_RETRY_AFTER = 1.0
# The shortest wait a refusal announces.
_MIN_RETRY_AFTER = 0.001


class _TransitionListener(pybreaker.CircuitBreakerListener):
    def __init__(self, on_change: Callable[[str, str], None]) -> None:
        self._on_change = on_change

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: Optional[pybreaker.CircuitBreakerState],
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._on_change(old_state.name if old_state is not None else "", new_state.name)


class HostBreaker:
    """One host's breaker.

    Args:
        host: The host key, used as the breaker's name and in errors.
        settings: Threshold, recovery timeout and half-open probe limit.
        clock: The clock; its wall time stamps openings.
        on_transition: Called with ``(old_state, new_state)`` on every state change.
        storage: A pybreaker storage; a fresh ``CircuitMemoryStorage`` by default.
        fleet: The host's shared state (Redis), or None.
    """

    def __init__(
        self,
        host: str,
        settings: BreakerConfig,
        clock: Clock,
        on_transition: Optional[Callable[[str, str], None]] = None,
        storage: Optional[pybreaker.CircuitBreakerStorage] = None,
        fleet: Optional[FleetHost] = None,
    ) -> None:
        self.host = host
        self._clock = clock
        self._settings = settings
        self._storage = storage or pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        listeners = [_TransitionListener(on_transition)] if on_transition else []
        self._cb = pybreaker.CircuitBreaker(
            fail_max=settings.failure_threshold,
            reset_timeout=settings.recovery_timeout,
            state_storage=self._storage,
            listeners=listeners,
            name=host,
        )
        self._lock = threading.Lock()
        self._probes = 0
        self._window: Optional[FailureRateWindow] = None  # built at the first verdict
        self._fleet = fleet
        if fleet is not None:
            fleet.attach(settings, self.follow)

    @property
    def state(self) -> str:
        """The state name: ``"closed"``, ``"open"`` or ``"half-open"``."""
        return str(self._storage.state)

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted while closed (the fleet's, with shared state)."""
        fleet = self._fleet
        if fleet is not None and fleet.usable():
            return fleet.snapshot()[1]
        return int(self._storage.counter)

    @property
    def probes_in_flight(self) -> int:
        """Half-open probes admitted and not yet finished."""
        return self._probes

    def _open_remaining(self) -> float:
        opened_at = self._storage.opened_at
        if opened_at is None:
            return 0.0
        elapsed = self._clock.time() - opened_at.timestamp()
        return max(0.0, self._settings.recovery_timeout - elapsed)

    def _trip(self) -> None:
        if self._window is not None:
            self._window.reset()
        self._cb.open()
        # Stamp the opening with our clock (pybreaker stamps the wall clock itself).
        self._storage.opened_at = datetime.fromtimestamp(self._clock.time(), timezone.utc)

    def _refuse(self, retry_after: float) -> CircuitBreakerOpen:
        return made_clean(
            CircuitBreakerOpen(
                f"circuit breaker for {self.host} is open; retry after {retry_after:.3f} s",
                retry_after=retry_after,
                host=self.host,
            )
        )

    def _busy(self) -> CircuitBreakerOpen:
        return self._refuse(min(_PROBE_BUSY_RETRY_AFTER, self._settings.recovery_timeout))

    def follow(self) -> None:
        """Take the fleet's view into pybreaker's state; its listeners hear any change."""
        fleet = self._fleet
        assert fleet is not None
        with self._lock:
            state, _, opened_at = fleet.snapshot()
            storage = self._storage
            if opened_at is not None:
                storage.opened_at = opened_at
            if storage.state != state:
                storage.state = state
                if self._window is not None and state != pybreaker.STATE_HALF_OPEN:
                    self._window.reset()
                self._cb.state  # noqa: B018 - pybreaker notices the change and notifies

    def check(self) -> None:
        """Refuse early when the breaker is open and its recovery timeout has not elapsed.

        A read-only test the pipeline makes before it waits for a rate-limit permit (with
        shared state, it reads Redis only when the cached view is stale).

        Raises:
            CircuitBreakerOpen: The breaker is open.
        """
        if self._fleet is not None:
            self._fleet.current()
        if self._storage.state == pybreaker.STATE_OPEN:
            remaining = self._open_remaining()
            if remaining > 0:
                raise self._refuse(remaining)

    def admit(self) -> bool:
        """Admit one attempt, or refuse it.

        Returns:
            True when the attempt is a half-open probe, False for a normal attempt. Either
            way the caller must report the outcome with :meth:`record_success`,
            :meth:`record_failure` or :meth:`release`.

        Raises:
            CircuitBreakerOpen: The breaker is open, or every half-open probe slot is taken.
        """
        fleet = self._fleet
        if fleet is not None and fleet.current():
            admitted = self._admit_shared(fleet)
            if admitted is not None:
                return admitted
        with self._lock:
            state = self._storage.state
            if state == pybreaker.STATE_OPEN:
                remaining = self._open_remaining()
                if remaining > 0:
                    raise self._refuse(remaining)
                # Probes still in flight from an earlier half-open period keep counting
                # until they end, so the bound holds across periods.
                self._cb.half_open()
                state = pybreaker.STATE_HALF_OPEN
            if state == pybreaker.STATE_HALF_OPEN:
                if self._probes >= self._settings.half_open_max_calls:
                    raise self._busy()
                self._probes += 1
                return True
            return False

    def _admit_shared(self, fleet: FleetHost) -> Optional[bool]:
        """Admission on the fleet's view; None when Redis failed meanwhile (decide locally)."""
        state = self._storage.state
        if state == pybreaker.STATE_CLOSED:
            return False
        if state == pybreaker.STATE_OPEN:
            remaining = self._open_remaining()
            if remaining > 0:
                raise self._refuse(remaining)
        elif fleet.held_off():
            raise self._busy()  # every lease was taken a moment ago: no round trip
        with self._lock:
            if self._probes >= self._settings.half_open_max_calls:
                raise self._busy()
            self._probes += 1  # held while Redis is asked, so the local bound holds too
        answer = fleet.acquire_probe()
        if answer is not None and answer[0] == PROBE_GRANTED:
            return True
        with self._lock:
            self._probes -= 1
        if answer is None:
            return None
        code, wait = answer
        if code == PROBE_CLOSED:
            return False
        if self._storage.state == pybreaker.STATE_OPEN:
            raise self._refuse(max(wait, self._open_remaining(), _MIN_RETRY_AFTER))
        refusal = self._busy()
        fleet.hold_off(min(wait, refusal.retry_after or 0.0))
        raise refusal

    def _ratio_trips(self, now: float, failed: bool, slow: bool) -> bool:
        settings = self._settings
        if settings.failure_rate is None:
            return False
        window = self._window
        if window is None:
            window = self._window = FailureRateWindow(settings.window)
        window.record(now, failed, slow)
        if not (failed or slow):
            return False  # a success only lowers the ratio
        return window.should_trip(now, settings.failure_rate, settings.minimum_calls)

    def _end_probe(self, probe: bool, outcome: int) -> Optional[bool]:
        """Count a probe out; with shared state give its lease back with its verdict.

        Returns:
            What the fleet decided (see :meth:`FleetHost.probe_done`), or None when there
            is no fleet, no lease, or Redis failed: the local rules decide.
        """
        if not probe:
            return None
        with self._lock:
            self._probes -= 1
        fleet = self._fleet
        return None if fleet is None else fleet.probe_done(outcome)

    def _fleet_verdict(self, failed: bool, slow: bool) -> Optional[bool]:
        """A normal attempt's verdict on the fleet's view; None to decide locally."""
        fleet = self._fleet
        if fleet is None or not fleet.usable():
            return None
        if self._storage.state != pybreaker.STATE_CLOSED:
            return False  # a late result of an attempt admitted before it opened
        return fleet.outcome(True, slow) if failed else fleet.success(slow)

    def record_success(self, probe: bool, now: float = 0.0, slow: bool = False) -> bool:
        """Report a successful attempt: a probe's success closes the breaker.

        Args:
            probe: What :meth:`admit` returned for this attempt.
            now: Monotonic time the attempt ended (for the failure-rate window).
            slow: The attempt took longer than ``slow_call_duration``.

        Returns:
            True when this attempt opened the breaker (a slow attempt tipping the ratio).
        """
        shared = self._end_probe(True, 1) if probe else self._fleet_verdict(False, slow)
        if shared is not None:
            return shared and not probe
        with self._lock:
            state = self._storage.state
            if state == pybreaker.STATE_HALF_OPEN and probe:
                if self._window is not None:
                    self._window.reset()
                self._cb.close()
            elif state == pybreaker.STATE_CLOSED:
                if self._storage.counter:
                    self._storage.reset_counter()
                if self._ratio_trips(now, False, slow):
                    self._trip()
                    return True
            return False

    def record_failure(self, probe: bool, now: float = 0.0, slow: bool = False) -> bool:
        """Report a failed attempt: enough of them, or a failed probe, open the breaker.

        The arguments are those of :meth:`record_success`.

        Returns:
            True when this failure opened the breaker.
        """
        shared = self._end_probe(True, 0) if probe else self._fleet_verdict(True, slow)
        if shared is not None:
            return shared
        with self._lock:
            state = self._storage.state
            if state == pybreaker.STATE_HALF_OPEN:
                if probe:
                    self._trip()
                    return True
                return False
            if state == pybreaker.STATE_OPEN:
                return False  # a late result of an attempt admitted before the breaker opened
            self._storage.increment_counter()
            ratio = self._ratio_trips(now, True, slow)
            if ratio or self._storage.counter >= self._settings.failure_threshold:
                self._trip()
                return True
            return False

    def release(self, probe: bool) -> None:
        """Give back an admission whose attempt ended with no verdict on the host.

        Args:
            probe: What :meth:`admit` returned for this attempt.
        """
        self._end_probe(probe, -1)

    def is_idle(self, now: Optional[float] = None) -> bool:
        """Tell whether forgetting this breaker loses nothing (closed, no failures counted)."""
        window = self._window
        if window is not None and now is not None and window.snapshot(now).failed_or_slow:
            return False
        return (
            self._storage.state == pybreaker.STATE_CLOSED
            and not self._storage.counter
            and not self._probes
        )

    def can_forget(self) -> bool:
        """Tell whether forgetting this breaker cannot let traffic through early.

        True when closed (a partial failure count may be lost) or open past its recovery
        timeout, with no probe in flight; never while it still refuses calls.
        """
        if self._probes:
            return False
        return self._storage.state == pybreaker.STATE_CLOSED or self._open_remaining() == 0.0
