"""The Redis side of shared state: one key layout per host and the Lua scripts that use it.

Every key of one host sits under one hash tag, ``T = {<prefix>:<host key>}``, so that on a
Redis Cluster all of them live in one slot and every script below runs on one node in one
round trip (on a single node and behind Sentinel alike):

=====================  ========  ====================================================
key                    type      content
=====================  ========  ====================================================
``T:br``               hash      breaker: ``state`` (pybreaker's names), ``fails``
                                 (consecutive failures), ``opened`` (ms, Redis clock),
                                 ``gen`` (version, bumped on every change), ``pause``
                                 (ms, Redis clock: the host is paused until then),
                                 ``news`` / ``dirty`` (last message, one kept back)
``T:probes``           zset      half-open probe leases: member = lease id, score = expiry
                                 (ms); renewed while the probe is in flight
``T:win:<ms>``         hash      the failure-rate window of ``<ms>``: counts per bucket
                                 (``<bucket>:c|f|s|x``: calls, failures, slow, either)
``T:fw:<n>:<ms>``      hash      fixed-window permits: ``w`` (window index), ``n`` (used)
``T:sw:<n>:<ms>``      zset      sliding-window permits: one member per permit, score =
                                 grant time, or its lease's end (ms)
=====================  ========  ====================================================

Changes are published on one channel per prefix, ``<prefix>:rcm:events`` (plain
``PUBLISH``: on a cluster it reaches every node, so a subscriber needs one connection to any
node), as ``"<gen> <state> <fails> <opened> <pause> <now> <host key>"``: every transition
and pause at once; news of a failure streak (started, reset) at most once per
:data:`STREAK_NEWS_MS` per host.

Why scripts and not the libraries' Redis code:

- pybreaker's ``CircuitRedisStorage`` reads Redis on every state access (5 round trips
  per call here), sets the opening time with WATCH/MULTI (3 round trips; it raises
  ``AttributeError`` on redis-py 5.0's ``RedisCluster``, which has no ``transaction``),
  stores it in whole seconds, compares the failure count to the threshold after an
  ``INCR`` in a second step, and tells no one of a change. The scripts make each
  transition one atomic round trip on the Redis clock and publish it, so every process can
  keep pybreaker's state in memory and read it for free (see :mod:`._fleet_host`).
- ``limits`` costs a second round trip for the wait after a refusal, stamps its moving
  window with each client's own clock (skew between machines breaks exactness), starts its
  fixed window at the first hit, names keys outside the host's slot for the
  sliding-window counter, and its storage needs a ``connection_pool`` a ``RedisCluster``
  does not have. The permit scripts are exact on the Redis clock, answer the wait in the
  same round trip, and live in the host's slot.

Every script reads Redis's ``TIME`` (never a client's clock) and returns it, so a caller
converts Redis times to its own clocks by differences, without estimating an offset.
Numbers that can exceed 14 digits are formatted with ``%.0f`` (Lua would print them in
exponent form).
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple, Optional

__all__ = [
    "CHECK",
    "OUTCOME",
    "PAUSE",
    "PERMIT_FIXED",
    "PERMIT_SLIDING",
    "PROBE_ACQUIRE",
    "PROBE_DONE",
    "READ",
    "RENEW",
    "STREAK_NEWS_MS",
    "SUCCESSES",
    "HostKeys",
    "Script",
    "View",
    "parse_message",
    "parse_view",
    "run",
]

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function num(x) return string.format('%.0f', x) end
"""

#: The shortest interval, ms, between two messages about one host's failure streak (its
#: start, its reset); transitions and pauses are published at once. It bounds what a
#: partial failure costs in pub/sub: at most 1000 / STREAK_NEWS_MS messages per second per
#: host, each delivered to every subscribed process.
STREAK_NEWS_MS = 20

