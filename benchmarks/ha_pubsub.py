"""Pub/sub for breaker-state invalidation: what works in cluster mode, latency, failover.

1. Steady-state propagation latency of a published message on loopback: one node
   (PUBLISH/SUBSCRIBE), a cluster with classic PUBLISH (broadcast over the cluster bus)
   and with sharded SPUBLISH/SSUBSCRIBE on a hash-tagged channel, a sentinel primary.
2. Keyspace notifications in a cluster: emitted only by the node holding the key; a
   ``RedisCluster.pubsub()`` subscriber picks its node by the *channel's* slot, so it hears
   ``__keyspace@0__:{tag}...`` only when the channel carries the key's hash tag.
3. ``Invalidations``: a minimal subscriber that survives a primary kill. It subscribes on
   the node owning the channel's slot (sharded) or the sentinel's current primary, and on
   any error or server-side ``sunsubscribe`` it backs off, lets the cluster client refresh
   its slot map, subscribes again and calls ``on_resubscribe`` (messages published while it
   was away are lost: pub/sub is at-most-once, so the cache must be dropped then).
   Measured: time from kill to resubscribed, to the first message, and messages lost.

Run: ``PYTHONPATH=src python -m benchmarks.ha_pubsub``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any, Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from benchmarks.ha_tools import percentile
from tests.rediscluster import LocalRedisCluster
from tests.redissentinel import LocalSentinel
from tests.redisserver import RedisServer

TAG = "{rcm:http://api.example.com:443}"
CHANNEL = f"{TAG}:breaker"  # one channel per prefix + host key, in the keys' slot
MESSAGES = 1000
# The subscriber's connection must not retry on its own: redis-py's default Retry (3 tries,
# backoff) reconnects to the *same*, dead address and blocks get_message() for ~3.5 s;
# the subscriber loop below finds the new owner instead.
NO_RETRY: dict[str, Any] = {
    "socket_timeout": 1,
    "socket_connect_timeout": 0.5,
    "retry": Retry(NoBackoff(), 0),
}


class Invalidations:
    """Listen to one invalidation channel for good: resubscribe after any failure.

    Args:
        connect: Returns a client connected to the node to subscribe on (called again
            after every failure; it must find the *current* owner or primary).
        channel: The channel name.
        sharded: SSUBSCRIBE (cluster, Redis 7+) instead of SUBSCRIBE.
        on_message: Called with each payload (bytes).
        on_resubscribe: Called after every (re)subscription is confirmed: whatever was
            published in between is lost, so cached state must be dropped here.
    """

    def __init__(
        self,
        connect: Callable[[], redis.Redis],
        channel: str,
        sharded: bool,
        on_message: Callable[[bytes], None],
        on_resubscribe: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._sharded = sharded
        self._on_message = on_message
        self._on_resubscribe = on_resubscribe
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="invalidations")
        self.subscribed = threading.Event()
        self.events: list[tuple[float, str]] = []  # (monotonic, what) for the report

    def start(self) -> Invalidations:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            pubsub: Any = None
            try:
                # Keep the client referenced while its pubsub lives: redis-py closes the
                # pool of a garbage-collected client, which drops the subscription.
                client = self._connect()
                pubsub = client.pubsub()
                if self._sharded:
                    pubsub.ssubscribe(self._channel)
                else:
                    pubsub.subscribe(self._channel)
                last_ping = time.monotonic()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    now = time.monotonic()
                    if message is None:
                        if now - last_ping > 1.0:  # a silent peer (no RST) is found here
                            pubsub.ping()
                            last_ping = now
                        continue
                    kind = message["type"]
                    kind = kind.decode() if isinstance(kind, bytes) else kind
                    if kind in ("subscribe", "ssubscribe"):
                        self.subscribed.set()
                        self.events.append((now, "subscribed"))
                        backoff = 0.05
                        self._on_resubscribe()
                    elif kind in ("message", "smessage"):
                        self._on_message(message["data"])
                    elif kind in ("unsubscribe", "sunsubscribe"):
                        # the server dropped us: the slot moved away from this node
                        raise redis.ConnectionError("unsubscribed by the server")
            except (redis.RedisError, OSError) as exc:
                self.subscribed.clear()
                self.events.append((time.monotonic(), f"lost: {type(exc).__name__}"))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 0.2)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection
                        pubsub.close()


class Probe:
    """Publishes timestamped messages; records their arrival at a subscriber."""

    def __init__(self, publish: Callable[[bytes], Any]) -> None:
        self._publish = publish
        self.sent: dict[int, float] = {}
        self.failed_publishes = 0
        self.received: dict[int, float] = {}
        self.resubscribed: list[float] = []
        self._seq = 0
        self._lock = threading.Lock()

    def on_message(self, data: bytes) -> None:
        self.received[int(data)] = time.perf_counter()

    def on_resubscribe(self) -> None:
        self.resubscribed.append(time.monotonic())

    def publish_one(self) -> None:
        with self._lock:
            self._seq += 1
            seq = self._seq
        at = time.perf_counter()
        try:
            self._publish(str(seq).encode())
            self.sent[seq] = at
        except (redis.RedisError, OSError):
            self.failed_publishes += 1

    def latencies_ms(self) -> list[float]:
        return [(self.received[s] - t) * 1000 for s, t in self.sent.items() if s in self.received]


def steady_latency(
    connect: Callable[[], redis.Redis],
    publish: Callable[[bytes], Any],
    sharded: bool,
) -> dict[str, Any]:
    probe = Probe(publish)
    listener = Invalidations(connect, CHANNEL, sharded, probe.on_message, probe.on_resubscribe)
    listener.start()
    if not listener.subscribed.wait(5):
        listener.stop()
        return {"error": "never subscribed", "events": listener.events}
    for _ in range(MESSAGES):
        probe.publish_one()
        time.sleep(0.001)
    time.sleep(0.3)
    listener.stop()
    lat = probe.latencies_ms()
    return {
        "received": f"{len(lat)}/{len(probe.sent)}",
        "p50_ms": round(percentile(lat, 0.5), 3),
        "p99_ms": round(percentile(lat, 0.99), 3),
        "max_ms": round(max(lat, default=float("nan")), 3),
    }


def through_failover(
    connect: Callable[[], redis.Redis],
    publish: Callable[[bytes], Any],
    sharded: bool,
    kill: Callable[[], None],
    wait_failover: Callable[[], None],
) -> dict[str, Any]:
    probe = Probe(publish)
    listener = Invalidations(connect, CHANNEL, sharded, probe.on_message, probe.on_resubscribe)
    listener.start()
    if not listener.subscribed.wait(5):
        listener.stop()
        return {"error": "never subscribed"}
    stop = threading.Event()

    def publisher() -> None:
        while not stop.is_set():
            probe.publish_one()
            time.sleep(0.01)

    thread = threading.Thread(target=publisher, daemon=True)
    thread.start()
    time.sleep(0.5)
    killed_mono = time.monotonic()
    kill()
    killed_perf = time.perf_counter()  # messages sent from here on went to a dead or new node
    wait_failover()
    failover_s = time.monotonic() - killed_mono
    time.sleep(3.0)
    stop.set()
    thread.join(5)
    time.sleep(0.3)
    listener.stop()
    resub = [t - killed_mono for t in probe.resubscribed if t > killed_mono]
    after = sorted(t for s, t in probe.received.items() if probe.sent.get(s, 0) > killed_perf)
    lost = [s for s in probe.sent if s not in probe.received]
    lost_after_resub = [
        s
        for s in lost
        if resub and probe.sent[s] - killed_perf > resub[0] + 0.05  # sent well after it
    ]
    return {
        "failover_s": round(failover_s, 2),
        "resubscribed_after_kill_s": [round(t, 2) for t in resub],
        "first_message_after_kill_s": round(after[0] - killed_perf, 2) if after else None,
        "published_ok": len(probe.sent),
        "publish_errors": probe.failed_publishes,
        "lost": len(lost),
        "lost_after_resubscribed": len(lost_after_resub),
        "events": [
            f"+{t - killed_mono:.2f}s {what}" for t, what in listener.events if t > killed_mono
        ][:6],
    }


def keyspace_in_cluster(cluster: LocalRedisCluster) -> dict[str, Any]:
    """Keyspace notifications: node-local; a cluster pubsub hears them only via the hash tag."""
    for node in cluster.nodes:
        node.command("CONFIG", "SET", "notify-keyspace-events", "K$")
    client = cluster.client()
    out: dict[str, Any] = {}
    try:
        untagged = next(
            key
            for key in (f"rcm:http://api-{i}.example.com:443:pybreaker:state" for i in range(100))
            if cluster.primary_for(key) is not cluster.primary_for(f"__keyspace@0__:{key}")
        )
        for label, key in [("tagged", f"{TAG}:pybreaker:state"), ("untagged", untagged)]:
            channel = f"__keyspace@0__:{key}"
            pubsub = client.pubsub()
            pubsub.subscribe(channel)
            pubsub.get_message(timeout=1)  # the confirmation
            node = pubsub.get_pubsub_node() if hasattr(pubsub, "get_pubsub_node") else None
            client.set(key, "open")
            got = None
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and got is None:
                message = pubsub.get_message(timeout=0.2)
                if message and message["type"] in ("message", b"message"):
                    got = message["data"]
            owner = cluster.primary_for(key)
            out[label] = {
                "key": key,
                "key_slot": cluster.keyslot(key),
                "channel_slot": cluster.keyslot(channel),
                "subscriber_node_is_key_owner": None if node is None else node.port == owner.port,
                "notification_received": got,
            }
            pubsub.close()
    finally:
        client.close()
        for node in cluster.nodes:
            node.command("CONFIG", "SET", "notify-keyspace-events", "")
    return out


def main() -> None:
    report: dict[str, Any] = {}
    with RedisServer() as single:
        plain = redis.Redis.from_url(single.url)
        report["single: PUBLISH/SUBSCRIBE"] = steady_latency(
            lambda: redis.Redis.from_url(single.url, **NO_RETRY),
            lambda data: plain.publish(CHANNEL, data),
            sharded=False,
        )
        plain.close()
    print(json.dumps(report, indent=1, default=repr))

    with LocalRedisCluster() as cluster:
        client = cluster.client(timeout=0.5)

        def owner_client() -> redis.Redis:
            # A command on the channel's key slot makes the cluster client follow MOVED or
            # refresh its slot map after a failure; then ask it for the slot's owner.
            client.exists(CHANNEL)
            node = client.get_node_from_key(CHANNEL)
            return redis.Redis(host=node.host, port=node.port, **NO_RETRY)

        def other_node_client() -> redis.Redis:
            owner = client.get_node_from_key(CHANNEL)
            other = next(n for n in cluster.primaries() if n.port != owner.port)
            return redis.Redis(host="127.0.0.1", port=other.port, **NO_RETRY)

        report["cluster: PUBLISH (bus broadcast), subscriber on another primary"] = steady_latency(
            other_node_client, lambda d: client.publish(CHANNEL, d), False
        )
        report["cluster: SPUBLISH/SSUBSCRIBE on the channel's slot owner"] = steady_latency(
            owner_client, lambda d: client.spublish(CHANNEL, d), True
        )
        report["cluster: keyspace notifications"] = keyspace_in_cluster(cluster)
        print(json.dumps(report, indent=1, default=repr))
        slot = cluster.keyslot(CHANNEL)
        victim = cluster.primary_for(CHANNEL)
        report["cluster: sharded subscriber through a kill of the channel's primary"] = (
            through_failover(
                owner_client,
                lambda d: client.spublish(CHANNEL, d),
                True,
                lambda: cluster.kill(victim),
                lambda: cluster.wait_failover(slot),
            )
        )
        client.close()
    print(json.dumps(report, indent=1, default=repr))

    with LocalSentinel() as setup:
        master = setup.client(timeout=0.5)

        sentinel = setup.sentinel(timeout=0.5)

        def master_client() -> redis.Redis:
            # Ask the sentinels where the primary is, then connect a plain client: pub/sub
            # over a master_for() client breaks on redis-py 5.0.0 (read_response() got an
            # unexpected keyword 'push_request'), and this works on every version.
            host, port = sentinel.discover_master(setup.service)
            return redis.Redis(host=host, port=port, **NO_RETRY)

        report["sentinel: PUBLISH/SUBSCRIBE on the primary"] = steady_latency(
            master_client, lambda d: master.publish(CHANNEL, d), False
        )
        report["sentinel: subscriber through a kill of the primary"] = through_failover(
            master_client,
            lambda d: master.publish(CHANNEL, d),
            False,
            setup.kill_primary,
            setup.wait_failover,
        )
        master.close()
    print(json.dumps(report, indent=1, default=repr))


if __name__ == "__main__":
    main()
