"""Bodies the server encodes badly, and per-call timeout shapes."""

from __future__ import annotations

import pytest
import requests

from requests_connection_manager import ConnectionManager, MaxRetriesExceeded
from tests.fakes import FakeClock
from tests.faults import FaultServer, respond
from tests.servers import AppServer

pytestmark = pytest.mark.timeout(30)

GARBLED_GZIP = respond(200, {"Content-Encoding": "gzip"}, b"definitely not gzip")


@pytest.mark.parametrize("total_timeout", [None, 10.0], ids=["no-deadline", "deadline"])
def test_a_body_that_cannot_be_decoded_is_a_contract_error(
    faults: FaultServer, clock: FakeClock, total_timeout: float | None
) -> None:
    """Gzip that is not gzip: ContentDecodingError as in requests, retried like a bad body."""
    faults.default = GARBLED_GZIP
    with (
        ConnectionManager(
            max_retries=1,
            clock=clock,
            total_timeout=total_timeout,
            circuit_breaker_failure_threshold=None,
        ) as cm,
        pytest.raises(requests.exceptions.ContentDecodingError) as info,
    ):
        cm.get(faults.url("/"))
    assert isinstance(info.value, MaxRetriesExceeded)
    assert info.value.__cause__ is not None
    assert faults.connections == 2


def test_a_garbled_body_once_then_healthy_is_retried(faults: FaultServer, clock: FakeClock) -> None:
    """One undecodable body, then a good one: the GET succeeds on its second attempt."""
    faults.script([GARBLED_GZIP])
    with ConnectionManager(clock=clock) as cm:
        assert cm.get(faults.url("/")).content == b"ok"
    assert faults.connections == 2


def test_a_connect_read_pair_per_call(app: AppServer) -> None:
    """timeout=(connect, read) on a call bounds the read by its second part."""
    app.slow("/slow", 1.0)
    with ConnectionManager(timeout=30, max_retries=0) as cm, pytest.raises(requests.ReadTimeout):
        cm.get(app.url("/slow"), timeout=(5, 0.2))
