"""Proposed shared-state layout and Lua scripts, checked on one node, a cluster and Sentinel.

Everything a host needs lives under one hash tag, ``{<prefix>:<host key>}`` (``T`` below),
so every script touches one slot and runs on one node in one round trip:

=====================  ========  ====================================================
key                    type      content
=====================  ========  ====================================================
``T:br``               hash      breaker: ``state``, ``fails`` (consecutive), ``opened``
                                 (ms, server clock), ``gen`` (bumped on every change)
``T:probes``           zset      half-open probe leases: member = lease id, score =
                                 expiry (ms); a count can never go negative
``T:cnt``              hash      batched outcome counts per time bucket (``<b>:ok``,
                                 ``<b>:fail``), pruned to a window; for stats / a ratio rule
``T:fw:<n>:<ms>``      hash      fixed-window permits: ``w`` (window index), ``n`` (used)
``T:sw:<n>:<ms>``      zset      sliding-window permits: one member per permit, score =
                                 grant time (ms); exact, O(limit) memory
``T:ev``               channel   breaker changes, ``"<gen> <state> <opened>"``; SPUBLISH
                                 (Redis 7+, sharded: stays on the slot's shard) or PUBLISH
=====================  ========  ====================================================

Every script reads the server's ``TIME`` (no client clock skew between hosts) and returns
it last, so callers can estimate their clock offset. The self-check below runs each script
on the three setups: one ``EVALSHA`` per operation (``MONITOR``), all keys in one slot,
exact permits across 3 processes, leases that never go negative, and breaker changes
arriving on the channel.

Run: ``PYTHONPATH=src python -m benchmarks.ha_design``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
import uuid
from typing import Any, Callable

import redis

from benchmarks.ha_tools import Monitor

# --------------------------------------------------------------------------- scripts
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: KEYS[1] = T:fw:<limit>:<period ms>. ARGV = limit, period_ms, cost.
#: Returns {granted 0/1, remaining, ms until the window resets, now}.
PERMIT_FIXED = (
    _NOW
    + """
local limit, period, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window = math.floor(now / period)
local cur = redis.call('HMGET', KEYS[1], 'w', 'n')
local used = 0
if tonumber(cur[1]) == window then used = tonumber(cur[2]) or 0 end
local reset = (window + 1) * period - now
if used + cost > limit then return {0, limit - used, reset, now} end
redis.call('HSET', KEYS[1], 'w', window, 'n', used + cost)
redis.call('PEXPIRE', KEYS[1], reset)
return {1, limit - used - cost, reset, now}
"""
)

#: KEYS[1] = T:sw:<limit>:<period ms>. ARGV = limit, period_ms, cost, unique permit id.
#: Exact: never more than ``limit`` permits granted in any ``period``.
#: Returns {granted 0/1, remaining, ms until enough permits expire (0 if granted), now}.
PERMIT_SLIDING = (
    _NOW
    + """
local limit, period, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if cost > limit then return {0, limit, -1, now} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local used = redis.call('ZCARD', KEYS[1])
if used + cost > limit then
  local nth = redis.call('ZRANGE', KEYS[1], used + cost - limit - 1, used + cost - limit - 1,
                         'WITHSCORES')
  return {0, limit - used, tonumber(nth[2]) + period - now, now}
end
for i = 1, cost do redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. i) end
redis.call('PEXPIRE', KEYS[1], period)
return {1, limit - used - cost, 0, now}
"""
)

_READ_BREAKER = """
local s = redis.call('HMGET', KEYS[1], 'state', 'fails', 'opened', 'gen')
local state = s[1] or 'closed'
local fails = tonumber(s[2]) or 0
local opened = tonumber(s[3]) or 0
local gen = tonumber(s[4]) or 0
local function publish()
  redis.call(ARGV[1], KEYS[2], gen .. ' ' .. state .. ' ' .. opened .. ' ' .. fails)
