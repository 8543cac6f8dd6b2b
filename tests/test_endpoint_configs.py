"""Endpoint configs: every key takes effect for the hosts a pattern matches, and only there."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest
import requests

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    RateLimitExceeded,
)
from tests.fakes import FakeClock
from tests.servers import AppServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def other() -> Iterator[AppServer]:
    """A second origin: a server on 127.0.0.2."""
    with AppServer("127.0.0.2") as server:
        yield server


def test_endpoint_timeout_applies_to_its_host_only(app: AppServer, other: AppServer) -> None:
    """timeout=0.2 for 127.0.0.1 times out a 1 s answer there; 127.0.0.2 keeps the global 30 s."""
    app.slow("/slow", 1.0)
    other.slow("/slow", 0.3)
    configs = {"127.0.0.1": {"timeout": 0.2, "max_retries": 0}}
    with ConnectionManager(endpoint_configs=configs) as cm:
        with pytest.raises(requests.ReadTimeout):
            cm.get(app.url("/slow"))
        assert cm.get(other.url("/slow")).status_code == 200


@pytest.mark.parametrize("key", ["read_timeout", "timeout"])
def test_endpoint_read_timeout_overrides_a_global_timeout(app: AppServer, key: str) -> None:
    """read_timeout (or timeout) in an endpoint config beats the constructor's."""
    app.slow("/slow", 1.0)
    with (
        ConnectionManager(
            timeout=30, endpoint_configs={"127.0.0.1": {key: 0.2, "max_retries": 0}}
        ) as cm,
        pytest.raises(requests.ReadTimeout),
    ):
        cm.get(app.url("/slow"))


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: connecting to it hangs until the connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


def test_endpoint_connect_timeout_applies(full_backlog: int) -> None:
    """connect_timeout in an endpoint config is the one the connection attempt uses."""
    configs = {f"127.0.0.1:{full_backlog}": {"connect_timeout": 0.2, "max_retries": 0}}
    with (
        ConnectionManager(timeout=5, endpoint_configs=configs) as cm,
        pytest.raises(requests.ConnectTimeout, match=r"connect timeout=0\.2\b"),
    ):
        cm.get(f"http://127.0.0.1:{full_backlog}/")


def test_endpoint_max_retries_and_backoff(
    app: AppServer, other: AppServer, clock: FakeClock
) -> None:
    """max_retries=0 there: one attempt; elsewhere the global three retries with backoff."""
    app.fail_then_ok("/f", failures=2)
    other.fail_then_ok("/f", failures=2)
    configs = {"127.0.0.1": {"max_retries": 0}}
    with ConnectionManager(
        backoff_factor=10,
        circuit_breaker_failure_threshold=None,
        endpoint_configs=configs,
        clock=clock,
    ) as cm:
        assert cm.get(app.url("/f")).status_code == 503
        assert app.hits("/f") == 1
        assert clock.sleeps == []
        assert cm.get(other.url("/f")).status_code == 200
        assert other.hits("/f") == 3
        assert len(clock.sleeps) == 2


def test_endpoint_backoff_factor_zero_means_no_wait(app: AppServer, clock: FakeClock) -> None:
    """backoff_factor in an endpoint config replaces the global one."""
    app.fail_then_ok("/f", failures=2)
    with ConnectionManager(
        backoff_factor=10,
        circuit_breaker_failure_threshold=None,
        endpoint_configs={"127.0.0.1": {"backoff_factor": 0}},
        clock=clock,
    ) as cm:
        assert cm.get(app.url("/f")).status_code == 200
    assert app.hits("/f") == 3
    assert clock.sleeps == []


def test_endpoint_rate_limit_is_its_own_and_built_once(app: AppServer, other: AppServer) -> None:
    """2 per minute there: the third call is refused (a limiter rebuilt per call would admit it)."""
    app.ok("/x")
    other.ok("/x")
    configs = {"127.0.0.1": {"rate_limit_requests": 2, "rate_limit_max_wait": 0}}
    with ConnectionManager(endpoint_configs=configs) as cm:
        cm.get(app.url("/x"))
        cm.get(app.url("/x"))
        with pytest.raises(RateLimitExceeded) as info:
            cm.get(app.url("/x"))
        assert info.value.retry_after is not None
        assert info.value.retry_after > 0
        for _ in range(5):  # no global limit: the other host is never throttled
            cm.get(other.url("/x"))
        stats = cm.get_stats()["hosts"]
    assert app.hits("/x") == 2
    assert stats[f"http://127.0.0.1:{app.port} [127.0.0.1]"]["throttled"] == 1
    assert stats[f"http://127.0.0.2:{other.port}"]["throttled"] == 0


def test_replacing_an_endpoint_config_rebuilds_its_limiter(app: AppServer) -> None:
    """A new rate limit for a pattern takes effect on the next request."""
    app.ok("/x")
    with ConnectionManager() as cm:
        cm.add_endpoint_config("127.0.0.1", {"rate_limit_requests": 1, "rate_limit_max_wait": 0})
        cm.get(app.url("/x"))
        with pytest.raises(RateLimitExceeded):
            cm.get(app.url("/x"))
        cm.add_endpoint_config("127.0.0.1", {"rate_limit_requests": 3, "rate_limit_max_wait": 0})
        cm.get(app.url("/x"))
        cm.get(app.url("/x"))
        cm.remove_endpoint_config("127.0.0.1")
        for _ in range(3):
            cm.get(app.url("/x"))
    assert app.hits("/x") == 6


