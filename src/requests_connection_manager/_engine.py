"""The shared state of one manager: configuration, host table, admission, events.

A manager (or a session using :class:`~._session.ConnectionManagerMixin`) owns one
:class:`Engine`; its session and its adapter both read it. Pickling an engine keeps its
*configuration* and rebuilds its state (a fresh host table, fresh locks), so a pickled
session or adapter works when unpickled; after ``os.fork()`` the child gets fresh locks
and an empty host table (:mod:`._forksafe`).
"""

from __future__ import annotations

import inspect
import random
import threading
from typing import Any, Callable, Optional

from . import _forksafe
from ._admission import Admission
from ._auth import AUTH_FIELDS
from ._clock import Clock, SystemClock
from ._hosts import HostRegistry
from ._logwriter import LogWriter
from ._redaction import Secrets
from ._settings import Settings
from ._shared import SharedLink
from ._stats import StatsRecorder
from ._telemetry import Telemetry, check_providers
from ._validate import check_bool, check_cert, check_int, check_verify
from .config import MAX_POOL_SIZE, POLICY_DEFAULTS
from .events import BreakerStateChanged, EventBus, Subscriber
from .plugins import PluginManager

__all__ = ["MANAGER_SIGNATURE", "Engine", "build_engine", "keywords_of"]

#: The signature of ``ConnectionManager.__init__``: the one list of the manager's keywords
#: and their defaults (set by :func:`keywords_of` when the manager class is defined).
MANAGER_SIGNATURE = inspect.Signature()


def keywords_of(init: Callable[..., Any]) -> Callable[..., Any]:
    """Record ``init`` (the manager's constructor) as the list of the manager's keywords.

    The mixin takes exactly these keywords out of the ones its session is given.
    """
    global MANAGER_SIGNATURE
    MANAGER_SIGNATURE = inspect.signature(init)
    return init


def _check_observers(
    clock: Optional[Clock],
    on_event: Optional[Subscriber],
    telemetry: Any,
    tracer_provider: Any,
    meter_provider: Any,
) -> None:
    """Refuse a junk clock, subscriber, telemetry switch or provider at construction."""
    _check_clock(clock)
    check_bool("telemetry", telemetry)
    check_providers(tracer_provider, meter_provider)
    if on_event is not None and not callable(on_event):
        raise TypeError(f"on_event must be callable or None, got {type(on_event).__name__}")


