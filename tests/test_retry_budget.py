"""The per-host retry budget: isolated failures retried, a failing host not multiplied."""

from __future__ import annotations

import pytest
import requests

from requests_connection_manager import ConnectionManager, MaxRetriesExceeded
from requests_connection_manager._budget import RetryBudget
from tests.fakes import FakeClock
from tests.servers import AppServer

pytestmark = pytest.mark.timeout(60)


# ------------------------------------------------------------------- the bucket
def test_bucket_starts_full_and_refills_by_ratio() -> None:
    """Burst retries at once, then one retry per 1/ratio first attempts."""
    budget = RetryBudget(ratio=0.25, burst=2)
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]
    for _ in range(3):
        budget.deposit()
    assert not budget.try_spend()  # 0.75 tokens
    budget.deposit()
    assert budget.try_spend()
    assert budget.tokens == 0


def test_bucket_never_holds_more_than_burst() -> None:
    """A long healthy period does not save up more than ``burst`` retries."""
    budget = RetryBudget(ratio=0.5, burst=3)
    for _ in range(1000):
        budget.deposit()
    assert budget.tokens == 3
    assert sum(budget.try_spend() for _ in range(10)) == 3


def test_zero_ratio_allows_only_the_burst() -> None:
    """Ratio 0 with burst 0 means no retries at all."""
    budget = RetryBudget(ratio=0.0, burst=0)
    budget.deposit()
    assert not budget.try_spend()


# --------------------------------------------------------------- on the wire
def _manager(clock: FakeClock, **kwargs: object) -> ConnectionManager:
    kwargs.setdefault("circuit_breaker_failure_threshold", None)
    kwargs.setdefault("max_retries", 3)
    return ConnectionManager(clock=clock, **kwargs)  # type: ignore[arg-type]


def _attempts_per_call(app: AppServer, cm: ConnectionManager, path: str, calls: int) -> float:
    before = app.hits(path)
    for _ in range(calls):
        with pytest.raises(MaxRetriesExceeded):
            cm.get(app.url(path))
    return (app.hits(path) - before) / calls


def test_a_host_failing_everything_gets_at_most_1_3_attempts_per_call(
    app: AppServer, clock: FakeClock
) -> None:
    """Steady state on a 100 % failing host: ~1.2 wire attempts per call, not 4."""
    app.fail_then_ok("/down", failures=10_000, status=503)
    with _manager(clock) as cm:
        warmup = _attempts_per_call(app, cm, "/down", 50)
        steady = _attempts_per_call(app, cm, "/down", 200)
        host = cm.get_stats()["hosts"][f"http://127.0.0.1:{app.port}"]
    assert warmup > 1.2  # the burst was spent first
    assert 1.1 <= steady <= 1.3
    assert host["retries_denied"] > 0
    assert host["attempts"] == app.hits("/down")


def test_without_a_budget_urllib3_retry_gives_four_attempts(
    app: AppServer, clock: FakeClock
) -> None:
    """The baseline the budget fixes: Retry(3) alone sends every call four times."""
    app.fail_then_ok("/down", failures=10_000, status=503)
    with _manager(clock, retry_budget=None) as cm:
        assert _attempts_per_call(app, cm, "/down", 50) == 4.0


def test_an_isolated_failure_on_a_healthy_host_is_retried(app: AppServer, clock: FakeClock) -> None:
    """After a healthy period a transient failure is retried as usual."""
    app.ok("/ok")
    app.fail_then_ok("/flaky", failures=2, status=503)
    with _manager(clock) as cm:
        for _ in range(20):
            cm.get(app.url("/ok"))
        assert cm.get(app.url("/flaky")).status_code == 200
    assert app.hits("/flaky") == 3


def test_budget_denial_ends_the_call_with_its_real_outcome(
    app: AppServer, clock: FakeClock
) -> None:
    """With the bucket empty, a failing call makes one attempt and says why it stopped."""
    app.fail_then_ok("/down", failures=100, status=503)
    with _manager(clock, retry_budget=0.0, retry_budget_burst=0) as cm:
        with pytest.raises(MaxRetriesExceeded, match="too many 503 error responses") as info:
            cm.get(app.url("/down"))
        assert info.value.reason == "the host's retry budget is spent"
        assert isinstance(info.value, requests.exceptions.RetryError)
        assert info.value.attempts == 1
        assert info.value.last_response is not None
        assert info.value.last_response.status_code == 503
    assert app.hits("/down") == 1
    assert clock.sleeps == []


def test_hosts_have_separate_budgets(app: AppServer, clock: FakeClock) -> None:
    """Draining one host's budget leaves another host's retries alone."""
    app.fail_then_ok("/down", failures=10_000, status=503)
    with AppServer("127.0.0.2") as other, _manager(clock, retry_budget_burst=2) as cm:
        other.fail_then_ok("/flaky", failures=1, status=503)
        _attempts_per_call(app, cm, "/down", 20)
        assert cm.get(other.url("/flaky")).status_code == 200
        assert other.hits("/flaky") == 2


def test_endpoint_config_may_set_its_own_budget(app: AppServer, clock: FakeClock) -> None:
    """retry_budget=None for one endpoint restores plain retries there."""
    app.fail_then_ok("/down", failures=10_000, status=503)
    with _manager(clock, endpoint_configs={"127.0.0.1": {"retry_budget": None}}) as cm:
        assert _attempts_per_call(app, cm, "/down", 30) == 4.0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"retry_budget": 1.5}, ValueError),
        ({"retry_budget": -0.1}, ValueError),
        ({"retry_budget": "20%"}, TypeError),
        ({"retry_budget_burst": -1}, ValueError),
        ({"retry_budget_burst": 2.5}, TypeError),
    ],
)
def test_bad_budget_settings_are_refused(kwargs: dict[str, object], error: type) -> None:
    """The budget keywords are validated like every other."""
    with pytest.raises(error, match=next(iter(kwargs))):
        ConnectionManager(**kwargs)  # type: ignore[arg-type]
