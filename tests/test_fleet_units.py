"""The parts of shared state one at a time: URL forms, subscriber connections, the link.

Most tests here need no Redis (clients are built, never connected); those that do start a
real ``redis-server`` on loopback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.sentinel import SentinelConnectionPool

from requests_connection_manager import CircuitBreakerOpen, ConnectionManager
from requests_connection_manager import _redis_target as target_module
from requests_connection_manager._fleet_scripts import (
    READ,
    HostKeys,
    parse_message,
    parse_view,
    run,
)
from requests_connection_manager._shared import SharedLink, SlowRedis, _refusal
from tests.delayproxy import DelayProxy
from tests.redisfleet import wait_until
from tests.redisserver import RedisServer
from tests.servers import AppServer, free_port

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server on a free loopback port."""
    with RedisServer() as server:
        yield server


# ------------------------------------------------------------------------ URL forms
def test_single_node_urls_keep_their_scheme() -> None:
    """redis://, rediss:// and unix:// make a plain client with short timeouts, no retries."""
    for url, kind in [
        ("redis://:pw@127.0.0.1:1/3", redis.Connection),
        ("rediss://127.0.0.1:1/0", redis.SSLConnection),
        ("unix:///run/rcm-nowhere.sock?db=2", redis.UnixDomainSocketConnection),
    ]:
        target = target_module.from_url(url, 0.25)
        client = target.client()
        pool = client.connection_pool
        assert target.kind == target_module.SINGLE
        assert issubclass(pool.connection_class, kind)
        assert pool.connection_kwargs["socket_timeout"] == 0.25
        assert pool.connection_kwargs["retry"]._retries == 0
        target.close()


def test_cluster_urls_name_every_node_and_their_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """redis+cluster:// and rediss+cluster:// give the nodes, the credentials and TLS."""
    made: list[dict[str, Any]] = []

    class Recorder:
        def __init__(self, **kwargs: Any) -> None:
            made.append(kwargs)

        def close(self) -> None:
            pass

    import redis.cluster

    monkeypatch.setattr(redis.cluster, "RedisCluster", Recorder)
    target = target_module.from_url("rediss+cluster://app:s%40cret@h1:7001,[::1]:7002,h3", 0.5)
    target.client()
    (options,) = made
    nodes = [(node.host, node.port) for node in options.pop("startup_nodes")]
    assert nodes == [("h1", 7001), ("::1", 7002), ("h3", 6379)]
    assert options["username"] == "app"
    assert options["password"] == "s@cret"
    assert options["ssl"] is True
    assert options["socket_timeout"] == 0.5
    assert target.kind == target_module.CLUSTER


def test_sentinel_urls_give_the_service_database_and_tls() -> None:
    """redis+sentinel://...h:p/service/db: a master_for client of that service and db."""
    target = target_module.from_url("rediss+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/svc/4", 0.25)
    client = target.client()
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "svc"
    assert pool.connection_kwargs["db"] == 4
    assert pool.connection_kwargs["password"] == "pw"
    assert issubclass(pool.connection_class, redis.SSLConnection)
    assert [
        s.connection_pool.connection_kwargs["port"] for s in pool.sentinel_manager.sentinels
    ] == [1, 2]
    assert target.kind == target_module.SENTINEL


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("redis+cluster://h1:notaport", "bad port"),
        ("redis+cluster://:pw@", "names no host"),
        ("redis+sentinel://h1:26379", "service name"),
        ("redis+sentinel://h1:26379/svc/x", "database"),
        ("memcached://h1", "must start with"),
        ("no scheme", "must start with"),
    ],
)
def test_bad_urls_are_refused_naming_redis_url(url: str, match: str) -> None:
    """Each malformed URL is a ValueError that names redis_url and what is wrong."""
    with pytest.raises(ValueError, match=match):
        ConnectionManager(redis_url=url)


# ----------------------------------------------------------- subscriber connections
def test_a_subscriber_connection_copies_credentials_and_tls_not_retries() -> None:
    """The plain client a subscriber gets keeps TLS and credentials, without retries."""
    for pool, kind in [
        (
            redis.ConnectionPool(
                connection_class=redis.SSLConnection, password="pw", ssl_ca_certs="ca.pem"
            ),
            redis.SSLConnection,
        ),
        (
            redis.ConnectionPool(
                connection_class=redis.UnixDomainSocketConnection, path="/run/rcm-x.sock"
            ),
            redis.UnixDomainSocketConnection,
        ),
        (
            redis.ConnectionPool(host="127.0.0.1", port=1, username="u", password="p"),
            redis.Connection,
        ),
    ]:
        client = target_module._plain(pool, 0.25, "10.0.0.1", 7000)
        made = client.connection_pool
        assert issubclass(made.connection_class, kind)
        assert made.connection_kwargs["retry"]._retries == 0
        assert made.connection_kwargs["socket_connect_timeout"] == 0.25
        for key in ("password", "ssl_ca_certs", "path", "username"):
            if key in pool.connection_kwargs:
                assert made.connection_kwargs[key] == pool.connection_kwargs[key]
        if kind is not redis.UnixDomainSocketConnection:
            assert (made.connection_kwargs["host"], made.connection_kwargs["port"]) == (
                "10.0.0.1",
                7000,
            )
        client.close()