# KEYS[1] = T:br. ARGV[1] = channel, ARGV[2] = host key, ARGV[3] = key ttl (ms).
# A missing hash reads as a closed, clean breaker whose version is the current time: any
# version written before it was flushed or expired is older, so caches accept it.
_BREAKER = """
local b = redis.call('HMGET', KEYS[1], 'state', 'fails', 'opened', 'gen', 'pause', 'news',
                     'dirty')
local state = b[1] or 'closed'
local fails = tonumber(b[2]) or 0
local opened = tonumber(b[3]) or 0
local gen = tonumber(b[4]) or now * 1000
local pause = tonumber(b[5]) or 0
local news = tonumber(b[6]) or 0
local dirty = tonumber(b[7]) or 0
local NEWS_MS = STREAK_NEWS_MS
local function view(code, extra)
  return {state, fails, num(opened), num(gen), num(pause), num(now), code, extra or 0, dirty}
end
local function save()
  redis.call('HSET', KEYS[1], 'state', state, 'fails', fails, 'opened', num(opened),
             'gen', num(gen), 'pause', num(pause), 'news', num(news), 'dirty', dirty)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
local function publish()
  news, dirty = now, 0
  redis.call('PUBLISH', ARGV[1], table.concat({num(gen), state, fails, num(opened),
             num(pause), num(now), ARGV[2]}, ' '))
end
-- News of a failure streak (it started, it was reset) is published at most once per
-- NEWS_MS per host; a change kept back is published by the first script after that.
local function announce()
  if now - news >= NEWS_MS then publish() else dirty = 1 end
end
local function catch_up()
  if dirty == 1 and now - news >= NEWS_MS then
    publish()
    return true
  end
  return false
end
""".replace("STREAK_NEWS_MS", str(STREAK_NEWS_MS))

# The failure-rate window: one hash, fields "<bucket>:<c|f|s|x>".
_WINDOW = """
local function add_counts(key, bucket_ms, buckets, c, f, s, x)
  local bucket = num(math.floor(now / bucket_ms))
  local names, values = {'c', 'f', 's', 'x'}, {c, f, s, x}
  for i = 1, 4 do
    if values[i] > 0 then redis.call('HINCRBY', key, bucket .. ':' .. names[i], values[i]) end
  end
  redis.call('PEXPIRE', key, bucket_ms * (buckets + 1))
end
local function window_totals(key, bucket_ms, buckets)
  local oldest = math.floor(now / bucket_ms) - buckets + 1
  local sums = {c = 0, f = 0, s = 0, x = 0}
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do
    local bucket, kind = string.match(flat[i], '^(%d+):(%a)$')
    if bucket and tonumber(bucket) >= oldest then
      sums[kind] = sums[kind] + tonumber(flat[i + 1])
    else
      redis.call('HDEL', key, flat[i])
    end
  end
  return sums
end
"""


class Script:
    """One Lua script: its source and SHA1, run with :func:`run`."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis's script id

    def __repr__(self) -> str:
        return f"<Script {self.name}>"


#: Read the breaker hash. KEYS = T:br. Returns the view.
READ = Script("read", _PRELUDE + _BREAKER + "return view(0)")

#: An attempt that may open the breaker: a failure, or (with a ratio rule) a slow success.
#: KEYS = T:br, T:win. ARGV = channel, host, ttl, failed (1/0), threshold, failure rate
#: (0: no ratio rule), minimum calls, bucket ms, buckets, then the counts to add (calls,
#: failures, slow, failed-or-slow; this attempt's included). Returns the view, code 1 when
#: this attempt opened the breaker. Publishes when a streak starts, resets or opens.
OUTCOME = Script(
    "outcome",
    _PRELUDE
    + _BREAKER
    + _WINDOW
    + """
if state ~= 'closed' then return view(0) end
local failed = ARGV[4] == '1'
local rate, bucket_ms, buckets = tonumber(ARGV[6]), tonumber(ARGV[8]), tonumber(ARGV[9])
if rate > 0 then
  add_counts(KEYS[2], bucket_ms, buckets, tonumber(ARGV[10]), tonumber(ARGV[11]),
             tonumber(ARGV[12]), tonumber(ARGV[13]))
end
local trip, changed = false, false
if failed then
  fails = fails + 1
  trip = fails >= tonumber(ARGV[5])
  changed = fails == 1
