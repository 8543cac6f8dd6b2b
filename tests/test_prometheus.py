"""The Prometheus collector: a scrape of the text exposition matches get_stats()."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from requests_connection_manager import CircuitBreakerOpen, ConnectionManager
from requests_connection_manager._prometheus import COUNTERS
from tests.servers import AppServer

pytestmark = pytest.mark.timeout(30)


Samples = dict[tuple[str, frozenset[Any]], float]


def _scrape(registry: CollectorRegistry) -> tuple[str, Samples, dict[str, str]]:
    """The text exposition, every sample by (name, labels), every family's type by name."""
    text = generate_latest(registry).decode()
    samples: Samples = {}
    families: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples, families


def _host(host: str, **labels: str) -> frozenset[Any]:
    return frozenset({"host": host, **labels}.items())


def test_a_scrape_exposes_every_host_counter_as_get_stats_has_it(app: AppServer) -> None:
    """rcm_<counter>_total per host equals get_stats()['hosts'][host][counter]."""
    app.fail_then_ok("/flaky", failures=2)
    app.ok("/down", status=503)
    with ConnectionManager(
        backoff_factor=0.001, max_retries=3, circuit_breaker_failure_threshold=4
    ) as cm:
        registry = CollectorRegistry()
        registry.register(cm.prometheus_collector())
        cm.get(app.url("/flaky"))
        with pytest.raises(requests.RequestException):  # its 4th failure opens the breaker
            cm.get(app.url("/down"))
        with pytest.raises(CircuitBreakerOpen):
            cm.get(app.url("/down"))
        stats = cm.get_stats()["hosts"]
        text, samples, families = _scrape(registry)
    (host,) = stats
    counters = stats[host]
    assert counters["retries"] >= 2
    assert counters["rejected_open"] == 1
    for name in COUNTERS:
        assert families[f"rcm_{name}"] == "counter"
        assert samples[(f"rcm_{name}_total", _host(host))] == pytest.approx(counters[name])
    assert samples[("rcm_breaker_state", _host(host, state="open"))] == 1
    assert samples[("rcm_breaker_state", _host(host, state="closed"))] == 0
    assert samples[("rcm_breaker_state", _host(host, state="half-open"))] == 0
    assert samples[("rcm_paused_seconds", _host(host))] == counters["paused_for"]
    assert samples[("rcm_hosts", frozenset())] == 1
    assert "rcm_quota_remaining{" not in text  # no quota advertised
    assert "rcm_shared_state_healthy{" not in text  # no shared state


def test_a_server_quota_and_adaptive_throttling_are_gauges(app: AppServer) -> None:
    """quota_remaining and throttle_probability are exposed for the hosts that have them."""
    app.ok("/q", headers={"RateLimit-Limit": "10", "RateLimit-Remaining": "7"})
    with ConnectionManager(adaptive_throttling=True) as cm:
        registry = CollectorRegistry()
        registry.register(cm.prometheus_collector())
        cm.get(app.url("/q"))
        stats = cm.get_stats()["hosts"]
        _, samples, _ = _scrape(registry)
    (host,) = stats
    assert samples[("rcm_quota_remaining", _host(host))] == stats[host]["quota_remaining"]
    assert (
        samples[("rcm_throttle_probability", _host(host))] == (stats[host]["throttle_probability"])
    )


def test_no_secret_reaches_a_label_or_a_value(app: AppServer) -> None:
    """User-info, query secrets and credentials never appear in the exposition."""
    app.ok("/ok")
    with ConnectionManager(bearer_token="BEARER-tok-456", api_key="HEADER-KEY-789") as cm:
        registry = CollectorRegistry()
        registry.register(cm.prometheus_collector())
        cm.get(f"http://user:s3cret-pw@127.0.0.1:{app.port}/ok?api_key=QUERY-KEY-123")
        text, _, _ = _scrape(registry)
    assert f'host="http://127.0.0.1:{app.port}"' in text
    for secret in ("s3cret-pw", "user:", "QUERY-KEY-123", "BEARER-tok-456", "HEADER-KEY-789"):
        assert secret not in text


def test_shared_state_health_is_exposed_with_its_prefix(app: AppServer) -> None:
    """Redis unreachable: rcm_shared_state_healthy 0 and one outage for the prefix."""
    pytest.importorskip("redis")
    app.ok("/x")
    with ConnectionManager(
        redis_url="redis://127.0.0.1:1/0", rate_limit_requests=100, redis_prefix="prom"
    ) as cm:
        registry = CollectorRegistry()
        registry.register(cm.prometheus_collector())
        cm.get(app.url("/x"))
        _, samples, _ = _scrape(registry)
    prefix = frozenset({"prefix": "prom"}.items())
    assert samples[("rcm_shared_state_healthy", prefix)] == 0
    assert samples[("rcm_shared_state_outages_total", prefix)] == 1


def test_two_managers_in_one_registry_need_their_own_prefix() -> None:
    """The registry refuses a second collector with the same names; a prefix tells them apart."""
    with ConnectionManager() as one, ConnectionManager() as two:
        registry = CollectorRegistry()
        registry.register(one.prometheus_collector())
        with pytest.raises(ValueError, match="Duplicated"):
            registry.register(two.prometheus_collector())
        registry.register(two.prometheus_collector(prefix="billing"))
        _, _, families = _scrape(registry)
    assert families["billing_requests"] == "counter"
    assert families["rcm_requests"] == "counter"


def test_a_bad_prefix_is_refused() -> None:
    """A prefix that is no metric name: ValueError naming it."""
    with ConnectionManager() as cm:
        for bad in ("", "1rcm", "rcm-x", "rcm\n", 5):
            with pytest.raises(ValueError, match="prefix"):
                cm.prometheus_collector(prefix=bad)  # type: ignore[arg-type]


def test_the_collector_does_not_keep_its_manager_alive(app: AppServer) -> None:
    """A collector left registered holds the manager weakly; then it exposes no sample."""
    app.ok("/x")
    cm = ConnectionManager()
    registry = CollectorRegistry()
    registry.register(cm.prometheus_collector())
    cm.get(app.url("/x"))
    cm.close()
    del cm
    gc.collect()
    _, samples, families = _scrape(registry)
    assert families["rcm_requests"] == "counter"
    assert samples == {}


def test_without_prometheus_client_the_error_names_the_extra() -> None:
    """prometheus_client missing: ImportError that says which extra to install."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["prometheus_client"] = None
        from requests_connection_manager import ConnectionManager
        cm = ConnectionManager()
        try:
            cm.prometheus_collector()
        except ImportError as exc:
            print(exc)
        finally:
            cm.close()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20, check=False
    )
    assert "requests-connection-manager[prometheus]" in done.stdout, done.stderr