end
local function save()
  redis.call('HSET', KEYS[1], 'state', state, 'fails', fails, 'opened', opened, 'gen', gen)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
local function count(kind, n)
  local bucket_ms, buckets = tonumber(ARGV[3]), tonumber(ARGV[4])
  local bucket = math.floor(now / bucket_ms)
  redis.call('HINCRBY', KEYS[3], bucket .. ':' .. kind, n)
  for _, field in ipairs(redis.call('HKEYS', KEYS[3])) do
    if tonumber(string.match(field, '^(%d+):')) <= bucket - buckets then
      redis.call('HDEL', KEYS[3], field)
    end
  end
  redis.call('PEXPIRE', KEYS[3], bucket_ms * (buckets + 1))
end
"""

#: A failed (non-probe) attempt. KEYS = T:br, T:ev, T:cnt.
#: ARGV = publish command, key ttl ms, bucket ms, buckets, threshold.
#: Opens at ``threshold`` consecutive failures; publishes when a streak starts (so other
#: processes know their next success must reset it) and when it opens.
#: Returns {state, fails, opened, gen, now}.
ON_FAILURE = (
    _NOW
    + _READ_BREAKER
    + """
count('fail', 1)
if state ~= 'closed' then return {state, fails, opened, gen, now} end
fails = fails + 1
if fails >= tonumber(ARGV[5]) then
  state, fails, opened, gen = 'open', 0, now, gen + 1
  save(); publish()
elseif fails == 1 then
  gen = gen + 1
  save(); publish()
else
  redis.call('HSET', KEYS[1], 'fails', fails)
end
return {state, fails, opened, gen, now}
"""
)

#: ``n`` successful attempts, batched. KEYS = T:br, T:ev, T:cnt.
#: ARGV = publish command, key ttl ms, bucket ms, buckets, n.
#: Resets a failure streak (and publishes that) if there is one; adds ``n`` to the counts.
#: A process sends it at once only when its cached view says ``fails > 0``; otherwise it
#: flushes its local success count now and then (zero round trips per healthy call).
ON_SUCCESSES = (
    _NOW
    + _READ_BREAKER
    + """
count('ok', tonumber(ARGV[5]))
if state == 'closed' and fails > 0 then
  fails, gen = 0, gen + 1
  save(); publish()
end
return {state, fails, opened, gen, now}
"""
)

#: Admission when the cached view is not ``closed``. KEYS = T:br, T:ev, T:probes.
#: ARGV = publish command, key ttl ms, recovery ms, max probes, lease ms, lease id.
#: Moves open -> half_open once the recovery time has passed (server clock) and grants a
#: probe lease if fewer than ``max`` unexpired leases exist.
#: Returns {state, granted 0/1, retry-after ms, gen, now}.
PROBE_ACQUIRE = (
    _NOW
    + """
local s = redis.call('HMGET', KEYS[1], 'state', 'opened', 'gen')
local state = s[1] or 'closed'
local opened = tonumber(s[2]) or 0
local gen = tonumber(s[3]) or 0
if state == 'closed' then return {state, 1, 0, gen, now} end
if state == 'open' then
  local wait = opened + tonumber(ARGV[3]) - now
  if wait > 0 then return {state, 0, wait, gen, now} end
  state, gen = 'half_open', gen + 1
  redis.call('HSET', KEYS[1], 'state', state, 'gen', gen)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  redis.call(ARGV[1], KEYS[2], gen .. ' ' .. state .. ' ' .. opened .. ' 0')
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  return {state, 0, tonumber(first[2]) - now, gen, now}
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[6])
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[5]))
return {state, 1, 0, gen, now}
"""
)

#: The end of a probe. KEYS = T:br, T:ev, T:probes. ARGV = publish command, key ttl ms,
#: lease id, outcome (1 success, 0 failure, -1 no verdict: give the lease back only).
#: Only a probe whose lease is still held may decide: a late one (expired lease, another
#: probe may be out) changes nothing. Releasing twice is a no-op.
#: Returns {state, lease was held 0/1, opened, gen, now}.
PROBE_DONE = (
    _NOW
    + """
