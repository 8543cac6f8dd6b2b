"""Where shared state lives: one Redis node, a Redis Cluster, or a primary behind Sentinel.

``redis_url`` takes the forms ``limits`` uses:

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS), ``unix://path``;
- ``redis+cluster://[[user]:password@]host:port[,host:port...]`` (``rediss+cluster://``
  for TLS): any nodes of the cluster, the client finds the others;
- ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]``
  (``rediss+sentinel://``): the sentinels and the name they monitor the primary under; the
  credentials are given to the sentinels and to the primary, as ``limits`` does.

The clients made from a URL use ``timeout`` (0.25 s) for connecting and reading and do not
retry on their own (a cluster client follows one redirection), so a dead or slow Redis
costs a call at most one short timeout before the link fails over to local state.

``redis_client`` takes a ``redis.Redis``, a ``redis.cluster.RedisCluster``, or a client
from ``Sentinel(...).master_for(service)``; its own timeouts and retries apply.

Subscriptions never use the client itself: redis-py's retries would block reading
(reconnecting to a dead address for seconds), pub/sub through ``master_for`` fails on
redis-py 5.0, and a cluster client's pub/sub follows the channel's slot. The subscriber gets
a fresh plain connection, without retries, to the node to listen on: the single node, the
primary the sentinels name now, or any live cluster node (plain ``PUBLISH`` reaches every
node of a cluster).
"""

from __future__ import annotations

import random
import threading
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

__all__ = ["CLUSTER", "SENTINEL", "SINGLE", "RedisTarget", "from_client", "from_url"]

SINGLE = "single"
CLUSTER = "cluster"
SENTINEL = "sentinel"
#: Read timeout of a subscriber's connection, seconds (it pings every second).
SUBSCRIBER_READ_TIMEOUT = 2.0

_SCHEMES = {
    "redis": (SINGLE, False),
    "rediss": (SINGLE, True),
    "unix": (SINGLE, False),
    "redis+cluster": (CLUSTER, False),
    "rediss+cluster": (CLUSTER, True),
    "redis+sentinel": (SENTINEL, False),
    "rediss+sentinel": (SENTINEL, True),
}
# Connection settings a subscriber's connection copies from the client's.
_COPIED = {"username", "password", "credential_provider", "db", "client_name", "path"}


class RedisTarget:
    """A Redis deployment and the client that talks to it.

    Args:
        kind: :data:`SINGLE`, :data:`CLUSTER` or :data:`SENTINEL`.
        keyword: ``"redis_url"`` or ``"redis_client"``, for error messages.
        factory: Makes the client (a cluster client connects when made, so it is made on
            first use, not at construction).
        owned: The client is ours to close.
        timeout: Connect timeout of a subscriber's connection, seconds.
    """

    def __init__(
        self,
        kind: str,
        keyword: str,
        factory: Callable[[], Any],
        owned: bool,
        timeout: float,
    ) -> None:
        self.kind = kind
        self.keyword = keyword
        self.timeout = timeout
        self._factory = factory
        #: The client is ours (made from the URL): scripts go the short way to it.
        self.owned = owned
        self._client: Any = None
        self._closed = False
        self._lock = threading.Lock()

    def client(self) -> Any:
        """The client; made on first use (may raise a Redis error when it connects).

        Raises:
            ConnectionError: The target was closed (a call racing the manager's close).
        """
        client = self._client
        if client is None:
            if self._closed:
                raise ConnectionError("shared state: the manager was closed")
            made = self._factory()  # may connect: no lock held
            with self._lock:
                if self._client is None:
                    self._client, made = made, None
                client = self._client
            if made is not None and self.owned:
                made.close()
        return client

    def check_health(self) -> None:
        """Raise unless Redis answers now (every primary, for a cluster).

        A cluster client made from the URL is made anew after a failed check: redis-py's
        drops the nodes it failed to reach from its startup nodes, so after a whole-cluster
        outage it would have none left to find the cluster again.
        """
        if self.kind != CLUSTER:
            self.client().ping()
            return
        from redis.cluster import RedisCluster

        try:
            self.client().ping(target_nodes=RedisCluster.PRIMARIES)
        except Exception:
            if self.owned:
                self.close(final=False)
            raise

    def subscriber_clients(self) -> list[Any]:
        """Fresh plain clients to the nodes a subscriber may listen on, best first.

        Empty for a client of a kind this module does not know (state is then polled).
        """
        import redis

        client = self.client()
        if self.kind == CLUSTER:
            nodes = list(client.get_nodes())
            random.shuffle(nodes)  # spread a fleet's subscribers over the nodes
            return [
                _plain(client.get_redis_connection(n).connection_pool, self.timeout, n.host, n.port)
                for n in nodes
            ]
        pool = getattr(client, "connection_pool", None)
        if not isinstance(pool, redis.ConnectionPool):
            return []
        if self.kind == SENTINEL:
            host, port = pool.sentinel_manager.discover_master(pool.service_name)  # type: ignore[attr-defined]
            return [_plain(pool, self.timeout, host, port)]
        kwargs = pool.connection_kwargs
        return [_plain(pool, self.timeout, kwargs.get("host"), kwargs.get("port"))]

    def reinit_after_fork(self) -> None:
        """A fresh lock in a forked child (redis-py's pools reconnect after a fork)."""
        self._lock = threading.Lock()

    def close(self, final: bool = True) -> None:
        """Close the client if it is ours (``final``: for good; else it is made again)."""
        with self._lock:
            client, self._client = self._client, None
            self._closed = self._closed or final
        if client is not None and self.owned:
            client.close()