class _DuckClient:
    """A client that is no redis-py client: it can run commands, not subscribe."""

    def __init__(self, real: redis.Redis) -> None:
        self._real = real

    def ping(self) -> Any:
        return self._real.ping()

    def evalsha(self, *args: Any) -> Any:
        return self._real.evalsha(*args)

    def eval(self, *args: Any) -> Any:
        return self._real.eval(*args)


def test_a_client_that_cannot_subscribe_is_polled(
    app: AppServer, redis_server: RedisServer
) -> None:
    """Without pub/sub the copy is read again when older than 100 ms: sharing still works."""
    app.ok("/down", b"down", status=500)
    real = redis.Redis(port=redis_server.port)
    settings: dict[str, Any] = {"max_retries": 0, "circuit_breaker_failure_threshold": 2}
    try:
        with (
            ConnectionManager(redis_client=_DuckClient(real), **settings) as a,
            ConnectionManager(redis_url=redis_server.url, **settings) as b,
        ):
            assert a.get(app.url("/down")).status_code == 500
            assert b.get(app.url("/down")).status_code == 500  # opens it
            assert a.get_stats()["shared_state"]["subscribed"] is False
            assert wait_until(lambda: _refused(a, app.url("/down")))
    finally:
        real.close()


def _refused(cm: ConnectionManager, url: str) -> bool:
    try:
        cm.get(url)
    except CircuitBreakerOpen:
        return True
    return False


def test_a_silent_subscription_is_found_by_its_pings(redis_server: RedisServer) -> None:
    """A peer that stops answering (PING unanswered for 3 s) is a lost subscription."""
    with (
        DelayProxy(redis_server.port) as proxy,
        ConnectionManager(redis_url=proxy.url) as cm,
    ):
        link = cm._engine.shared
        assert link is not None
        assert link.live
        proxy.delay = 30.0  # nothing gets through any more
        assert wait_until(lambda: not link.live, seconds=8)


# ------------------------------------------------------------------------- the link
def test_what_counts_as_a_configuration_error() -> None:
    """Refusals (auth, ACL, unknown command) are configuration errors; outages are not."""
    from redis.exceptions import (
        AuthenticationError,
        ConnectionError,
        NoPermissionError,
        ResponseError,
        TimeoutError,
    )

    assert _refusal(AuthenticationError("invalid password"))
    assert _refusal(NoPermissionError("no permissions"))
    assert _refusal(ResponseError("The user executing the script can't run this command"))
    assert _refusal(ResponseError("ERR unknown command 'EVALSHA'"))
    assert not _refusal(ConnectionError("refused"))
    assert not _refusal(TimeoutError("timed out"))
    assert not _refusal(ResponseError("LOADING Redis is loading the dataset in memory"))
    assert not _refusal(SlowRedis("300 ms"))


