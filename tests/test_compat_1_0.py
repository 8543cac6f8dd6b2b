"""Every documented use of requests-connection-manager 1.0.0's public API, against loopback.

Each test follows one section of 1.0.0's README or API reference, with its hosts replaced
by local servers. Deliberate differences (docs/migration.md) are asserted where they show.
"""

from __future__ import annotations

import inspect
import logging
import ssl
import threading
from pathlib import Path

import pytest
import requests
import trustme

import requests_connection_manager as rcm
from requests_connection_manager import ConnectionManager
from tests.servers import AppServer, free_port

pytestmark = pytest.mark.timeout(30)

#: 1.0.0's ``__all__``.
NAMES_1_0 = [
    "ConnectionManager",
    "ConnectionManagerError",
    "RateLimitExceeded",
    "CircuitBreakerOpen",
    "MaxRetriesExceeded",
    "PluginManager",
    "RequestContext",
    "ResponseContext",
    "ErrorContext",
    "HookType",
    "redact_sensitive_data",
    "safe_log_request",
    "safe_log_response",
    "safe_log_error",
    "is_sensitive_field",
]

#: 1.0.0's constructor: (name, default), in order.
CONSTRUCTOR_1_0 = [
    ("pool_connections", 10),
    ("pool_maxsize", 10),
    ("max_retries", 3),
    ("backoff_factor", 0.3),
    ("rate_limit_requests", 100),
    ("rate_limit_period", 60),
    ("circuit_breaker_failure_threshold", 5),
    ("circuit_breaker_recovery_timeout", 60),
    ("timeout", 30),
    ("endpoint_configs", None),
    ("api_key", None),
    ("api_key_header", "X-API-Key"),
    ("bearer_token", None),
    ("oauth2_token", None),
    ("basic_auth", None),
    ("verify", True),
    ("cert", None),
    ("connect_timeout", None),
    ("read_timeout", None),
    ("ssl_context", None),
]

#: 1.0.0's methods and their parameters (after self).
METHODS_1_0 = {
    "request": ["method", "url", "kwargs"],
    "get": ["url", "kwargs"],
    "post": ["url", "kwargs"],
    "put": ["url", "kwargs"],
    "delete": ["url", "kwargs"],
    "patch": ["url", "kwargs"],
    "head": ["url", "kwargs"],
    "options": ["url", "kwargs"],
    "close": [],
    "register_pre_request_hook": ["hook_func"],
    "register_post_response_hook": ["hook_func"],
    "register_error_hook": ["hook_func"],
    "unregister_hook": ["hook_type", "hook_func"],
    "list_hooks": [],
    "add_endpoint_config": ["pattern", "config"],
    "remove_endpoint_config": ["pattern"],
    "get_endpoint_configs": [],
    "set_api_key": ["api_key", "header_name"],
    "set_bearer_token": ["token"],
    "set_oauth2_token": ["token"],
    "set_basic_auth": ["username", "password"],
    "set_endpoint_auth": ["pattern", "auth_type", "auth_kwargs"],
    "clear_auth": ["pattern"],
    "batch_request": ["requests_data", "max_workers", "return_exceptions"],
    "set_ssl_verification": ["verify"],
    "set_client_certificate": ["cert"],
    "set_timeouts": ["connect_timeout", "read_timeout"],
    "set_ssl_context": ["ssl_context"],
    "get_stats": [],
}

#: 1.0.0's get_stats() keys.
STATS_1_0 = {
    "circuit_breaker_state",
    "circuit_breaker_failure_count",
    "rate_limit_requests",
    "rate_limit_period",
    "timeout",
    "requests_made",
    "ssl_verification",
    "client_certificate_configured",
    "connect_timeout",
    "read_timeout",
    "ssl_context_configured",
    "registered_hooks",
}


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    """Real files for the README's CA bundle and client certificate paths."""
    ca = trustme.CA()
    paths = {
        "ca": tmp_path / "ca.pem",
        "client_pem": tmp_path / "client.pem",
        "client_crt": tmp_path / "client.crt",
        "client_key": tmp_path / "client.key",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    client = ca.issue_cert("client", common_name="client")
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client_pem"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client_crt"]))
    client.private_key_pem.write_to_path(str(paths["client_key"]))
    return {name: str(path) for name, path in paths.items()}