def test_endpoint_breaker_settings(app: AppServer, other: AppServer, clock: FakeClock) -> None:
    """Threshold 1 there: one failure opens it, the next call never reaches the server."""
    app.fail_then_ok("/f", failures=10, status=500)
    other.fail_then_ok("/f", failures=10, status=500)
    configs = {
        "127.0.0.1": {"circuit_breaker_failure_threshold": 1, "max_retries": 0},
    }
    with ConnectionManager(max_retries=0, endpoint_configs=configs, clock=clock) as cm:
        assert cm.get(app.url("/f")).status_code == 500
        with pytest.raises(CircuitBreakerOpen):
            cm.get(app.url("/f"))
        assert app.hits("/f") == 1
        for _ in range(4):  # the global threshold is 5
            assert cm.get(other.url("/f")).status_code == 500
        assert other.hits("/f") == 4
        states = {k: v["breaker_state"] for k, v in cm.get_stats()["hosts"].items()}
    assert states[f"http://127.0.0.1:{app.port} [127.0.0.1]"] == "open"
    assert states[f"http://127.0.0.2:{other.port}"] == "closed"


def test_path_prefix_pattern(app: AppServer, clock: FakeClock) -> None:
    """127.0.0.1/v2 applies below /v2 only (segment boundary), the rest of the host is global."""
    for path in ("/v2/a", "/v20", "/v1"):
        app.fail_then_ok(path, failures=1)
    configs = {"127.0.0.1/v2": {"max_retries": 0}}
    with ConnectionManager(
        circuit_breaker_failure_threshold=None, endpoint_configs=configs, clock=clock
    ) as cm:
        assert cm.get(app.url("/v2/a")).status_code == 503
        assert cm.get(app.url("/v20")).status_code == 200
        assert cm.get(app.url("/v1")).status_code == 200
    assert (app.hits("/v2/a"), app.hits("/v20"), app.hits("/v1")) == (1, 2, 2)


def test_most_specific_pattern_wins(app: AppServer, clock: FakeClock) -> None:
    """A path prefix beats the bare host; insertion order does not matter."""
    app.fail_then_ok("/v2/a", failures=1)
    app.fail_then_ok("/other", failures=1)
    configs = {
        "127.0.0.1/v2": {"max_retries": 1},
        "127.0.0.1": {"max_retries": 0},
    }
    with ConnectionManager(
        circuit_breaker_failure_threshold=None, endpoint_configs=configs, clock=clock
    ) as cm:
        assert cm.get(app.url("/v2/a")).status_code == 200
        assert cm.get(app.url("/other")).status_code == 503


def test_set_timeouts_changes_behaviour_and_reaches_endpoint_policies(app: AppServer) -> None:
    """set_timeouts applies from the next call, also to an endpoint config without a timeout."""
    app.slow("/slow", 1.0)
    with ConnectionManager(
        max_retries=0, endpoint_configs={"127.0.0.1": {"backoff_factor": 0}}
    ) as cm:
        cm.set_timeouts(read_timeout=0.2)
        assert cm.read_timeout == 0.2
        with pytest.raises(requests.ReadTimeout):
            cm.get(app.url("/slow"))
        assert cm.get_stats()["read_timeout"] == 0.2


@pytest.mark.parametrize(
    ("configs", "match"),
    [
        ({"/v2": {}}, "'/v2'"),
        ({"api.example.com": {"tiemout": 3}}, "unknown key 'tiemout'"),
        ({"api.example.com": {"pool_maxsize": 3}}, "manager-wide"),
        (
            {"api.example.com": {"max_retries": -1}},
            r"endpoint_configs\['api.example.com'\]: max_retries",
        ),
        ({"api.example.com": {"timeout": "fast"}}, "timeout"),
        ({"api.example.com": {"verify": "/no/such/ca.pem"}}, "verify"),
        ({"api.example.com": {"bearer_token": ""}}, "bearer_token"),
        ({"api.example.com": []}, "dict"),
        ([("api.example.com", {})], "endpoint_configs"),
    ],
)
def test_bad_endpoint_configs_are_refused(configs: object, match: str) -> None:
    """Unknown keys, bad values and host-less patterns fail at once, naming what is wrong."""
    with pytest.raises((TypeError, ValueError), match=match):
        ConnectionManager(endpoint_configs=configs)  # type: ignore[arg-type]


def test_add_endpoint_config_refuses_and_keeps_the_old_config() -> None:
    """A refused add_endpoint_config changes nothing."""
    with ConnectionManager(endpoint_configs={"api.example.com": {"timeout": 5}}) as cm:
        with pytest.raises(ValueError, match="max_retries"):
            cm.add_endpoint_config("api.example.com", {"max_retries": -1})
        assert cm.get_endpoint_configs() == {"api.example.com": {"timeout": 5}}


def test_endpoint_config_views_cannot_be_changed_behind_the_managers_back() -> None:
    """get_endpoint_configs() is a copy; endpoint_configs is read-only."""
    with ConnectionManager(endpoint_configs={"api.example.com": {"timeout": 5}}) as cm:
        copy = cm.get_endpoint_configs()
        copy["api.example.com"]["timeout"] = 99
        copy["other.example.com"] = {}
        assert cm.get_endpoint_configs() == {"api.example.com": {"timeout": 5}}
        with pytest.raises(TypeError):
            cm.endpoint_configs["x"] = {}  # type: ignore[index]
        cm.remove_endpoint_config("never.added.example")
        assert list(cm.endpoint_configs) == ["api.example.com"]
