"""What today's code does when the Redis primary holding a host's keys is killed.

A caller thread makes back-to-back successful GETs through a ``ConnectionManager`` (or
``limits`` hits) while the primary that holds the host's breaker (or limiter) key is
SIGKILLed and its replica promoted. Reported per scenario: every outcome by type, which
ones are outside the exception contract (not a response and not a
``ConnectionManagerError``), the slowest calls, how long calls were slow, and when shared
state was healthy again.

Scenarios: a single node via ``redis_url`` (stopped and restarted, the baseline); a
cluster via ``redis_client=RedisCluster`` with redis-py's default retries and with no
retries; a sentinel setup via ``redis_client=master_for``; ``limits``' own
``redis+cluster://`` and ``redis+sentinel://`` storages.

Run: ``PYTHONPATH=src python -m benchmarks.ha_failover``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from benchmarks.ha_tools import percentile
from requests_connection_manager import ConnectionManager, ConnectionManagerError
from tests.rediscluster import LocalRedisCluster
from tests.redissentinel import LocalSentinel
from tests.redisserver import RedisServer
from tests.servers import AppServer

BEFORE = 1.0
AFTER = 4.0


@dataclass
class Run:
    """Outcomes of the calls made during one scenario."""

    t0: float = field(default_factory=time.monotonic)
    calls: list[tuple[float, float, str]] = field(default_factory=list)  # (start, latency, outcome)
    escaped: dict[str, str] = field(default_factory=dict)  # type -> where
    stop: threading.Event = field(default_factory=threading.Event)


class _Logs(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((time.monotonic(), f"{record.levelname} {record.getMessage()[:140]}"))


def _loop(run: Run, call: Callable[[], str]) -> None:
    while not run.stop.is_set():
        began = time.monotonic()
        try:
            outcome = call()
        except ConnectionManagerError as exc:
            outcome = f"contract:{type(exc).__name__}"
        except Exception as exc:
            outcome = f"ESCAPED:{type(exc).__module__}.{type(exc).__name__}"
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            run.escaped.setdefault(outcome, f"{exc!s:.160} at {frame.filename}:{frame.lineno}")
        run.calls.append((began - run.t0, time.monotonic() - began, outcome))


def scenario(
    name: str,
    call: Callable[[], str],
    fail: Callable[[], None],
    recover: Callable[[], float],
    healthy: Optional[Callable[[], bool]] = None,
) -> dict[str, Any]:
    """Run ``call`` in a loop; ``fail()`` at BEFORE s; ``recover()`` (returns its duration)."""
    logs = _Logs()
    logging.getLogger("requests_connection_manager").addHandler(logs)
    run = Run()
    thread = threading.Thread(target=_loop, args=(run, call), daemon=True)
    thread.start()
    time.sleep(BEFORE)
    killed_at = time.monotonic() - run.t0
    fail()
    failover_s = recover()
    healthy_at: Optional[float] = None
    end = time.monotonic() + AFTER
    while time.monotonic() < end:
        if healthy_at is None and healthy is not None and healthy():
            healthy_at = time.monotonic() - run.t0
        time.sleep(0.02)
    run.stop.set()
    thread.join(30)
    logging.getLogger("requests_connection_manager").removeHandler(logs)
    after = [c for c in run.calls if c[0] >= killed_at]
    latencies = [c[1] for c in after]
    slow = [c for c in after if c[1] > 0.1]
    return {
        "scenario": name,
        "failover_s": round(failover_s, 2),
        "calls_before_kill": len(run.calls) - len(after),
        "calls_after_kill": len(after),
        "outcomes_after_kill": dict(Counter(c[2] for c in after)),
        "escaped": run.escaped,
        "latency_after_kill_ms": {
            "p50": round(percentile(latencies, 0.5) * 1000, 1),
            "p99": round(percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies, default=0) * 1000, 1),
        },
        "slow_calls_over_100ms": len(slow),
        "slow_window_s": (
            [round(slow[0][0] - killed_at, 2), round(slow[-1][0] + slow[-1][1] - killed_at, 2)]
            if slow
            else None
        ),
        "last_non_200_after_kill_s": max(
            (round(c[0] + c[1] - killed_at, 2) for c in after if c[2] not in ("200", "True")),
            default=None,
        ),
        "non_ok_per_half_second_after_kill": dict(
            sorted(
                Counter(
                    round((c[0] - killed_at) // 0.5 * 0.5, 1)
                    for c in after
                    if c[2] not in ("200", "True")
                ).items()
            )
        ),
        "healthy_again_after_kill_s": None
        if healthy_at is None
        else round(healthy_at - killed_at, 2),
        "logs": [f"+{t - run.t0 - killed_at:.2f}s {line}" for t, line in logs.lines[:6]],
    }


def _manager_call(cm: ConnectionManager, url: str) -> Callable[[], str]:
    return lambda: str(cm.get(url).status_code)


def _healthy(cm: ConnectionManager) -> Callable[[], bool]:
    return lambda: bool(cm.get_stats()["shared_state"]["healthy"])


def _outcome(action: Callable[[], Any]) -> str:
    try:
        return f"ok: {action()}"
    except ConnectionManagerError as exc:
        return f"contract: {type(exc).__name__}"
    except Exception as exc:
        return f"ESCAPED {type(exc).__module__}.{type(exc).__name__}: {exc!s:.120}"


def contract_checks() -> dict[str, str]:
    """Today's code with a cluster or sentinel: which configurations work at all."""
    checks: dict[str, str] = {}
    with AppServer() as app, LocalRedisCluster() as cluster, LocalSentinel() as sentinel:
        app.ok("/x")
        app.ok("/down", b"down", status=500)
        for url in (cluster.url, sentinel.url):
            checks[f"ConnectionManager(redis_url={url.split(':')[0]}://...)"] = _outcome(
                lambda url=url: ConnectionManager(redis_url=url).close()
            )
        client = cluster.client(timeout=0.25)
        with ConnectionManager(
            redis_client=client, rate_limit_requests=10, rate_limit_period=1, max_retries=0
        ) as cm:
            checks["RedisCluster client + rate limit: cm.get"] = _outcome(
                lambda: cm.get(app.url("/x")).status_code
            )
        with ConnectionManager(
            redis_client=client, max_retries=0, circuit_breaker_failure_threshold=1
        ) as cm:
            checks["RedisCluster client, breaker trips: 1st cm.get (500)"] = _outcome(
                lambda: cm.get(app.url("/down")).status_code
            )
            checks["RedisCluster client, breaker trips: 2nd cm.get"] = _outcome(
                lambda: cm.get(app.url("/down")).status_code
            )
            checks["... breaker state in Redis"] = str(
                client.get(f"rcm:http://127.0.0.1:{app.port}:pybreaker:state")
            )
        client.close()
    return checks