def test_a_down_link_sends_nothing_and_logs_its_cause(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """While down, run() answers None at once; the first failure's cause is logged at DEBUG."""
    link = SharedLink.from_keywords(redis_server.url, None, "unit")
    assert link is not None
    link.start()
    try:
        with caplog.at_level(logging.DEBUG, logger="requests_connection_manager"):
            link.failed(ConnectionError("boom"))
        assert any(r.exc_info for r in caplog.records)
        assert not link.usable()
        assert link.run(READ, [HostKeys("unit", "h").breaker], []) is None
    finally:
        link.close()


def test_the_ticker_survives_a_failing_tick(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in the background work is logged (DEBUG) and the ticker goes on."""
    link = SharedLink.from_keywords(redis_server.url, None, "unit")
    assert link is not None
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        raise RuntimeError("background failure")

    monkeypatch.setattr(link, "tick", tick)
    link.start()
    try:
        assert wait_until(lambda: len(ticks) >= 3)
    finally:
        link.close()


def test_messages_and_views_parse(redis_server: RedisServer) -> None:
    """A script's view and a channel message carry the same fields; junk is ignored."""
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        view, code, extra = parse_view(run(client, READ, [HostKeys("p", "h").breaker], []))
    finally:
        client.close()
    assert (view.state, view.fails, view.opened, view.pause, code, extra) == (
        "closed", 0, 0, 0, 0, 0,
    )  # fmt: skip
    assert view.gen == view.now * 1000  # a missing hash: versioned by the time it was read
    host, message = parse_message(b"7 open 0 1000 0 1500 http://h:80 [api/*]")  # type: ignore[misc]
    assert host == "http://h:80 [api/*]"
    assert (message.gen, message.state, message.opened, message.now) == (7, "open", 1000, 1500)
    assert parse_message(b"") is None
    assert parse_message("garbage") is None


def test_an_unreachable_cluster_url_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A cluster client cannot even be made while no node answers: local state, one warning."""
    with (
        caplog.at_level(logging.WARNING, logger="requests_connection_manager"),
        ConnectionManager(redis_url=f"redis+cluster://127.0.0.1:{free_port()}") as cm,
    ):
        assert cm.get_stats()["shared_state"]["healthy"] is False
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1


# ------------------------------------------------------------- the short way to Redis
def test_the_short_way_falls_back_to_redis_py_when_it_cannot_go(
    redis_server: RedisServer,
) -> None:
    """No pool (a duck client), or a slot map that cannot be read: redis-py's own path."""
    from requests_connection_manager._redis_wire import Fallback, call

    class NoPool:
        pass

    class BrokenCluster:
        def get_node_from_key(self, key: str) -> Any:
            raise redis.exceptions.RedisClusterException("no slot map")

    class UnreadableSlots:
        def get_node_from_key(self, key: str) -> Any:
            raise redis.exceptions.ConnectionError("no node answers")

    for client in (NoPool(), UnreadableSlots()):
        with pytest.raises(Fallback):
            call(client, "EVALSHA", "0" * 40, 1, "{k}:x")
    with pytest.raises(redis.exceptions.RedisClusterException):
        call(BrokenCluster(), "EVALSHA", "0" * 40, 1, "{k}:x")  # not a RedisError: raised
    plain = redis.Redis(port=redis_server.port)
    try:
        with pytest.raises(redis.exceptions.NoScriptError):
            call(plain, "EVALSHA", "0" * 40, 1, "{k}:x")  # the caller sends EVAL then
        # ... through redis-py, which finds the connection back in the pool (not kept)
        assert plain.connection_pool._in_use_connections == set()
        assert len(plain.connection_pool._available_connections) == 1
        assert run(plain, READ, [HostKeys("u", "h").breaker], [], direct=True)[0] == b"closed"
    finally:
        plain.close()


def test_the_short_way_on_a_dead_node_raises_and_keeps_no_connection() -> None:
    """A single node that refuses the connection: the error is raised, the pool stays empty."""
    from requests_connection_manager._redis_wire import call

    client = redis.Redis(port=free_port(), socket_connect_timeout=0.25)
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            call(client, "EVALSHA", "0" * 40, 1, "{k}:x")
        assert client.connection_pool._in_use_connections == set()
    finally:
        client.close()


def test_a_down_link_checks_in_the_background(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """During an outage the ticker's check fails quietly (DEBUG), then succeeds: resumed."""
    link = SharedLink.from_keywords(redis_server.url, None, "unit")
    assert link is not None
    events: list[Any] = []
    link.publish = events.append
    link.start()
    try:
        redis_server.stop()
        link.failed(ConnectionError("gone"))
        with caplog.at_level(logging.DEBUG, logger="requests_connection_manager"):
            link._retry_at = 0.0
            link._probe()  # Redis is still down
        assert any("still unusable" in r.getMessage() for r in caplog.records)
        assert not link.usable()
        redis_server.start()
        link._retry_at = 0.0
        link._probe()
        assert link.usable()
        assert [e.healthy for e in events] == [False, True]
        link._resumed()  # resuming twice is one event
        assert len(events) == 2
    finally:
        link.close()


def test_a_shared_limiter_is_quiet_when_its_twin_is(redis_server: RedisServer) -> None:
    """Forgetting a shared limiter loses nothing the Redis window does not keep."""
    from requests_connection_manager._limiter import LimiterFactory
    from requests_connection_manager.config import RateLimitConfig

    link = SharedLink.from_keywords(redis_server.url, None, "unit")
    assert link is not None
    settings = RateLimitConfig(5, 1.0)
    local = LimiterFactory(lambda: 0.0).build(settings, "h")
    limiter = link.limiter(settings, "h", local)
    assert limiter.quiet() == local.quiet()
    link.close()