class Engine:
    """Everything the session and the adapter of one manager share.

    Args:
        policy_kwargs: The policy keywords (see :func:`~.config.build_policy`).
        credentials: The global credential keywords.
        endpoint_configs: Pattern to config dict.
        clock: A clock for waits and deadlines; the system clock by default.
        redis_url: Share state through this Redis (``redis://...``).
        redis_client: Share state through this Redis client.
        redis_prefix: Namespace of the shared keys.
        on_event: A subscriber of the event stream.
        telemetry: Publish OpenTelemetry spans and metrics (when ``opentelemetry-api``
            is installed).
        tracer_provider: The tracer provider; None: the global one.
        meter_provider: The meter provider; None: the global one.

    Raises:
        TypeError: A keyword has the wrong type.
        ValueError: A keyword is out of range.
    """

    def __init__(
        self,
        policy_kwargs: dict[str, Any],
        credentials: dict[str, Any],
        endpoint_configs: Optional[dict[str, dict[str, Any]]] = None,
        *,
        clock: Optional[Clock] = None,
        redis_url: Optional[str] = None,
        redis_client: Any = None,
        redis_prefix: str = "rcm",
        on_event: Optional[Subscriber] = None,
        telemetry: bool = True,
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        _check_observers(clock, on_event, telemetry, tracer_provider, meter_provider)
        # Providers are not pickled: an unpickled engine uses the global ones.
        self._rebuild_with = {
            "clock": clock,
            "redis_url": redis_url,
            "redis_prefix": redis_prefix,
            "telemetry": telemetry,
        }
        self.settings = Settings(
            policy_kwargs,
            credentials,
            endpoint_configs,
            wall_clock_only=clock is not None and not isinstance(clock, SystemClock),
            shared=redis_url is not None or redis_client is not None,
        )
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.closed = threading.Event()
        self.bus = EventBus()
        self.rng = random.Random()
        self.shared = SharedLink.from_keywords(redis_url, redis_client, redis_prefix)
        if self.shared is not None:
            self.shared.publish = self.bus.publish
        #: Host keys whose breaker is not closed (the early refusal looks only then).
        self.unsettled: set[str] = set()
        self.hosts = HostRegistry(
            self.clock, on_transition=self._transition, shared=self.shared, rng=self.rng
        )
        self.admission = Admission(self.clock, self.closed, self.bus, self.rng)
        self.plugins = PluginManager()
        self.plugins.secrets = self.secrets
        self.telemetry = Telemetry.build(
            telemetry, tracer_provider, meter_provider, self.hosts, self.closed, self.shared
        )
        self._subscribe_observers(on_event)
        if self.shared is not None:
            # Checks the configuration (a refused password raises here) once the log and
            # the subscribers hear events: an unreachable Redis is one warning.
            self.shared.start()
        _forksafe.register(self)

    def _subscribe_observers(self, on_event: Optional[Subscriber]) -> None:
        """Subscribe the stats, telemetry, the log writer and the user's ``on_event``."""
        self.bus.subscribe(StatsRecorder(self.hosts))
        # Before the log writer: its lines are written while the request's span is current.
        if self.telemetry is not None:
            self.bus.subscribe(self.telemetry)
        self.bus.subscribe(LogWriter())
        if on_event is not None:
            self.bus.subscribe(on_event)

    def secrets(self) -> Secrets:
        """Every credential value the manager knows, for redaction by value."""
        return self.settings.secrets()

    def _transition(self, host: str, old: str, new: str) -> None:
        if new == "closed":
            self.unsettled.discard(host)
        else:
            self.unsettled.add(host)
        self.bus.publish(BreakerStateChanged(host, old, new, self.clock.monotonic()))

    def close(self) -> None:
        """Wake waiting calls, refuse new ones, forget hosts, close the shared link."""
        self.closed.set()
        self.hosts.clear()
        if self.shared is not None:
            self.shared.close()

    def reinit_after_fork(self) -> None:
        """In a forked child: fresh locks everywhere, an empty host table."""
        self.bus.reinit_after_fork()
        self.hosts.reinit_after_fork()
        self.settings.reinit_after_fork()
        self.plugins.reinit_after_fork()
        if self.shared is not None:
            self.shared.reinit_after_fork()
        if self.telemetry is not None:
            self.telemetry.reinit_after_fork()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the current configuration and hooks; the state is rebuilt fresh."""
        extra = self._rebuild_with
        if self.shared is not None and extra["redis_url"] is None:
            raise TypeError("a manager sharing state through redis_client= cannot be pickled")
        settings = self.settings
        configuration = (
            settings.kwargs,
            settings.credential_kwargs(),
            settings.endpoint_configs() or None,
            extra,
            {kind.value: hooks for kind, hooks in self.plugins.hooks.items()},
        )
        return (_rebuild, configuration)


def _rebuild(
    policy_kwargs: dict[str, Any],
    credentials: dict[str, Any],
    endpoints: Any,
    extra: dict[str, Any],
    hooks: dict[str, list[Any]],
) -> Engine:
    engine = Engine(policy_kwargs, credentials, endpoints, **extra)
    for kind, functions in hooks.items():
        for hook in functions:
            engine.plugins.register_hook(kind, hook)
    return engine


def build_engine(
    given: dict[str, Any],
) -> tuple[Engine, dict[str, Any], tuple[Any, Any]]:
    """Validate a manager's keywords (as ``ConnectionManager`` takes them) and build its engine.

    Args:
        given: Every keyword of ``ConnectionManager.__init__`` by name.

    Returns:
        ``(engine, pool keywords for the adapter, (verify, cert) for the session)``.

    Raises:
        TypeError: A keyword has the wrong type.
        ValueError: A keyword is out of range.
    """
    pools = {
        "pool_connections": check_int(
            "pool_connections", given["pool_connections"], 1, MAX_POOL_SIZE
        ),
        "pool_maxsize": check_int("pool_maxsize", given["pool_maxsize"], 1, MAX_POOL_SIZE),
        "pool_block": check_bool("pool_block", given["pool_block"]),
    }
    tls = (check_verify("verify", given["verify"]), check_cert("cert", given["cert"]))
    engine = Engine(
        {name: given[name] for name in POLICY_DEFAULTS if name not in ("verify", "cert")},
        {name: given[name] for name in AUTH_FIELDS},
        given["endpoint_configs"],
        clock=given["clock"],
        redis_url=given["redis_url"],
        redis_client=given["redis_client"],
        redis_prefix=given["redis_prefix"],
        on_event=given["on_event"],
        telemetry=given["telemetry"],
        tracer_provider=given["tracer_provider"],
        meter_provider=given["meter_provider"],
    )
    return engine, pools, tls


def _check_clock(clock: Any) -> None:
    if clock is not None and (
        isinstance(clock, type)
        or not all(callable(getattr(clock, name, None)) for name in ("monotonic", "time", "sleep"))
    ):
        raise TypeError(
            "clock must have monotonic(), time() and sleep(seconds, wake=None), got "
            f"{type(clock).__name__}"
        )
