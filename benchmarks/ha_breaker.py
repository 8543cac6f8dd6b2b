"""Does pybreaker's ``CircuitRedisStorage`` work on Redis Cluster and Sentinel clients?

For each client (``redis.Redis`` on one node, ``RedisCluster``, a Sentinel
``master_for`` client), each namespace form (plain ``rcm:<host>`` and hash-tagged
``{rcm:<host>}``) and ``cluster_mode`` off/on, every storage operation the breaker uses is
run once under ``MONITOR``: whether it worked, raised (and what), or was swallowed by
pybreaker's own ``except RedisError: logger.exception``, and which commands it sent.
Then a real ``CircuitBreaker`` on one storage trips and a second storage (another
process) must see it open.

Run: ``PYTHONPATH=src python -m benchmarks.ha_breaker`` (also under the oldest declared
dependencies: redis 5.0, pybreaker 1.2).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable

import pybreaker
import redis

from benchmarks.ha_tools import Monitor
from tests.rediscluster import LocalRedisCluster
from tests.redissentinel import LocalSentinel
from tests.redisserver import RedisServer

HOST_KEY = "http://api.example.com:443"
SENTINEL_CHATTER = {"PING", "PUBLISH", "INFO"}


class _Swallowed(logging.Handler):
    """Collects what pybreaker logs when it catches a RedisError."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        self.records.append(f"{record.getMessage()} <- {type(exc).__name__}: {exc}")


@contextmanager
def clients() -> Iterator[list[tuple[str, Callable[[], Any], list[int], Any]]]:
    with RedisServer() as single, LocalRedisCluster() as cluster, LocalSentinel() as sentinel:
        yield [
            ("single", lambda: redis.Redis.from_url(single.url), [single.port], single),
            ("cluster", cluster.client, [n.port for n in cluster.primaries()], cluster),
            ("sentinel", sentinel.client, [sentinel.primary.port], sentinel),
        ]


def _run(label: str, op: Callable[[], Any], ports: list[int], sink: _Swallowed) -> dict[str, Any]:
    sink.records.clear()
    result: dict[str, Any] = {}
    with Monitor(ports) as seen:
        try:
            value = op()
            result["result"] = value if isinstance(value, (int, str, type(None))) else str(value)
        except Exception as exc:
            result["raised"] = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
            result["raised_is_redis_error"] = isinstance(exc, redis.RedisError)
    commands = [
        " ".join(s.args[:2]) if s.name != "EVALSHA" else "EVALSHA"
        for s in seen.seen
        if not s.in_script and s.name not in SENTINEL_CHATTER
    ]
    result["commands"] = commands
    if sink.records:
        result["swallowed"] = list(sink.records)
    return {label: result}


def storage_ops(
    make_client: Callable[[], Any], ports: list[int], namespace: str, cluster_mode: bool
) -> dict[str, Any]:
    sink = _Swallowed()
    logger = pybreaker.CircuitRedisStorage.logger
    logger.addHandler(sink)
    logger.propagate = False
    client = make_client()
    out: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"namespace": namespace}
    if cluster_mode:
        if "cluster_mode" not in inspect.signature(pybreaker.CircuitRedisStorage).parameters:
            return {"skipped": "this pybreaker has no cluster_mode"}
        kwargs["cluster_mode"] = True
    try:
        holder: dict[str, Any] = {}

        def build() -> str:
            holder["s"] = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, **kwargs)
            return "built"

        out.update(_run("__init__ (SETNX x3)", build, ports, sink))
        storage = holder.get("s")
        if storage is None:
            return out
        now = datetime.now(timezone.utc)

        def set_open() -> None:
            storage.state = pybreaker.STATE_OPEN

        def set_opened_at() -> None:
            storage.opened_at = now

        def read_opened_at() -> str:
            return str(storage.opened_at)

        for label, op in [
            ("state (read)", lambda: storage.state),
            ("state = open", set_open),
            ("increment_counter", storage.increment_counter),
            ("counter (read)", lambda: storage.counter),
            ("reset_counter", storage.reset_counter),
            ("opened_at = now", set_opened_at),
            ("opened_at (read)", read_opened_at),
        ]:
            out.update(_run(label, op, ports, sink))
        if "raised" not in out["opened_at = now"] and "swallowed" not in out["opened_at = now"]:
            # the value written must be readable: an unwritten opened_at reads as None
            out["opened_at round trip ok"] = out["opened_at (read)"].get("result") != "None"
        out["keys"] = sorted({k for s in [storage] for k in _keys(s)})
        return out
    finally:
        logger.removeHandler(sink)
        logger.propagate = True
        client.close()


def _keys(storage: Any) -> list[str]:
    return [storage._namespace(k) for k in ("state", "fail_counter", "opened_at")]


def shared_trip(make_client: Callable[[], Any], namespace: str) -> dict[str, Any]:
    """A breaker on one storage trips; a second storage (another process) sees it open."""
    client_a, client_b = make_client(), make_client()
    try:
        a = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client_a, namespace=namespace)
        breaker = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=60, state_storage=a)

        def fail() -> None:
            raise OSError("down")

        outcomes = []
        for _ in range(3):
            try:
                breaker.call(fail)
            except Exception as exc:
                outcomes.append(type(exc).__name__)
        b = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client_b, namespace=namespace)
        return {"outcomes": outcomes, "other_process_sees": b.state, "opened_at": str(b.opened_at)}
    except Exception as exc:
        return {"raised": f"{type(exc).__name__}: {exc}"}
    finally:
        client_a.close()
        client_b.close()


def main() -> None:
    from importlib.metadata import version

    print(f"# redis-py {version('redis')}, pybreaker {version('pybreaker')}")
    with clients() as setups:
        for name, make_client, ports, harness in setups:
            for namespace in (f"rcm:{HOST_KEY}", f"{{rcm:{HOST_KEY}}}"):
                for cluster_mode in (False, True):
                    if cluster_mode and name != "cluster":
                        continue
                    result = storage_ops(make_client, ports, namespace, cluster_mode)
                    if name == "cluster" and "keys" in result:
                        result["slots"] = sorted({harness.keyslot(k) for k in result["keys"]})
                    print(
                        json.dumps(
                            {f"{name} ns={namespace} cluster_mode={cluster_mode}": result},
                            indent=1,
                            default=str,
                        )
                    )
                trip = shared_trip(make_client, namespace + ":trip")
                print(json.dumps({f"{name} ns={namespace} shared trip": trip}, default=str))


if __name__ == "__main__":
    main()
