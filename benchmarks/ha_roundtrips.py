"""Redis commands per healthy call of today's ``ConnectionManager`` with shared state.

For three configurations (breaker only; breaker + fixed-window limit; breaker +
sliding-window limit) and three Redis setups (one node via ``redis_url``; a cluster via
``redis_client=RedisCluster``; a sentinel setup via ``redis_client=master_for``), after a
warm-up: ``INFO commandstats`` deltas over 1,000 successful GETs against a loopback
``AppServer`` (commands per call, commands run inside scripts included), and ``MONITOR``
over 50 calls (what the client sends, one round trip each, vs. what its scripts run).

Run: ``PYTHONPATH=src python -m benchmarks.ha_roundtrips``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from benchmarks.ha_tools import Monitor, commandstats, per_call
from requests_connection_manager import ConnectionManager
from tests.rediscluster import LocalRedisCluster
from tests.redissentinel import LocalSentinel
from tests.redisserver import RedisServer
from tests.servers import AppServer

CALLS = 1000
SAMPLE = 50
CONFIGS: dict[str, dict[str, Any]] = {
    "breaker only": {},
    "breaker + fixed-window": {"rate_limit_requests": 10**9, "rate_limit_period": 1},
    "breaker + sliding-window": {
        "rate_limit_requests": 10**9,
        "rate_limit_period": 1,
        "rate_limit_strategy": "sliding-window",
    },
}
NOISE = {"INFO", "PING", "PUBLISH", "HELLO", "CLIENT"}  # our INFO, sentinels' chatter


def measure(
    url: str, ports: list[int], make: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with ConnectionManager(**make, **extra) as cm:
        for _ in range(20):
            cm.get(url)
        before = commandstats(ports)
        began = time.perf_counter()
        for _ in range(CALLS):
            cm.get(url)
        elapsed = time.perf_counter() - began
        delta = commandstats(ports) - before
        for noise in NOISE:
            delta.pop(noise, None)
        out["commandstats_per_call"] = per_call(delta, CALLS)
        out["us_per_call"] = round(elapsed / CALLS * 1e6)
        with Monitor(ports) as seen:
            for _ in range(SAMPLE):
                cm.get(url)
        client = seen.client_commands()
        for noise in NOISE:
            client.pop(noise, None)
        out["round_trips_per_call"] = round(sum(client.values()) / SAMPLE, 2)
        out["client_commands_per_call"] = per_call(client, SAMPLE)
        out["in_script_per_call"] = per_call(seen.script_commands(), SAMPLE)
        # one call, in order
        with Monitor(ports) as seen:
            cm.get(url)
        out["one_call"] = [
            " ".join(s.args[:2]) for s in seen.seen if not s.in_script and s.name not in NOISE
        ]
        out["shared_state"] = cm.get_stats().get("shared_state")
    return out


def main() -> None:
    with (
        AppServer() as app,
        RedisServer() as single,
        LocalRedisCluster() as cluster,
        LocalSentinel() as sentinel,
    ):
        app.ok("/x")
        url = app.url("/x")
        setups: list[tuple[str, list[int], dict[str, Any]]] = [
            ("single redis_url", [single.port], {"redis_url": single.url}),
            (
                "cluster redis_client=RedisCluster",
                [n.port for n in cluster.primaries()],
                {"redis_client": cluster.client(timeout=0.25)},
            ),
            (
                "sentinel redis_client=master_for",
                [sentinel.primary.port],
                {"redis_client": sentinel.client(timeout=0.25)},
            ),
        ]
        for name, ports, make in setups:
            for config, extra in CONFIGS.items():
                try:
                    result = measure(url, ports, make, extra)
                except Exception as exc:
                    result = {"raised": f"{type(exc).__module__}.{type(exc).__name__}: {exc}"}
                print(json.dumps({f"{name} | {config}": result}, default=str))
            if "redis_client" in make:
                make["redis_client"].close()


if __name__ == "__main__":
    main()