# ------------------------------------------------------------------- public names
def test_every_public_name_of_1_0_is_importable() -> None:
    """The top-level names, the exceptions/plugins/utils modules and __version__ exist."""
    assert set(NAMES_1_0) <= set(rcm.__all__)
    for name in NAMES_1_0:
        assert getattr(rcm, name) is not None
    from requests_connection_manager.exceptions import (
        CircuitBreakerOpen,
        ConnectionManagerError,
        MaxRetriesExceeded,
        RateLimitExceeded,
    )
    from requests_connection_manager.plugins import (
        ErrorContext,
        HookType,
        PluginManager,
        RequestContext,
        ResponseContext,
    )
    from requests_connection_manager.utils import (
        is_sensitive_field,
        redact_sensitive_data,
        safe_log_error,
        safe_log_request,
        safe_log_response,
    )

    assert rcm.RateLimitExceeded is RateLimitExceeded
    assert issubclass(CircuitBreakerOpen, ConnectionManagerError)
    assert issubclass(MaxRetriesExceeded, ConnectionManagerError)
    assert rcm.PluginManager is PluginManager
    assert {t.value for t in HookType} == {"pre_request", "post_response", "error_handler"}
    assert (ErrorContext, RequestContext, ResponseContext) == (
        rcm.ErrorContext,
        rcm.RequestContext,
        rcm.ResponseContext,
    )
    assert is_sensitive_field("X-API-Key")
    assert redact_sensitive_data({"password": "x"}) == {"password": "[REDACTED]"}
    assert callable(safe_log_request)
    assert callable(safe_log_response)
    assert callable(safe_log_error)
    assert isinstance(rcm.__version__, str)
    assert rcm.__version__.split(".")[0] == "2"


def test_constructor_names_order_and_defaults_match_1_0() -> None:
    """The first twenty parameters are 1.0.0's, in order; only the rate limit default differs."""
    params = list(inspect.signature(ConnectionManager).parameters.values())[: len(CONSTRUCTOR_1_0)]
    assert [p.name for p in params] == [name for name, _ in CONSTRUCTOR_1_0]
    for param, (name, default) in zip(params, CONSTRUCTOR_1_0):
        assert param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, name
        if name == "rate_limit_requests":
            assert param.default is None  # deliberate: no silent cap (docs/migration.md)
        else:
            assert param.default == default, name


def test_methods_and_parameter_names_match_1_0() -> None:
    """Every 1.0.0 method exists with its parameter names (extra keywords only at the end)."""
    for method, names in METHODS_1_0.items():
        params = list(inspect.signature(getattr(ConnectionManager, method)).parameters)[1:]
        assert params[: len(names)] == names, method


def test_all_twenty_arguments_by_position(pki: dict[str, str]) -> None:
    """Code that passed every 1.0.0 argument by position still works."""
    context = ssl.create_default_context()
    cm = ConnectionManager(
        20, 20, 5, 0.5, 100, 60, 10, 30, 30,
        {"api.example.com": {"timeout": 60}},
        "key", "X-API-Key", None, None, ("user", "pass"),
        pki["ca"], pki["client_pem"], 5.0, 30.0, context,
    )  # fmt: skip
    with cm:
        stats = cm.get_stats()
        assert stats["rate_limit_requests"] == 100
        assert stats["connect_timeout"] == 5.0
        assert stats["read_timeout"] == 30.0
        assert stats["ssl_verification"] == pki["ca"]
        assert stats["client_certificate_configured"] is True
        assert stats["ssl_context_configured"] is True
        assert cm.get_endpoint_configs() == {"api.example.com": {"timeout": 60}}
        assert cm.basic_auth == ("user", "pass")
        assert cm.api_key == "key"