elseif fails > 0 then
  fails, changed = 0, true
end
if not trip and rate > 0 then
  local sums = window_totals(KEYS[2], bucket_ms, buckets)
  trip = sums.c >= tonumber(ARGV[7]) and sums.x / sums.c >= rate
end
if trip then
  state, fails, opened, gen = 'open', 0, now, gen + 1
  redis.call('DEL', KEYS[2])
  publish()
elseif changed then
  gen = gen + 1
  announce()
else
  changed = catch_up()
end
if changed or trip or failed then save() end
if trip then return view(1) end
return view(0)
""",
)

#: Successes, batched; and the reset of a failure streak. KEYS = T:br, T:win.
#: ARGV = channel, host, ttl, reset (1/0), bucket ms, buckets, counts (c, f, s, x).
#: Counts are added only while closed (nothing is recorded while open or half-open).
SUCCESSES = Script(
    "successes",
    _PRELUDE
    + _BREAKER
    + _WINDOW
    + """
if state == 'closed' then
  local calls = tonumber(ARGV[7])
  if calls > 0 then
    add_counts(KEYS[2], tonumber(ARGV[5]), tonumber(ARGV[6]), calls, tonumber(ARGV[8]),
               tonumber(ARGV[9]), tonumber(ARGV[10]))
  end
  if ARGV[4] == '1' and fails > 0 then
    fails, gen = 0, gen + 1
    announce()
    save()
  elseif catch_up() then
    save()
  end
end
return view(0)
""",
)

#: Admission when the breaker is not closed. KEYS = T:br, T:probes.
#: ARGV = channel, host, ttl, recovery ms, max probes, lease ms, lease id.
#: Moves open -> half-open once the recovery time has passed (Redis clock), then grants a
#: lease if fewer than ``max`` unexpired leases exist. Code: 0 refused (extra = ms to wait),
#: 1 probe lease granted, 2 closed (a normal attempt).
PROBE_ACQUIRE = Script(
    "probe_acquire",
    _PRELUDE
    + _BREAKER
    + """
if state == 'closed' then return view(2) end
if state == 'open' then
  local wait = opened + tonumber(ARGV[4]) - now
  if wait > 0 then return view(0, wait) end
  state, gen = 'half-open', gen + 1
  publish()
  save()
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', num(now))
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return view(0, tonumber(first[2]) - now)
end
local lease = tonumber(ARGV[6])
redis.call('ZADD', KEYS[2], num(now + lease), ARGV[7])
if redis.call('PTTL', KEYS[2]) < lease then redis.call('PEXPIRE', KEYS[2], lease) end
return view(1)
""",
)

#: The end of a probe. KEYS = T:br, T:probes, T:win. ARGV = channel, host, ttl, lease id,
#: outcome (1 success, 0 failure, -1 no verdict). Only a probe whose lease is still held
#: decides (closes, or opens again); giving back a lease twice, or an expired one, changes
#: nothing. Code 1 when this probe decided.
PROBE_DONE = Script(
    "probe_done",
    _PRELUDE
    + _BREAKER
    + """
local held = redis.call('ZREM', KEYS[2], ARGV[4])
local outcome = tonumber(ARGV[5])
if held == 1 and state == 'half-open' and outcome >= 0 then
  if outcome == 1 then state = 'closed' else state, opened = 'open', now end
  fails, gen = 0, gen + 1
  redis.call('DEL', KEYS[3])
  publish()
  save()
  return view(1)
end
return view(0)
""",
)

#: Renew the leases of probes still in flight. KEYS = T:probes. ARGV = lease ms, ids...
#: A lease that expired (its holder stalled longer than a lease) is not brought back.
RENEW = Script(
    "renew",
    _PRELUDE
    + """
local lease, renewed = tonumber(ARGV[1]), 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], num(now + lease), ARGV[i])
    renewed = renewed + 1
  end
end
if renewed > 0 and redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return renewed
""",
)

#: Pause the host for every process (extend only). KEYS = T:br.
#: ARGV = channel, host, ttl, pause ms, cap ms. Publishes when the pause grew.
PAUSE = Script(
    "pause",
    _PRELUDE
    + _BREAKER
    + """