def main() -> None:
    print(json.dumps({"contract_checks": contract_checks()}))
    results = []
    with AppServer() as app:
        app.ok("/x")
        url = app.url("/x")
        host_key = f"http://127.0.0.1:{app.port}"
        common = {"max_retries": 0, "timeout": 2}

        # 1. single node via redis_url: stopped, restarted on the same port (baseline)
        with (
            RedisServer() as single,
            ConnectionManager(
                redis_url=single.url, rate_limit_requests=10**6, rate_limit_period=1, **common
            ) as cm,
        ):

            def restart_single() -> float:
                time.sleep(1.0)
                began = time.monotonic()
                single.start()
                return time.monotonic() - began

            results.append(
                scenario(
                    "single redis_url, breaker + fixed limit: redis-server killed 1 s",
                    _manager_call(cm, url),
                    single.stop,
                    restart_single,
                    _healthy(cm),
                )
            )

        with LocalRedisCluster() as cluster:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            state_key = f"rcm:{host_key}:pybreaker:state"
            for label, extra in [
                ("default retries (10, jittered backoff to 1 s)", {}),
                ("retry=Retry(NoBackoff(), 0)", {"retry": Retry(NoBackoff(), 0)}),
            ]:
                cluster.heal()
                cluster.flushall()
                client = cluster.client(timeout=0.25, **extra)
                with ConnectionManager(redis_client=client, **common) as cm:
                    cm.get(url)
                    victim = cluster.primary_for(state_key)
                    slot = cluster.keyslot(state_key)
                    began = [0.0]

                    def kill(victim: Any = victim, began: list[float] = began) -> None:
                        began[0] = time.monotonic()
                        cluster.kill(victim)

                    def failover(slot: int = slot, began: list[float] = began) -> float:
                        cluster.wait_failover(slot)
                        return time.monotonic() - began[0]

                    results.append(
                        scenario(
                            f"cluster redis_client=RedisCluster {label}, breaker only: "
                            "primary of the state key killed",
                            _manager_call(cm, url),
                            kill,
                            failover,
                            _healthy(cm),
                        )
                    )
                client.close()

            # limits' own cluster storage, moving window, key's primary killed
            cluster.heal()
            from limits import RateLimitItemPerSecond
            from limits.storage import storage_from_string
            from limits.strategies import MovingWindowRateLimiter

            storage = storage_from_string(cluster.url, socket_timeout=0.25)
            limiter = MovingWindowRateLimiter(storage)
            item = RateLimitItemPerSecond(10**6, 1, namespace="rcm")
            tag = f"{{rcm:{host_key}}}"
            limiter.hit(item, tag)
            key = f"LIMITS:{item.key_for(tag)}"
            victim = cluster.primary_for(key)
            slot = cluster.keyslot(key)
            mark = [0.0]

            def kill_limits() -> None:
                mark[0] = time.monotonic()
                cluster.kill(victim)

            def failover_limits() -> float:
                cluster.wait_failover(slot)
                return time.monotonic() - mark[0]

            results.append(
                scenario(
                    "limits redis+cluster:// storage, moving window: key's primary killed",
                    lambda: str(limiter.hit(item, tag)),
                    kill_limits,
                    failover_limits,
                )
            )

        with LocalSentinel() as sentinel:
            client = sentinel.client(timeout=0.25)
            with ConnectionManager(
                redis_client=client,
                rate_limit_requests=10**6,
                rate_limit_period=1,
                rate_limit_strategy="sliding-window",
                **common,
            ) as cm:
                cm.get(url)
                mark = [0.0]

                def kill_primary() -> None:
                    mark[0] = time.monotonic()
                    sentinel.kill_primary()

                def failover_sentinel() -> float:
                    sentinel.wait_failover()
                    return time.monotonic() - mark[0]

                results.append(
                    scenario(
                        "sentinel redis_client=master_for, breaker + sliding limit: primary killed",
                        _manager_call(cm, url),
                        kill_primary,
                        failover_sentinel,
                        _healthy(cm),
                    )
                )
            client.close()
            sentinel.heal()
            from limits import RateLimitItemPerSecond
            from limits.storage import storage_from_string
            from limits.strategies import MovingWindowRateLimiter

            storage = storage_from_string(sentinel.url, socket_timeout=0.25)
            limiter = MovingWindowRateLimiter(storage)
            item = RateLimitItemPerSecond(10**6, 1, namespace="rcm")
            limiter.hit(item, "h")
            results.append(
                scenario(
                    "limits redis+sentinel:// storage, moving window: primary killed",
                    lambda: str(limiter.hit(item, "h")),
                    kill_primary,
                    failover_sentinel,
                )
            )
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