# --------------------------------------------------------------------- quick start
def test_quick_start_and_basic_methods(app: AppServer) -> None:
    """Construct, call every verb, use it as a context manager, close it."""
    for path in ("/data", "/post", "/protected"):
        app.ok(path, b"{}", headers={"Content-Type": "application/json"})
    manager = ConnectionManager()
    assert manager.get(app.url("/data")).status_code == 200
    response = manager.post(app.url("/post"), json={"key": "value"})
    assert response.json() == {}
    assert app.requests[-1].body == b'{"key": "value"}'
    manager.get(app.url("/protected"), headers={"Authorization": "Bearer mine"})
    assert app.requests[-1].headers["Authorization"] == "Bearer mine"
    for verb in ("put", "patch", "delete", "options", "head"):
        assert getattr(manager, verb)(app.url("/data")).status_code == 200
        assert app.requests[-1].method == verb.upper()
    assert manager.request("GET", app.url("/data"), params={"page": 1}).status_code == 200
    assert app.requests[-1].query_string == "page=1"
    manager.close()
    with pytest.raises(rcm.ConnectionManagerError, match="closed"):
        manager.get(app.url("/data"))
    with ConnectionManager() as manager:
        assert manager.get(app.url("/data")).ok
    assert manager.closed


def test_configuration_example(app: AppServer) -> None:
    """The README's full configuration: every keyword accepted and reported."""
    app.ok("/x")
    with ConnectionManager(
        pool_connections=20,
        pool_maxsize=20,
        max_retries=5,
        backoff_factor=0.5,
        rate_limit_requests=100,
        rate_limit_period=60,
        circuit_breaker_failure_threshold=10,
        circuit_breaker_recovery_timeout=30,
        timeout=30,
    ) as manager:
        manager.get(app.url("/x"))
        stats = manager.get_stats()
    assert set(stats) >= STATS_1_0
    assert stats["rate_limit_requests"] == 100
    assert stats["rate_limit_period"] == 60
    assert stats["timeout"] == 30
    assert stats["requests_made"] == 1  # 1.0.0 always said 0
    assert stats["circuit_breaker_state"] == "closed"
    assert stats["circuit_breaker_failure_count"] == 0


# ------------------------------------------------------------ per-endpoint configuration
def test_per_endpoint_configuration(app: AppServer, pki: dict[str, str]) -> None:
    """The README's endpoint_configs, including TLS and credentials keys, apply by host."""
    app.ok("/data")
    endpoint_configs = {
        "127.0.0.1": {
            "timeout": 60,
            "rate_limit_requests": 50,
            "rate_limit_period": 60,
            "max_retries": 5,
            "circuit_breaker_failure_threshold": 10,
            "bearer_token": "company-specific-token",
        },
        "slow-service.example": {
            "timeout": 120,
            "rate_limit_requests": 10,
            "rate_limit_period": 60,
            "backoff_factor": 1.0,
        },
        "secure-api.company.example": {
            "verify": pki["ca"],
            "cert": (pki["client_crt"], pki["client_key"]),
            "connect_timeout": 2.0,
            "read_timeout": 45.0,
        },
        "public-api.example": {"verify": True, "connect_timeout": 5.0, "read_timeout": 15.0},
    }
    with ConnectionManager(timeout=30, endpoint_configs=endpoint_configs) as manager:
        assert manager.get(app.url("/data")).status_code == 200
        assert manager.get_endpoint_configs() == endpoint_configs
        host = manager.get_stats()["hosts"][f"http://127.0.0.1:{app.port} [127.0.0.1]"]
    assert app.requests[-1].headers["Authorization"] == "Bearer company-specific-token"
    assert host["requests"] == 1


def test_dynamic_endpoint_configuration() -> None:
    """add_endpoint_config / remove_endpoint_config (absent: no error) / get_endpoint_configs."""
    manager = ConnectionManager()
    manager.add_endpoint_config(
        "new-api.example", {"timeout": 45, "rate_limit_requests": 75, "max_retries": 3}
    )
    manager.remove_endpoint_config("old-api.example")
    configs = manager.get_endpoint_configs()
    assert configs == {
        "new-api.example": {"timeout": 45, "rate_limit_requests": 75, "max_retries": 3}
    }
    manager.remove_endpoint_config("new-api.example")
    assert manager.get_endpoint_configs() == {}
    manager.close()


