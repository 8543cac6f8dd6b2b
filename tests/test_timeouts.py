"""Timeouts: per-attempt, per-call overrides, and total_timeout as a deadline for the call."""

from __future__ import annotations

import pytest
import requests
import requests.exceptions as rex

from requests_connection_manager import (
    ConnectionManager,
    ConnectionManagerError,
    MaxRetriesExceeded,
)
from tests import faults as f
from tests.fakes import FakeClock
from tests.faults import FaultServer
from tests.servers import AppServer

pytestmark = pytest.mark.timeout(30)


def test_read_timeout_is_requests_read_timeout(faults: FaultServer) -> None:
    """A server that never answers gives a ReadTimeout that is also a contract error."""
    faults.default = f.hang(5)
    with (
        ConnectionManager(read_timeout=0.2, max_retries=0) as cm,
        pytest.raises(requests.ReadTimeout) as info,
    ):
        cm.get(faults.url("/x"))
    assert isinstance(info.value, ConnectionManagerError)
    assert info.value.__cause__ is not None


def test_per_call_timeout_overrides_the_manager(faults: FaultServer) -> None:
    """timeout= on the call wins over the manager's 30 s."""
    faults.default = f.hang(5)
    with ConnectionManager(timeout=30, max_retries=0) as cm, pytest.raises(requests.ReadTimeout):
        cm.get(faults.url("/x"), timeout=0.2)


def test_read_timeouts_are_retried_for_get(faults: FaultServer) -> None:
    """A GET that timed out once is retried and succeeds."""
    faults.script([f.hang(5)])
    with ConnectionManager(read_timeout=0.2, backoff_factor=0) as cm:
        assert cm.get(faults.url("/x")).status_code == 200
    assert faults.connections == 2


def test_exhausted_read_timeouts_are_max_retries_and_read_timeout(faults: FaultServer) -> None:
    """After retries, the error is both MaxRetriesExceeded and ReadTimeout."""
    faults.default = f.hang(5)
    with (
        ConnectionManager(read_timeout=0.1, max_retries=1, backoff_factor=0) as cm,
        pytest.raises(MaxRetriesExceeded) as info,
    ):
        cm.get(faults.url("/x"))
    assert isinstance(info.value, rex.ReadTimeout)
    assert info.value.attempts == 2


def test_total_timeout_bounds_a_dripping_body(faults: FaultServer) -> None:
    """A body that drips forever cannot keep the call past total_timeout."""
    faults.default = f.drip(b"x" * 10_000, interval=0.05)
    with (
        ConnectionManager(total_timeout=0.5, max_retries=0) as cm,
        pytest.raises(requests.Timeout) as info,
    ):
        cm.get(faults.url("/x"))
    assert isinstance(info.value, ConnectionManagerError)
    assert "total_timeout" in str(info.value)


def test_streamed_body_is_left_to_the_caller(faults: FaultServer) -> None:
    """With stream=True the library returns at the headers and never reads the body."""
    faults.default = f.drip(b"abc", interval=0.01)
    with ConnectionManager(total_timeout=5) as cm:
        response = cm.get(faults.url("/x"), stream=True)
        assert response.status_code == 200
        assert response.raw.tell() == 0
        assert response.content == b"abc"


def test_total_timeout_stops_retrying(app: AppServer, clock: FakeClock) -> None:
    """Backoff never sleeps past the deadline; the call gives up with the last outcome."""
    app.fail_then_ok("/x", failures=100, status=503)
    with (
        ConnectionManager(
            max_retries=50,
            backoff_factor=1,
            total_timeout=5,
            circuit_breaker_failure_threshold=None,
            clock=clock,
        ) as cm,
        pytest.raises(MaxRetriesExceeded) as info,
    ):
        cm.get(app.url("/x"))
    assert sum(clock.sleeps) < 5
    assert info.value.attempts < 51
    assert info.value.last_response is not None


def test_explicit_none_timeout_means_no_timeout(faults: FaultServer) -> None:
    """timeout=None on a call disables connect/read timeouts; total_timeout still bounds it."""
    faults.default = f.hang(5)
    with (
        ConnectionManager(timeout=0.05, total_timeout=0.6, max_retries=0) as cm,
        pytest.raises(requests.Timeout) as info,
    ):
        cm.get(faults.url("/x"), timeout=None)
    assert isinstance(info.value, requests.ReadTimeout)