local pause_to = now + math.min(tonumber(ARGV[4]), tonumber(ARGV[5]))
if pause_to > pause then
  pause = pause_to
  publish()
  save()
end
return view(0)
""",
)

#: Fixed-window permits, windows aligned to the Redis clock. KEYS = T:fw:<n>:<ms>.
#: ARGV = limit, period ms, wanted, returned window, returned count.
#: First gives back the unused permits of a lease of window ``returned window`` (when that
#: window is still the current one); then grants ``min(wanted, max(1, free // 2))`` permits
#: (``wanted`` 0: none, a give-back only). Returns {granted, remaining, ms until the reset,
#: window}.
PERMIT_FIXED = Script(
    "permit_fixed",
    _PRELUDE
    + """
local limit, period, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window = math.floor(now / period)
local cur = redis.call('HMGET', KEYS[1], 'w', 'n')
local used = 0
if tonumber(cur[1]) == window then used = tonumber(cur[2]) or 0 end
local reset = (window + 1) * period - now
local back = tonumber(ARGV[5])
if back > 0 and tonumber(ARGV[4]) == window and used > 0 then
  used = math.max(0, used - back)
  redis.call('HSET', KEYS[1], 'w', num(window), 'n', used)
  redis.call('PEXPIRE', KEYS[1], reset)
end
local free = limit - used
if wanted < 1 or free < 1 then return {0, free, reset, num(window)} end
local granted = math.min(wanted, math.max(1, math.floor(free / 2)))
redis.call('HSET', KEYS[1], 'w', num(window), 'n', used + granted)
redis.call('PEXPIRE', KEYS[1], reset)
return {granted, free - granted, reset, num(window)}
""",
)

#: Sliding-window permits: never more than ``limit`` in any ``period``. KEYS = T:sw:<n>:<ms>.
#: ARGV = limit, period ms, wanted, lease id, lease ms, returned lease id, returned from,
#: returned to. One member per permit (``<lease id>:<i>``). First removes the unused
#: members ``from..to`` of a returned lease; then grants ``min(wanted, max(1, free // 2))``
#: permits. One permit is stamped with the grant time; a lease of more is stamped with the
#: lease's end (grant + lease ms), so each of its permits, used at any time before that
#: end, stays counted for a whole period after its use: the window still never holds more
#: than ``limit`` uses. Returns {granted, remaining, ms until a permit leaves the window}.
PERMIT_SLIDING = Script(
    "permit_sliding",
    _PRELUDE
    + """
local limit, period, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lease = tonumber(ARGV[5])
if ARGV[6] ~= '' then
  for i = tonumber(ARGV[7]), tonumber(ARGV[8]) do
    redis.call('ZREM', KEYS[1], ARGV[6] .. ':' .. i)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', num(now - period))
local used = redis.call('ZCARD', KEYS[1])
local free = limit - used
if wanted < 1 then return {0, free, 0} end
if free < 1 then
  local entry = redis.call('ZRANGE', KEYS[1], used - limit, used - limit, 'WITHSCORES')
  return {0, free, tonumber(entry[2]) + period - now}