def test_advanced_connection_options(pki: dict[str, str]) -> None:
    """verify, cert, timeouts and ssl_context in the constructor and through the setters."""
    ssl_context = ssl.create_default_context()
    ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
    manager = ConnectionManager(
        verify=pki["ca"],
        cert=pki["client_pem"],
        connect_timeout=5.0,
        read_timeout=30.0,
        ssl_context=ssl_context,
    )
    manager.set_ssl_verification(pki["ca"])
    manager.set_client_certificate((pki["client_crt"], pki["client_key"]))
    manager.set_timeouts(connect_timeout=3.0, read_timeout=25.0)
    manager.set_ssl_context(ssl_context)
    stats = manager.get_stats()
    assert (stats["connect_timeout"], stats["read_timeout"]) == (3.0, 25.0)
    assert manager.cert == (pki["client_crt"], pki["client_key"])
    assert manager.ssl_context is ssl_context
    manager.set_timeouts(read_timeout=10.0)  # None leaves the other one as it was
    assert (manager.connect_timeout, manager.read_timeout) == (3.0, 10.0)
    manager.close()


# ------------------------------------------------------------------ authentication
def test_authentication_examples(app: AppServer) -> None:
    """Constructor credentials, the setters, set_endpoint_auth and clear_auth, as documented."""
    app.ok("/me")
    with ConnectionManager(api_key="your-api-key", api_key_header="X-API-Key") as manager:
        manager.get(app.url("/me"))
        assert app.requests[-1].headers["X-Api-Key"] == "your-api-key"
        manager.set_api_key("new-api-key", "Authorization")
        manager.get(app.url("/me"))
        assert app.requests[-1].headers["Authorization"] == "new-api-key"
        manager.set_bearer_token("new-bearer-token")
        manager.set_oauth2_token("new-oauth2-token")
        manager.get(app.url("/me"))
        assert app.requests[-1].headers["Authorization"] == "Bearer new-oauth2-token"
        manager.set_basic_auth("user", "pass")
        manager.set_endpoint_auth("api.service1.example", "bearer", token="service1-token")
        manager.set_endpoint_auth(
            "127.0.0.1", "api_key", api_key="service2-key", header_name="X-Service2-Key"
        )
        manager.get(app.url("/me"))
        assert app.requests[-1].headers["X-Service2-Key"] == "service2-key"
        assert app.requests[-1].headers["Authorization"].startswith("Basic ")
        manager.clear_auth()
        manager.clear_auth("api.service1.example")
        manager.get(app.url("/me"))
        assert "Authorization" not in app.requests[-1].headers
        assert app.requests[-1].headers["X-Service2-Key"] == "service2-key"
    for kwargs in ({"bearer_token": "t"}, {"oauth2_token": "t"}, {"basic_auth": ("u", "p")}):
        with ConnectionManager(**kwargs) as manager:  # type: ignore[arg-type]
            manager.get(app.url("/me"))
        assert "Authorization" in app.requests[-1].headers


# -------------------------------------------------------------------- batch requests
def test_batch_request_example(app: AppServer) -> None:
    """The README's batch: mixed methods and kwargs, results in order."""
    for path in ("/users", "/data", "/status"):
        app.ok(path, path.encode())
    requests_data = [
        ("GET", app.url("/users"), {}),
        ("POST", app.url("/data"), {"json": {"key": "value"}}),
        ("GET", app.url("/status"), {"timeout": 10}),
    ]
    with ConnectionManager() as manager:
        results = manager.batch_request(requests_data, max_workers=5)
    assert [r.text for r in results if isinstance(r, requests.Response)] == [
        "/users",
        "/data",
        "/status",
    ]


