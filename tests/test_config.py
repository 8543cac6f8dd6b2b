"""Validation of every constructor keyword: accepted, or refused naming the parameter."""

from __future__ import annotations

from typing import Any

import pytest
from urllib3.util.retry import Retry

from requests_connection_manager import ConnectionManager

pytestmark = pytest.mark.timeout(10)

BAD: list[tuple[str, Any, type[Exception]]] = [
    ("pool_connections", 0, ValueError),
    ("pool_connections", "10", TypeError),
    ("pool_maxsize", -1, ValueError),
    ("pool_maxsize", 2.5, TypeError),
    ("pool_maxsize", 10_001, ValueError),
    ("pool_connections", 10**9, ValueError),
    ("pool_block", "yes", TypeError),
    ("max_retries", -1, ValueError),
    ("max_retries", True, TypeError),
    ("backoff_factor", -0.1, ValueError),
    ("backoff_factor", "fast", TypeError),
    ("backoff_factor", float("nan"), ValueError),
    ("retry", 3, TypeError),
    ("rate_limit_requests", 0, ValueError),
    ("rate_limit_requests", 1.5, TypeError),
    ("rate_limit_period", 0, ValueError),
    ("rate_limit_period", float("inf"), ValueError),
    ("rate_limit_max_wait", -1, ValueError),
    ("rate_limit_strategy", "token-bucket", ValueError),
    ("circuit_breaker_failure_threshold", 0, ValueError),
    ("circuit_breaker_failure_threshold", "5", TypeError),
    ("circuit_breaker_recovery_timeout", 0, ValueError),
    ("circuit_breaker_half_open_max_calls", 0, ValueError),
    ("circuit_breaker_window", 1.1e-308, ValueError),
    ("circuit_breaker_window", 1e9, ValueError),
    ("circuit_breaker_window", 0, ValueError),
    ("circuit_breaker_failure_rate", 1.5, ValueError),
    ("circuit_breaker_minimum_calls", 0, ValueError),
    ("circuit_breaker_slow_call_duration", -1, ValueError),
    ("timeout", 0, ValueError),
    ("timeout", -3, ValueError),
    ("timeout", (1, 2, 3), ValueError),
    ("timeout", "30", TypeError),
    ("connect_timeout", 0, ValueError),
    ("read_timeout", "1", TypeError),
    ("total_timeout", -1, ValueError),
    ("retry_after_max", -5, ValueError),
]


@pytest.mark.parametrize(("name", "value", "error"), BAD)
def test_bad_value_is_refused_naming_the_parameter(
    name: str, value: Any, error: type[Exception]
) -> None:
    """Each bad value raises ValueError/TypeError whose message names the keyword."""
    with pytest.raises(error, match=name):
        ConnectionManager(**{name: value})


def test_sliding_window_needs_whole_seconds() -> None:
    """The moving window works in whole seconds; a fractional period is refused."""
    with pytest.raises(ValueError, match="rate_limit_period"):
        ConnectionManager(
            rate_limit_requests=5, rate_limit_period=0.5, rate_limit_strategy="sliding-window"
        )


GOOD: list[dict[str, Any]] = [
    {},
    {"max_retries": 0, "backoff_factor": 0},
    {"retry": Retry(total=2, status_forcelist=[502])},
    {"rate_limit_requests": 10, "rate_limit_period": 0.5, "rate_limit_max_wait": 0},
    {"rate_limit_requests": 10, "rate_limit_period": 1, "rate_limit_strategy": "sliding-window"},
    {"circuit_breaker_failure_threshold": None},
    {"timeout": None},
    {"timeout": (1.5, 10)},
    {"timeout": 5, "connect_timeout": 1, "read_timeout": 2, "total_timeout": 3},
    {"pool_block": True, "pool_connections": 1, "pool_maxsize": 1},
]


@pytest.mark.parametrize("kwargs", GOOD)
def test_good_values_are_accepted(kwargs: dict[str, Any]) -> None:
    """Valid configurations become the policy they say (checked through cm.policy)."""
    with ConnectionManager(**kwargs) as cm:
        policy = cm.policy
        for name, value in kwargs.items():
            if name == "timeout" and {"connect_timeout", "read_timeout"} & set(kwargs):
                continue  # refined by the two below, which are checked themselves
            assert _reads_back(policy, cm, name) == value, name


def _reads_back(policy: Any, cm: ConnectionManager, name: str) -> Any:
    """The value of keyword ``name`` as the frozen policy (or the adapter) holds it."""
    where = {
        "max_retries": lambda: policy.retries.max_retries,
        "backoff_factor": lambda: policy.retries.backoff_factor,
        "retry": lambda: policy.retries.policy,
        "rate_limit_requests": lambda: policy.rate_limit.requests,
        "rate_limit_period": lambda: policy.rate_limit.period,
        "rate_limit_max_wait": lambda: policy.rate_limit.max_wait,
        "rate_limit_strategy": lambda: policy.rate_limit.strategy,
        "circuit_breaker_failure_threshold": lambda: policy.breaker,
        "timeout": lambda: (
            None
            if policy.timeouts.connect is None
            else (policy.timeouts.connect, policy.timeouts.read)
            if policy.timeouts.connect != policy.timeouts.read
            else policy.timeouts.connect
        ),
        "connect_timeout": lambda: policy.timeouts.connect,
        "read_timeout": lambda: policy.timeouts.read,
        "total_timeout": lambda: policy.timeouts.total,
        "pool_block": lambda: cm.adapter._pool_block,
        "pool_connections": lambda: cm.adapter._pool_connections,
        "pool_maxsize": lambda: cm.adapter._pool_maxsize,
    }
    return where[name]()


def test_positional_order_matches_1_0_0() -> None:
    """The first nine parameters may be passed by position, in 1.0.0's order."""
    cm = ConnectionManager(2, 3, 1, 0.5, 7, 30, 4, 9.0, 12)
    stats = cm.get_stats()
    assert stats["rate_limit_requests"] == 7
    assert stats["rate_limit_period"] == 30
    assert stats["timeout"] == 12
    assert stats["connect_timeout"] == 12.0
    cm.close()


def test_connect_and_read_timeouts_override_timeout() -> None:
    """connect_timeout/read_timeout override the matching part of timeout."""
    cm = ConnectionManager(timeout=30, connect_timeout=2, read_timeout=7)
    stats = cm.get_stats()
    assert (stats["connect_timeout"], stats["read_timeout"]) == (2.0, 7.0)
    cm.close()


def test_an_endpoints_rate_limit_max_wait_bounds_the_waits_the_server_asks_for() -> None:
    """rate_limit_max_wait set for one endpoint only: that endpoint never waits for a pause."""
    with ConnectionManager(endpoint_configs={"api.example.com": {"rate_limit_max_wait": 0}}) as cm:
        assert cm.policy_for("http://api.example.com/x").signals.max_wait == 0
        assert cm.policy.signals.max_wait is None
