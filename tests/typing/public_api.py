"""Every public signature, used once, for ``mypy --strict`` (never run; it only type-checks).

If a public signature changes in a way that breaks its users, this file stops
type-checking: CI runs ``mypy --strict src tests/typing``.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any, Optional, Union

import requests
from urllib3.util.retry import Retry

import requests_connection_manager as rcm
from requests_connection_manager import (
    CircuitBreakerOpen,
    Clock,
    ConnectionManager,
    ConnectionManagerError,
    ErrorContext,
    HookType,
    MaxRetriesExceeded,
    PluginManager,
    RateLimitExceeded,
    RequestContext,
    ResilientAdapter,
    ResponseContext,
    SystemClock,
    is_sensitive_field,
    redact_sensitive_data,
    safe_log_error,
    safe_log_request,
    safe_log_response,
)
from requests_connection_manager import exceptions as exceptions_module
from requests_connection_manager import plugins as plugins_module
from requests_connection_manager import utils as utils_module


class MyClock:
    """A user's clock: satisfies the Clock protocol structurally."""

    def monotonic(self) -> float:
        return 0.0

    def time(self) -> float:
        return 0.0

    def sleep(self, seconds: float, wake: Optional[threading.Event] = None) -> None:
        return None


def construct(context: ssl.SSLContext, clock: Clock) -> ConnectionManager:
    """Every constructor keyword, by name."""
    return ConnectionManager(
        pool_connections=10,
        pool_maxsize=10,
        max_retries=3,
        backoff_factor=0.3,
        rate_limit_requests=100,
        rate_limit_period=60,
        circuit_breaker_failure_threshold=5,
        circuit_breaker_recovery_timeout=60,
        timeout=(3.0, 30.0),
        endpoint_configs={"api.example.com": {"timeout": 60, "bearer_token": "t"}},
        api_key="k",
        api_key_header="X-API-Key",
        bearer_token=None,
        oauth2_token=None,
        basic_auth=("user", "password"),
        verify=True,
        cert=None,
        connect_timeout=3.0,
        read_timeout=30.0,
        ssl_context=context,
        pool_block=False,
        retry=Retry(total=2),
        rate_limit_max_wait=5.0,
        rate_limit_strategy="sliding-window",
        circuit_breaker_half_open_max_calls=1,
        total_timeout=60.0,
        retry_after_max=120,
        retry_budget=0.2,
        retry_budget_burst=10,
        redis_url=None,
        redis_client=None,
        redis_prefix="rcm",
        clock=clock,
    )


def positional() -> ConnectionManager:
    """The 1.0.0 positional order."""
    return ConnectionManager(10, 10, 3, 0.3, 100, 60, 5, 60, 30, None, "k", "X-API-Key")


def calls(cm: ConnectionManager, url: str) -> list[requests.Response]:
    """The verbs, batch_request and the session."""
    out: list[requests.Response] = [
        cm.request("GET", url, params={"page": 1}),
        cm.get(url, timeout=None),
        cm.post(url, json={"a": 1}),
        cm.put(url, data=b"x"),
        cm.patch(url),
        cm.delete(url),
        cm.head(url),
        cm.options(url),
        cm.session.get(url),
    ]
    results: list[Union[requests.Response, Exception]] = cm.batch_request(
        [("GET", url, {})], max_workers=2, return_exceptions=True, on_progress=_progress
    )
    out.extend(r for r in results if isinstance(r, requests.Response))
    return out


def _progress(done: int, total: int) -> None:
    return None


def settings(cm: ConnectionManager, context: ssl.SSLContext) -> dict[str, Any]:
    """Endpoint configs, credentials, TLS and timeout setters, stats, lifecycle."""
    cm.add_endpoint_config("*.example.com/v2", {"max_retries": 1})
    cm.remove_endpoint_config("*.example.com/v2")
    configs: dict[str, dict[str, Any]] = cm.get_endpoint_configs()
    cm.set_api_key("k", header_name="X-Key")
    cm.set_bearer_token("t")
    cm.set_oauth2_token("t")
    cm.set_basic_auth("u", "p")
    cm.set_endpoint_auth("api.example.com", "bearer", token="t")
    cm.clear_auth("api.example.com")
    cm.clear_auth()
    cm.set_ssl_verification(True)
    cm.set_client_certificate(None)
    cm.set_timeouts(connect_timeout=1.0, read_timeout=2.0)
    cm.set_ssl_context(context)
    closed: bool = cm.closed
    stats: dict[str, Any] = cm.get_stats()
    stats["configs"] = configs
    stats["closed"] = closed
    stats["views"] = (
        cm.timeout,
        cm.rate_limit_requests,
        cm.rate_limit_period,
        cm.connect_timeout,
        cm.read_timeout,
        cm.verify,
        cm.cert,
        cm.ssl_context,
        cm.api_key,
        cm.api_key_header,
        cm.bearer_token,
        cm.oauth2_token,
        cm.basic_auth,
        cm.endpoint_configs,
    )
    with cm as same:
        same.close()
    return stats


def hooks(cm: ConnectionManager, fallback: requests.Response) -> dict[str, list[str]]:
    """The plugin API."""

    def pre(ctx: RequestContext) -> None:
        ctx.update_url(ctx.url)
        ctx.update_headers({"X-Trace": "1"})
        ctx.update_payload(json={"a": 1})

    def post(ctx: ResponseContext) -> None:
        ctx.mark_modified()

    def on_error(ctx: ErrorContext) -> None:
        ctx.set_fallback_response(fallback)

    cm.register_pre_request_hook(pre)
    cm.register_post_response_hook(post)
    cm.register_error_hook(on_error)
    cm.unregister_hook(HookType.PRE_REQUEST, pre)
    cm.unregister_hook("post_response", post)
    manager: PluginManager = cm.plugin_manager
    manager.register_hook(HookType.ERROR_HANDLER, on_error)
    manager.clear_hooks(HookType.ERROR_HANDLER)
    return cm.list_hooks()


def errors(cm: ConnectionManager, url: str) -> Optional[float]:
    """The exception contract and its attributes."""
    try:
        cm.get(url)
    except RateLimitExceeded as exc:
        return exc.retry_after
    except CircuitBreakerOpen as exc:
        return exc.retry_after
    except MaxRetriesExceeded as exc:
        return float(exc.attempts) if exc.last_response is None else None
    except ConnectionManagerError as exc:
        base: requests.RequestException = exc  # every contract error is a requests error
        return None if base.response is None else 0.0
    assert exceptions_module.ConnectionManagerError is ConnectionManagerError
    return None


def helpers(response: requests.Response) -> object:
    """The utils helpers and the adapter and clock."""
    redacted: Any = redact_sensitive_data({"password": "x"}, redaction_text="***")
    sensitive: bool = is_sensitive_field("Authorization")
    safe_log_request("GET", "http://x/", headers={"A": "b"}, payload=None, level=logging.DEBUG)
    safe_log_response(response, level=logging.DEBUG)
    safe_log_error(ValueError("x"), "GET", "http://x/", level=logging.ERROR)
    assert utils_module.redact_sensitive_data is redact_sensitive_data
    assert plugins_module.HookType is HookType
    clock: Clock = MyClock()
    system: Clock = SystemClock()
    adapter_class: type[ResilientAdapter] = ResilientAdapter
    version: str = rcm.__version__
    return (redacted, sensitive, clock, system, adapter_class, version)