def _plain(pool: Any, timeout: float, host: Any, port: Any) -> Any:
    """A plain client to ``host:port`` with ``pool``'s credentials and TLS, no retries."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    kwargs = {
        key: value
        for key, value in pool.connection_kwargs.items()
        if key in _COPIED or key.startswith("ssl_")
    }
    if issubclass(pool.connection_class, redis.SSLConnection):
        kind: Any = redis.SSLConnection
    elif issubclass(pool.connection_class, redis.UnixDomainSocketConnection):
        kind = _unix_connection()
    else:
        kind = redis.Connection
    if not issubclass(kind, redis.UnixDomainSocketConnection):
        kwargs["host"], kwargs["port"] = host, port
    return redis.Redis(
        connection_pool=redis.ConnectionPool(
            connection_class=kind,
            socket_timeout=SUBSCRIBER_READ_TIMEOUT,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            **kwargs,
        )
    )


def from_client(client: Any, timeout: float) -> RedisTarget:
    """The target of a user's client (never closed by us).

    Raises:
        TypeError: ``client`` is not a Redis client.
    """
    if not callable(getattr(client, "ping", None)) or not callable(
        getattr(client, "evalsha", None)
    ):
        raise TypeError(
            "redis_client must be a redis.Redis, a redis.cluster.RedisCluster or a "
            f"Sentinel master_for() client, got {type(client).__name__}"
        )
    kind = SINGLE
    try:
        from redis.cluster import RedisCluster
        from redis.sentinel import SentinelConnectionPool
    except ImportError:  # pragma: no cover - a duck-typed client without redis-py
        pass
    else:
        if isinstance(client, RedisCluster):
            kind = CLUSTER
        elif isinstance(getattr(client, "connection_pool", None), SentinelConnectionPool):
            kind = SENTINEL
    return RedisTarget(kind, "redis_client", lambda: client, owned=False, timeout=timeout)


def from_url(url: str, timeout: float) -> RedisTarget:
    """The target of a ``redis_url`` (see the module docstring); nothing is sent yet.

    Raises:
        ValueError: The URL is not one of the accepted forms, or the ``redis`` extra is
            missing.
    """
    try:
        import redis  # noqa: F401 - only to fail early with advice
    except ImportError as exc:
        raise ValueError(
            "redis_url needs the 'redis' extra: pip install 'requests-connection-manager[redis]'"
        ) from exc
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise ValueError(
            "redis_url must start with redis://, rediss://, unix://, redis+cluster:// or "
            f"redis+sentinel://, got {url.split('://')[0]!r}"
        )
    kind, tls = _SCHEMES[scheme]
    if kind == SINGLE:
        factory = _single_factory(url, timeout)
    elif kind == CLUSTER:
        factory = _cluster_factory(url, tls, timeout)
    else:
        factory = _sentinel_factory(url, tls, timeout)
    return RedisTarget(kind, "redis_url", factory, owned=True, timeout=timeout)


def _no_retry() -> Any:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def _single_factory(url: str, timeout: float) -> Callable[[], Any]:
    import redis

    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=_no_retry(),
            retry_on_timeout=False,
        )
    except ValueError as exc:
        raise ValueError(f"redis_url is not a valid Redis URL: {exc}") from None
    pool = client.connection_pool
    if pool.connection_class is redis.UnixDomainSocketConnection:
        pool.connection_class = _unix_connection()
    return lambda: client


def _unix_connection() -> Any:
    """redis-py's Unix socket connection, closing its socket when it fails to connect.

    redis-py 5.x leaves it open (a ``ResourceWarning`` per attempt, and a descriptor until
    the garbage collector runs); 8.x closes it, as this does.
    """
    import socket

    import redis

    if int(redis.__version__.split(".")[0]) >= 6:
        return redis.UnixDomainSocketConnection

    class UnixConnection(redis.UnixDomainSocketConnection):
        def _connect(self) -> Any:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.socket_connect_timeout)
                sock.connect(self.path)
                sock.settimeout(self.socket_timeout)
            except BaseException:
                sock.close()
                raise
            return sock

    return UnixConnection


def _hosts(url: str, default_port: int) -> tuple[list[tuple[str, int]], dict[str, str], str]:
    """``(host, port)`` pairs, credentials and the path of a multi-host URL."""
    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    credentials: dict[str, str] = {}
    if auth:
        user, _, password = auth.partition(":")
        if user:
            credentials["username"] = unquote(user)
        if password:
            credentials["password"] = unquote(password)
    pairs = []
    for item in hosts.split(","):
        split = urlsplit(f"//{item}")
        try:
            port = split.port or default_port
        except ValueError:
            raise ValueError(f"redis_url has a bad port in {item!r}") from None
        if not split.hostname:
            raise ValueError(f"redis_url names no host in {item!r}")
        pairs.append((split.hostname, port))
    return pairs, credentials, parts.path


def _cluster_factory(url: str, tls: bool, timeout: float) -> Callable[[], Any]:
    import redis
    import redis.cluster

    node: Any = redis.cluster.ClusterNode  # untyped in redis-py
    cluster: Any = redis.cluster.RedisCluster
    pairs, credentials, _ = _hosts(url, 6379)
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        **credentials,
    }
    if tls:
        options["ssl"] = True
    if int(redis.__version__.split(".")[0]) < 6:
        # 5.x: ``retry`` is each node connection's; cluster-level retries are separate.
        options.update(retry=_no_retry(), cluster_error_retry_attempts=1)
    else:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        options["retry"] = Retry(NoBackoff(), 1)  # 6+: the cluster-level retries

    def make() -> Any:
        return cluster(startup_nodes=[node(h, p) for h, p in pairs], **options)

    return make


def _sentinel_factory(url: str, tls: bool, timeout: float) -> Callable[[], Any]:
    import redis.sentinel

    sentinels: Any = redis.sentinel.Sentinel  # untyped in redis-py
    pairs, credentials, path = _hosts(url, 26379)
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise ValueError("redis_url needs the service name: redis+sentinel://host:port/service")
    service = unquote(segments[0])
    db = 0
    if len(segments) > 1:
        if not segments[1].isdigit():
            raise ValueError(f"redis_url has a bad database number {segments[1]!r}")
        db = int(segments[1])
    timeouts = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    sentinel = sentinels(pairs, sentinel_kwargs={**timeouts, **credentials})
    options: dict[str, Any] = {**timeouts, **credentials, "retry": _no_retry(), "db": db}
    if tls:
        options["ssl"] = True
    client = sentinel.master_for(service, **options)
    return lambda: client