end
local granted = math.min(wanted, math.max(1, math.floor(free / 2)))
local stamp = now
if granted > 1 then stamp = now + lease end
local members = {}
for i = 1, granted do
  members[#members + 1] = num(stamp)
  members[#members + 1] = ARGV[4] .. ':' .. i
end
redis.call('ZADD', KEYS[1], unpack(members))
redis.call('PEXPIRE', KEYS[1], period + lease)
return {granted, free - granted, 0}
""",
)

#: Run once at construction: every command the scripts use, on two keys of the prefix and
#: the channel, so a missing permission (an ACL user's commands, keys or channels) is
#: found then, not on the first call. KEYS = two keys under one tag. ARGV = channel.
CHECK = Script(
    "check",
    _PRELUDE
    + """
redis.call('HSET', KEYS[1], 'a', 1)
redis.call('HINCRBY', KEYS[1], 'a', 1)
redis.call('HMGET', KEYS[1], 'a')
redis.call('HGETALL', KEYS[1])
redis.call('HDEL', KEYS[1], 'a')
redis.call('ZADD', KEYS[2], num(now), 'a')
redis.call('ZSCORE', KEYS[2], 'a')
redis.call('ZCARD', KEYS[2])
redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[2], 1000)
redis.call('PTTL', KEYS[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', 0)
redis.call('ZREM', KEYS[2], 'a')
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[1], '')
return 'ok'
""",
)


def run(client: Any, script: Script, keys: list[str], args: list[Any], direct: bool = False) -> Any:
    """Run ``script`` in one round trip (two the first time a node sees it).

    ``EVALSHA``, and ``EVAL`` (which also caches the script) when the node does not know it
    yet: after a restart, a failover, or on a new cluster node. ``SCRIPT LOAD`` is never
    sent: on a cluster it goes to every primary and fails while one is down. ``direct``:
    send ``EVALSHA`` on a pooled connection, the short way (:mod:`._redis_wire`).
    """
    from redis.exceptions import NoScriptError, ResponseError

    from ._redis_wire import Fallback, call

    try:
        if direct:
            try:
                return call(client, "EVALSHA", script.sha, len(keys), *keys, *args)
            except Fallback:
                pass
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        pass
    except ResponseError as exc:  # some cluster versions do not map NOSCRIPT
        if not str(exc).startswith("NOSCRIPT"):
            raise
    return client.eval(script.source, len(keys), *keys, *args)


class HostKeys:
    """The keys of one host under its hash tag ``{<prefix>:<host key>}``.

    Args:
        prefix: The manager's ``redis_prefix``.
        host: The host key.
    """

    __slots__ = ("breaker", "host", "probes", "tag")

    def __init__(self, prefix: str, host: str) -> None:
        self.host = host
        self.tag = f"{{{prefix}:{host}}}"
        self.breaker = f"{self.tag}:br"
        self.probes = f"{self.tag}:probes"

    def window(self, window_ms: int) -> str:
        """The failure-rate window of ``window_ms``."""
        return f"{self.tag}:win:{window_ms}"

    def fixed(self, limit: int, period_ms: int) -> str:
        """The fixed-window permits of ``limit`` per ``period_ms``."""
        return f"{self.tag}:fw:{limit}:{period_ms}"

    def sliding(self, limit: int, period_ms: int) -> str:
        """The sliding-window permits of ``limit`` per ``period_ms``."""
        return f"{self.tag}:sw:{limit}:{period_ms}"


class View(NamedTuple):
    """One host's shared breaker state and pause, as a script or a message reported it.

    Attributes:
        state: ``"closed"``, ``"open"`` or ``"half-open"``.
        fails: Consecutive failures (closed).
        opened: When it last opened, ms on the Redis clock (0: never).
        gen: The version; a cache keeps the highest it has seen.
        pause: Until when the host is paused, ms on the Redis clock (0: never).
        now: The Redis clock when this was read, ms.
        held_back: A change of the failure streak was not published yet (a script must
            run after :data:`STREAK_NEWS_MS` to publish it).
    """

    state: str
    fails: int
    opened: int
    gen: int
    pause: int
    now: int
    held_back: bool = False


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_view(reply: Any) -> tuple[View, int, int]:
    """A breaker script's reply as ``(view, code, extra)``."""
    state, fails, opened, gen, pause, now, code, extra, dirty = reply
    view = View(
        _text(state), int(fails), int(_text(opened)), int(_text(gen)), int(_text(pause)),
        int(_text(now)), int(dirty) == 1,
    )  # fmt: skip
    return view, int(code), int(extra)


def parse_message(data: Any) -> Optional[tuple[str, View]]:
    """A message of the events channel as ``(host key, view)``; None if it is not one."""
    try:
        gen, state, fails, opened, pause, now, host = _text(data).split(" ", 6)
        return host, View(state, int(fails), int(opened), int(gen), int(pause), int(now))
    except ValueError:
        return None