local held = redis.call('ZREM', KEYS[3], ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'state', 'opened', 'gen')
local state = s[1] or 'closed'
local opened = tonumber(s[2]) or 0
local gen = tonumber(s[3]) or 0
local outcome = tonumber(ARGV[4])
if held == 1 and state == 'half_open' and outcome >= 0 then
  if outcome == 1 then state = 'closed' else state, opened = 'open', now end
  gen = gen + 1
  redis.call('HSET', KEYS[1], 'state', state, 'fails', 0, 'opened', opened, 'gen', gen)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  redis.call(ARGV[1], KEYS[2], gen .. ' ' .. state .. ' ' .. opened .. ' 0')
end
return {state, held, opened, gen, now}
"""
)


class HostKeys:
    """The keys of one host under its hash tag."""

    def __init__(self, prefix: str, host_key: str) -> None:
        self.tag = f"{{{prefix}:{host_key}}}"
        self.breaker = f"{self.tag}:br"
        self.probes = f"{self.tag}:probes"
        self.counts = f"{self.tag}:cnt"
        self.channel = f"{self.tag}:ev"

    def fixed(self, limit: int, period_ms: int) -> str:
        return f"{self.tag}:fw:{limit}:{period_ms}"

    def sliding(self, limit: int, period_ms: int) -> str:
        return f"{self.tag}:sw:{limit}:{period_ms}"


class Scripts:
    """The scripts registered on one client (plain, cluster or sentinel master)."""

    def __init__(self, client: Any, publish: str = "SPUBLISH") -> None:
        self.client = client
        self.publish = publish
        self.permit_fixed = client.register_script(PERMIT_FIXED)
        self.permit_sliding = client.register_script(PERMIT_SLIDING)
        self.on_failure = client.register_script(ON_FAILURE)
        self.on_successes = client.register_script(ON_SUCCESSES)
        self.probe_acquire = client.register_script(PROBE_ACQUIRE)
        self.probe_done = client.register_script(PROBE_DONE)
        self._seq = 0
        self._id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()

    def unique(self) -> str:
        with self._lock:
            self._seq += 1
            return f"{self._id}-{self._seq}"

    def fixed(self, keys: HostKeys, limit: int, period_ms: int, cost: int = 1) -> list[Any]:
        return list(self.permit_fixed([keys.fixed(limit, period_ms)], [limit, period_ms, cost]))

    def sliding(self, keys: HostKeys, limit: int, period_ms: int, cost: int = 1) -> list[Any]:
        return list(
            self.permit_sliding(
                [keys.sliding(limit, period_ms)], [limit, period_ms, cost, self.unique()]
            )
        )

    def _breaker_args(self) -> list[Any]:
        return [self.publish, 86_400_000, 10_000, 6]  # ttl 1 day, 6 buckets of 10 s

    def failure(self, keys: HostKeys, threshold: int) -> list[Any]:
        return list(
            self.on_failure(
                [keys.breaker, keys.channel, keys.counts], [*self._breaker_args(), threshold]
            )
        )

    def successes(self, keys: HostKeys, n: int) -> list[Any]:
        return list(
            self.on_successes([keys.breaker, keys.channel, keys.counts], [*self._breaker_args(), n])
        )

    def acquire(
        self, keys: HostKeys, recovery_ms: int, max_probes: int, lease_ms: int, lease: str
    ) -> list[Any]:
        return list(
            self.probe_acquire(
                [keys.breaker, keys.channel, keys.probes],
                [self.publish, 86_400_000, recovery_ms, max_probes, lease_ms, lease],
            )
        )

    def done(self, keys: HostKeys, lease: str, outcome: int) -> list[Any]:
        return list(
            self.probe_done(
                [keys.breaker, keys.channel, keys.probes],
                [self.publish, 86_400_000, lease, outcome],
            )
        )


# --------------------------------------------------------------------------- self-check
def make_client(desc: tuple[Any, ...]) -> Any:
    kind = desc[0]
    if kind == "single":
        return redis.Redis.from_url(desc[1])
    if kind == "cluster":
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in desc[1]])
    from redis.sentinel import Sentinel

    return Sentinel([("127.0.0.1", p) for p in desc[1]]).master_for(desc[2])


def _permit_worker(desc: tuple[Any, ...], kind: str, tag: str, start_at: float) -> int:
    scripts = Scripts(make_client(desc))
    keys = HostKeys("rcm", tag)
    call = scripts.fixed if kind == "fixed" else scripts.sliding
    call(HostKeys("warm", tag), 10**6, 60_000)
    while time.time() < start_at:
        time.sleep(0.001)
    return sum(int(call(keys, 300, 60_000)[0]) for _ in range(200))


def exact(desc: tuple[Any, ...], kind: str, tag: str) -> int:
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 3
    with context.Pool(3) as pool:
        jobs = [pool.apply_async(_permit_worker, (desc, kind, tag, start_at)) for _ in range(3)]
        return sum(job.get(60) for job in jobs)


def one_round_trip(ports: list[int], action: Callable[[], Any]) -> list[str]:
    """The client commands ``action`` sends (after the script is loaded)."""
    action()
    with Monitor(ports) as seen:
        action()
    chatter = {"PING", "INFO", "PUBLISH"}  # sentinels' own traffic; scripts' are in_script
    return [s.name for s in seen.seen if not s.in_script and s.name not in chatter]


def check(name: str, desc: tuple[Any, ...], ports: list[int], keyslot: Any) -> dict[str, Any]:
    client = make_client(desc)
    info = client.info("server") if name != "cluster" else None
    version = (info or {}).get("redis_version") or "7"
    publish = "SPUBLISH" if int(str(version).split(".")[0]) >= 7 else "PUBLISH"
    scripts = Scripts(client, publish)
    keys = HostKeys("rcm", f"http://{name}.example:443")
    out: dict[str, Any] = {"publish": publish}
    out["exact_fixed_300_of_600"] = exact(desc, "fixed", f"exact-fixed-{name}")
    out["exact_sliding_300_of_600"] = exact(desc, "sliding", f"exact-sliding-{name}")
    # refusal carries its retry-after in the same round trip
    for _ in range(3):
        scripts.sliding(keys, 3, 2000)
    refused = scripts.sliding(keys, 3, 2000)
    out["sliding_refused"] = {"granted": refused[0], "retry_after_ms": refused[2]}
    out["round_trips"] = {
        "permit_fixed": one_round_trip(ports, lambda: scripts.fixed(keys, 10**6, 1000)),
        "permit_sliding": one_round_trip(ports, lambda: scripts.sliding(keys, 10**6, 1000)),
        "on_successes(n=50)": one_round_trip(ports, lambda: scripts.successes(keys, 50)),
    }
    # breaker: subscribe to the channel, trip it, recover with leases
    received: list[str] = []
    owner, pubsub = _subscribe(desc, client, keys.channel, publish)
    listener = threading.Thread(target=_drain, args=(pubsub, received), daemon=True)
    listener.start()
    trips = [scripts.failure(keys, 3)[:2] for _ in range(3)]
    out["failures_to_open"] = trips
    out["acquire_while_open"] = scripts.acquire(keys, 400, 2, 300, "a")[:3]
    time.sleep(0.45)
    leases = [scripts.acquire(keys, 400, 2, 300, lease)[:3] for lease in ("a", "b", "c")]
    out["acquire_3_leases_max_2"] = leases
    out["release_unknown_and_twice"] = [
        scripts.done(keys, "zzz", -1)[1],
        scripts.done(keys, "b", -1)[1],
        scripts.done(keys, "b", -1)[1],
    ]
    time.sleep(0.35)  # lease "a" expires: its holder died or overran
    out["late_probe_cannot_decide"] = scripts.done(keys, "a", 1)[:2]
    out["probe_count_never_negative"] = int(client.zcard(keys.probes))
    lease = scripts.acquire(keys, 400, 2, 300, "d")[:3]
    out["new_lease_after_expiry"] = lease
    out["probe_success_closes"] = scripts.done(keys, "d", 1)[:2]
    out["round_trips"]["on_failure"] = one_round_trip(ports, lambda: scripts.failure(keys, 100))
    out["round_trips"]["probe_acquire"] = one_round_trip(
        ports, lambda: scripts.acquire(keys, 400, 2, 300, "e")
    )
    out["round_trips"]["probe_done"] = one_round_trip(ports, lambda: scripts.done(keys, "e", -1))
    time.sleep(0.3)
    out["channel_messages"] = received
    pubsub.close()
    owner.close()
    if keyslot is not None:
        all_keys = [
            keys.breaker,
            keys.probes,
            keys.counts,
            keys.channel,
            keys.fixed(1, 1),
            keys.sliding(1, 1),
        ]
        out["slots"] = sorted({keyslot(k) for k in all_keys})
    out["counts_hash"] = {
        (k.decode() if isinstance(k, bytes) else k): int(v)
        for k, v in client.hgetall(keys.counts).items()
    }
    client.close()
    return out


def _subscribe(
    desc: tuple[Any, ...], client: Any, channel: str, publish: str
) -> tuple[redis.Redis, Any]:
    """A subscription and the client that owns its connection.

    Keep the client referenced: redis-py closes a client's connection pool when the client
    is garbage collected, which drops the pub/sub connection too; PubSub then reconnects and
    resubscribes by itself, and whatever was published in between is lost.
    """
    if desc[0] == "cluster":
        node = client.get_node_from_key(channel)
        target = redis.Redis(host=node.host, port=node.port)
    elif desc[0] == "sentinel":
        from redis.sentinel import Sentinel

        host, port = Sentinel([("127.0.0.1", p) for p in desc[1]]).discover_master(desc[2])
        target = redis.Redis(host=host, port=port)
    else:
        target = redis.Redis.from_url(desc[1])
    pubsub = target.pubsub()
    if publish == "SPUBLISH":
        pubsub.ssubscribe(channel)
    else:
        pubsub.subscribe(channel)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the confirmation: subscribed before any change
        message = pubsub.get_message(timeout=0.1)
        if message and message["type"] in ("subscribe", "ssubscribe", b"subscribe", b"ssubscribe"):
            break
    return target, pubsub


def _drain(pubsub: Any, into: list[str]) -> None:
    try:
        while True:
            message = pubsub.get_message(timeout=0.1)
            if message and message["type"] in ("message", "smessage"):
                data = message["data"]
                into.append(data.decode() if isinstance(data, bytes) else str(data))
    except Exception:
        return


def main() -> None:
    from tests.rediscluster import LocalRedisCluster
    from tests.redissentinel import LocalSentinel
    from tests.redisserver import RedisServer

    with RedisServer() as single, LocalRedisCluster() as cluster, LocalSentinel() as sentinel:
        setups = [
            ("single", ("single", single.url), [single.port], None),
            (
                "cluster",
                ("cluster", [n.port for n in cluster.nodes]),
                [n.port for n in cluster.primaries()],
                cluster.keyslot,
            ),
            (
                "sentinel",
                ("sentinel", [n.port for n in sentinel.sentinel_nodes], sentinel.service),
                [sentinel.primary.port],
                None,
            ),
        ]
        for name, desc, ports, keyslot in setups:
            print(json.dumps({name: check(name, desc, ports, keyslot)}, default=repr))


if __name__ == "__main__":
    main()
