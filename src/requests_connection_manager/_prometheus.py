"""A Prometheus collector of a manager's per-host stats (the ``prometheus`` extra).

Registered in one line::

    from prometheus_client import REGISTRY

    REGISTRY.register(cm.prometheus_collector())

Each scrape reads ``cm.get_stats()`` once and exposes, per host key (label ``host``):

=================================== ======= ==============================================
metric                              type    from ``get_stats()["hosts"][host]``
=================================== ======= ==============================================
``rcm_requests_total``              counter ``requests``
``rcm_attempts_total``              counter ``attempts``
``rcm_retries_total``               counter ``retries``
``rcm_failures_total``              counter ``failures``
``rcm_rejected_open_total``         counter ``rejected_open``
``rcm_rejected_local_total``        counter ``rejected_local``
``rcm_throttled_total``             counter ``throttled``
``rcm_throttle_wait_seconds_total`` counter ``throttle_wait_seconds``
``rcm_retries_denied_total``        counter ``retries_denied``
``rcm_breaker_opened_total``        counter ``breaker_opened``
``rcm_paused_total``                counter ``paused``
``rcm_breaker_state``               gauge   ``breaker_state``: label ``state`` (closed, open,
                                            half-open), 1 for the current one
``rcm_paused_seconds``              gauge   ``paused_for``
``rcm_quota_remaining``             gauge   ``quota_remaining`` (hosts with a known quota)
``rcm_throttle_probability``        gauge   ``throttle_probability`` (adaptive throttling)
``rcm_hosts``                       gauge   the number of hosts tracked
``rcm_shared_state_healthy``        gauge   ``shared_state.healthy`` (label ``prefix``)
``rcm_shared_state_outages_total``  counter ``shared_state.outages`` (label ``prefix``)
=================================== ======= ==============================================

The host table is bounded (least recently used idle hosts are dropped), so the ``host``
label is too; a host dropped and seen again starts from zero, which Prometheus reads as a
counter reset. Host keys never hold credentials (no user-info, no path, no query).
"""

from __future__ import annotations

import re
import weakref
from typing import TYPE_CHECKING, Any, Optional

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "the Prometheus collector needs prometheus_client: "
        "pip install 'requests-connection-manager[prometheus]'"
    ) from exc

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._manager import ConnectionManager

__all__ = ["COUNTERS", "PrometheusCollector"]

#: ``get_stats()`` host counters, exposed as ``<prefix>_<name>_total``, with their help.
COUNTERS = {
    "requests": "Requests that reached the host's pipeline (each redirect hop counts).",
    "attempts": "Attempts started, retries included.",
    "retries": "Attempts after the first of their request.",
    "failures": "Attempts that failed for the circuit breaker (connection, timeout, >= 500).",
    "rejected_open": "Requests refused by an open circuit breaker.",
    "rejected_local": "Attempts rejected locally by adaptive throttling.",
    "throttled": "Attempts that waited for, or were refused, a permit or a pause.",
    "throttle_wait_seconds": "Seconds spent waiting for rate-limit permits and pauses.",
    "retries_denied": "Retries refused by the host's retry budget.",
    "breaker_opened": "Times the host's circuit breaker opened.",
    "paused": "Times the host was paused for every caller.",
}
_BREAKER_STATES = ("closed", "open", "half-open")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class PrometheusCollector:
    """Exposes a manager's ``get_stats()`` to a ``prometheus_client`` registry.

    Holds the manager weakly: a collector left registered does not keep a manager alive
    (it then exposes no samples). Build it with ``cm.prometheus_collector()``.

    Args:
        manager: The manager to read.
        prefix: The metric name prefix (give each manager sharing a registry its own).

    Raises:
        ValueError: ``prefix`` is not a valid Prometheus metric name.
    """

    def __init__(self, manager: ConnectionManager, prefix: str = "rcm") -> None:
        given: Any = prefix  # checked at run time whatever its annotation
        if not isinstance(given, str) or not _NAME.fullmatch(given):
            raise ValueError(
                f"prefix must be a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), "
                f"got {prefix!r}"
            )
        self._manager = weakref.ref(manager)
        self._prefix = prefix

    def describe(self) -> list[Metric]:
        """The metric families, without samples (the registry checks names with it)."""
        return list(self._families(None))

    def collect(self) -> Iterator[Metric]:
        """The metric families with one scrape's samples."""
        manager = self._manager()
        yield from self._families(None if manager is None else manager.get_stats())

    def _families(self, stats: Optional[dict[str, Any]]) -> Iterator[Metric]:
        p = self._prefix
        hosts: dict[str, dict[str, Any]] = {} if stats is None else stats["hosts"]
        for name, documentation in COUNTERS.items():
            family = CounterMetricFamily(f"{p}_{name}", documentation, labels=["host"])
            for host, counters in hosts.items():
                family.add_metric([host], float(counters[name]))
            yield family
        state = GaugeMetricFamily(
            f"{p}_breaker_state",
            "Circuit breaker state of the host: 1 for the current state.",
            labels=["host", "state"],
        )
        paused = GaugeMetricFamily(
            f"{p}_paused_seconds",
            "Seconds left of the host's pause (Retry-After, quota reset, slow-down).",
            labels=["host"],
        )
        quota = GaugeMetricFamily(
            f"{p}_quota_remaining",
            "What is left of the quota the server advertised.",
            labels=["host"],
        )
        throttle = GaugeMetricFamily(
            f"{p}_throttle_probability",
            "Probability that adaptive throttling rejects an attempt locally.",
            labels=["host"],
        )
        for host, counters in hosts.items():
            current = counters["breaker_state"]
            if current in _BREAKER_STATES:
                for name in _BREAKER_STATES:
                    state.add_metric([host, name], 1.0 if name == current else 0.0)
            paused.add_metric([host], float(counters["paused_for"]))
            if counters.get("quota_remaining") is not None:
                quota.add_metric([host], float(counters["quota_remaining"]))
            if counters.get("throttle_probability") is not None:
                throttle.add_metric([host], float(counters["throttle_probability"]))
        yield from (state, paused, quota, throttle)
        count = None if stats is None else len(hosts)
        yield GaugeMetricFamily(f"{p}_hosts", "Hosts tracked by the manager.", value=count)
        healthy = GaugeMetricFamily(
            f"{p}_shared_state_healthy",
            "1 while shared state (Redis) is usable, 0 while calls use local state.",
            labels=["prefix"],
        )
        outages = CounterMetricFamily(
            f"{p}_shared_state_outages",
            "Times shared state (Redis) became unusable.",
            labels=["prefix"],
        )
        shared = {} if stats is None else stats["shared_state"]
        if shared.get("enabled"):
            healthy.add_metric([str(shared["prefix"])], 1.0 if shared["healthy"] else 0.0)
            outages.add_metric([str(shared["prefix"])], float(shared["outages"]))
        yield from (healthy, outages)