# ------------------------------------------------------------ advanced features, errors
def test_error_handling_example(app: AppServer) -> None:
    """Catching the documented exceptions works, and so do requests' own classes."""
    from requests_connection_manager.exceptions import (
        CircuitBreakerOpen,
        ConnectionManagerError,
        MaxRetriesExceeded,
        RateLimitExceeded,
    )

    app.fail_then_ok("/data", failures=100, status=500)
    with ConnectionManager(
        max_retries=1,
        backoff_factor=0,
        circuit_breaker_failure_threshold=2,
        rate_limit_requests=10,
        rate_limit_period=60,
        rate_limit_max_wait=0,
    ) as manager:
        with pytest.raises(MaxRetriesExceeded) as info:
            manager.get(app.url("/data"))
        assert isinstance(info.value, requests.RequestException)
        with pytest.raises(CircuitBreakerOpen):
            manager.get(app.url("/data"))
    app.ok("/ok")
    with ConnectionManager(
        rate_limit_requests=1, rate_limit_period=60, rate_limit_max_wait=0
    ) as manager:
        manager.get(app.url("/ok"))
        with pytest.raises(RateLimitExceeded):
            manager.get(app.url("/ok"))
    with ConnectionManager(max_retries=0) as manager, pytest.raises(ConnectionManagerError):
        manager.get(f"http://127.0.0.1:{free_port()}/")


def test_thread_safety_example(app: AppServer) -> None:
    """One manager shared by threads: every call completes and is counted."""
    app.ok("/x")
    manager = ConnectionManager()
    results: list[int] = []
    lock = threading.Lock()

    def make_request(url: str) -> None:
        response = manager.get(url)
        with lock:
            results.append(response.status_code)

    threads = [threading.Thread(target=make_request, args=(app.url("/x"),)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    manager.close()
    assert results == [200] * 8
    assert manager.get_stats()["requests_made"] == 8


def test_rate_limiting_is_off_unless_configured(app: AppServer) -> None:
    """1.0.0 capped everyone at 100 per minute; here 120 quick calls are never throttled."""
    app.ok("/x")
    with ConnectionManager() as manager:
        for _ in range(120):
            manager.get(app.url("/x"))
        stats = manager.get_stats()
    assert stats["rate_limit_requests"] is None
    assert stats["hosts"][f"http://127.0.0.1:{app.port}"]["throttled"] == 0
    assert app.hits("/x") == 120


def test_manager_logs_requests_through_the_safe_helpers_only_at_debug(
    app: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG a call is logged with secrets redacted; above it, nothing is logged."""
    app.ok("/x", b'{"token": "s3cr3t-body"}', headers={"Content-Type": "application/json"})
    with ConnectionManager(api_key="s3cr3t-key") as manager:
        with caplog.at_level(logging.INFO, logger="requests_connection_manager"):
            manager.get(app.url("/x?api_key=s3cr3t-query"))
        assert not [r for r in caplog.records if r.name.endswith("utils")]
        with caplog.at_level(logging.DEBUG, logger="requests_connection_manager"):
            manager.get(app.url("/x?api_key=s3cr3t-query"), headers={"X-Token": "s3cr3t-h"})
    logged = [r for r in caplog.records if r.name == "requests_connection_manager.utils"]
    assert logged
    assert "s3cr3t" not in caplog.text


def test_circuit_breaker_summary_keeps_1_0_0_attributes(app: AppServer) -> None:
    """cm.circuit_breaker answers what 1.0.0's pybreaker object did, over every host."""
    app.ok("/down", status=503)
    with ConnectionManager(
        max_retries=0, circuit_breaker_failure_threshold=2, circuit_breaker_recovery_timeout=30
    ) as cm:
        assert cm.circuit_breaker.current_state == "closed"
        for _ in range(2):
            cm.get(app.url("/down"))
        summary = cm.circuit_breaker
    assert (summary.current_state, summary.fail_max, summary.reset_timeout) == ("open", 2, 30)
    assert list(summary.hosts.values()) == ["open"]
    with ConnectionManager(circuit_breaker_failure_threshold=None) as cm:
        assert cm.circuit_breaker.current_state == "disabled"
        assert cm.circuit_breaker.fail_max is None
