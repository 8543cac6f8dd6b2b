"""Does ``limits`` work on Redis Cluster and Sentinel, exactly, and what does a hit cost?

For each backend (one redis-server, a 3+3 cluster, a sentinel setup) and each strategy
(fixed window, moving window, and limits' sliding-window counter for comparison):

1. the storage URL is accepted and a 5-per-minute item admits exactly 5 of 6 hits;
2. 3 processes x 200 hits against one 300-per-minute item: exactly 300 granted in total;
3. the commands one steady-state ``hit()`` sends (``MONITOR``: client commands and the
   commands its script runs), and what ``get_window_stats()`` adds;
4. the keys each strategy writes and their slots, with and without a hash tag in the
   identifiers, compared with the breaker keys ``{rcm:<host>}:pybreaker:*``.

Run: ``PYTHONPATH=src python -m benchmarks.ha_limits``.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from benchmarks.ha_tools import Monitor, per_call
from tests.rediscluster import LocalRedisCluster
from tests.redissentinel import LocalSentinel
from tests.redisserver import RedisServer

STRATEGIES = {
    "fixed": FixedWindowRateLimiter,
    "moving": MovingWindowRateLimiter,
    "sliding-counter": SlidingWindowCounterRateLimiter,
}
HOST_KEY = "http://127.0.0.1:8080"
# What sentinels send to the nodes they watch (not the limiter's traffic).
SENTINEL_CHATTER = {"PING", "PUBLISH", "INFO"}


@contextmanager
def backends() -> Iterator[list[tuple[str, str, list[int], Any]]]:
    """(name, url, ports to monitor, harness) for a single node, a cluster, a sentinel setup."""
    with RedisServer() as single, LocalRedisCluster() as cluster, LocalSentinel() as sentinel:
        print(
            f"# started: cluster {cluster.start_seconds:.2f} s, "
            f"sentinel {sentinel.start_seconds:.2f} s"
        )
        yield [
            ("single", single.url, [single.port], single),
            ("cluster", cluster.url, [n.port for n in cluster.primaries()], cluster),
            ("sentinel", sentinel.url, [sentinel.primary.port], sentinel),
        ]


def _worker(url: str, strategy: str, ident: str, limit: int, hits: int, start_at: float) -> int:
    storage = storage_from_string(url)
    limiter = STRATEGIES[strategy](storage)
    item = RateLimitItemPerMinute(limit, namespace="rcm")
    limiter.hit(RateLimitItemPerMinute(10**6, namespace="warm"), strategy)  # connect, load scripts
    while time.time() < start_at:
        time.sleep(0.001)
    return sum(1 for _ in range(hits) if limiter.hit(item, ident, strategy))


def exact_across_processes(url: str, strategy: str, ident: str) -> int:
    """3 processes x 200 hits on a 300/min item: how many were granted in total."""
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0
    with context.Pool(3) as pool:
        results = [
            pool.apply_async(_worker, (url, strategy, ident, 300, 200, start_at)) for _ in range(3)
        ]
        return sum(r.get(60) for r in results)


def main() -> None:
    report: dict[str, Any] = {}
    with backends() as setups:
        for name, url, ports, harness in setups:
            storage = storage_from_string(url)
            row: dict[str, Any] = {"url_scheme": url.split("://")[0]}
            for strategy, kind in STRATEGIES.items():
                limiter = kind(storage)
                entry: dict[str, Any] = {}
                item5 = RateLimitItemPerMinute(5, namespace="rcm")
                entry["5_of_6"] = [limiter.hit(item5, f"basic-{strategy}") for _ in range(6)]
                entry["granted_of_600_limit_300_3_procs"] = exact_across_processes(
                    url, strategy, f"exact-{strategy}-{name}"
                )
                # steady state: the scripts are loaded, the connection is open
                item = RateLimitItemPerMinute(10**6, namespace="rcm")
                tag = f"{{rcm:{HOST_KEY}}}"
                limiter.hit(item, tag, strategy)
                hits = 100
                with Monitor(ports) as seen:
                    for _ in range(hits):
                        limiter.hit(item, tag, strategy)
                client_commands = seen.client_commands()
                for chatter in SENTINEL_CHATTER:
                    client_commands.pop(chatter, None)
                entry["per_hit_client_commands"] = per_call(client_commands, hits)
                entry["per_hit_script_commands"] = per_call(seen.script_commands(), hits)
                entry["keys"] = sorted(seen.keys())
                limiter.get_window_stats(item, tag, strategy)  # loads its script once
                # Sentinel: limits reads from a replica by default (use_replicas=True).
                read_ports = [n.port for n in harness.data_nodes] if name == "sentinel" else ports
                with Monitor(read_ports) as seen:
                    limiter.get_window_stats(item, tag, strategy)
                entry["get_window_stats_client_commands"] = {
                    f"{c.name}@{'primary' if c.port in ports else 'replica'}": 1
                    for c in seen.seen
                    if not c.in_script and c.name not in SENTINEL_CHATTER
                }
                began = time.perf_counter()
                for _ in range(1000):
                    limiter.hit(item, tag, strategy)
                entry["us_per_hit"] = round((time.perf_counter() - began) * 1000, 1)
                if name == "cluster":
                    slots = {k: harness.keyslot(k) for k in entry["keys"]}
                    entry["key_slots"] = slots
                    entry["breaker_state_slot"] = harness.keyslot(f"{tag}:pybreaker:state")
                    entry["same_slot_as_breaker"] = set(slots.values()) == {
                        entry["breaker_state_slot"]
                    }
                row[strategy] = entry
            # limits' fixed window starts at the first hit (INCR, then EXPIRE when new), it
            # is not aligned to the clock: the TTL right after a first hit is the period.
            fixed = FixedWindowRateLimiter(storage)
            probe = RateLimitItemPerMinute(5, namespace="rcm")
            fixed.hit(probe, "ttl-probe")
            row["fixed_window_reset_after_first_hit_s"] = round(
                fixed.get_window_stats(probe, "ttl-probe").reset_time - time.time(), 1
            )
            row["monitored_ports"] = ports
            if name == "cluster":
                # Where the hash tag may go: identifiers, or the item's namespace.
                untagged = RateLimitItemPerMinute(5, namespace="rcm").key_for(HOST_KEY, "fixed")
                in_ns = RateLimitItemPerMinute(5, namespace=f"{{rcm:{HOST_KEY}}}").key_for("fixed")
                row["hash_tag_options"] = {
                    f"LIMITS:{k}": harness.keyslot(f"LIMITS:{k}") for k in (untagged, in_ns)
                }
            report[name] = row
            print(json.dumps({name: row}, indent=1, default=str))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
