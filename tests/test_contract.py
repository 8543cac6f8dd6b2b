"""Table-driven: each failure kind leaves as a contract error that is the requests class."""

from __future__ import annotations

from typing import Callable

import pytest
import requests
import requests.exceptions as rex

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    ConnectionManagerError,
    MaxRetriesExceeded,
    RateLimitExceeded,
)
from tests import faults as f
from tests.faults import FaultServer
from tests.servers import free_port

pytestmark = pytest.mark.timeout(30)

Case = Callable[[FaultServer, ConnectionManager], None]


def refused(srv: FaultServer, cm: ConnectionManager) -> None:
    cm.get(f"http://127.0.0.1:{free_port()}/")


def reset(srv: FaultServer, cm: ConnectionManager) -> None:
    srv.default = f.reset_after_request()
    cm.get(srv.url("/"))


def post_reset(srv: FaultServer, cm: ConnectionManager) -> None:
    srv.default = f.reset_after_request()
    cm.post(srv.url("/"), data=b"x")


def garbage(srv: FaultServer, cm: ConnectionManager) -> None:
    srv.default = f.garbage_status()
    cm.get(srv.url("/"))


def truncated(srv: FaultServer, cm: ConnectionManager) -> None:
    srv.default = f.truncated_body()
    cm.get(srv.url("/"))


def broken_chunk(srv: FaultServer, cm: ConnectionManager) -> None:
    srv.default = f.broken_chunked()
    cm.get(srv.url("/"))


def hang(srv: FaultServer, cm: ConnectionManager) -> None:
    srv.default = f.hang(5)
    cm.get(srv.url("/"), timeout=0.1)


def status_503(srv: FaultServer, cm: ConnectionManager) -> None:
    srv.default = f.respond(503)
    cm.get(srv.url("/"))


def redirect_loop(srv: FaultServer, cm: ConnectionManager) -> None:
    srv.default = f.redirect("/")
    cm.get(srv.url("/"))


def missing_schema(srv: FaultServer, cm: ConnectionManager) -> None:
    cm.get("127.0.0.1/no-scheme")


def invalid_url(srv: FaultServer, cm: ConnectionManager) -> None:
    cm.get("http://[::1/broken")


def breaker_open(srv: FaultServer, cm: ConnectionManager) -> None:
    srv.default = f.respond(500)
    with ConnectionManager(max_retries=0, circuit_breaker_failure_threshold=2) as breaking:
        for _ in range(2):
            breaking.get(srv.url("/"))
        breaking.get(srv.url("/"))


def rate_limited(srv: FaultServer, cm: ConnectionManager) -> None:
    with ConnectionManager(rate_limit_requests=1, rate_limit_max_wait=0) as limited:
        limited.get(srv.url("/"))
        limited.get(srv.url("/"))


CASES: list[tuple[Case, type[BaseException], tuple[type[BaseException], ...]]] = [
    (refused, rex.ConnectionError, (MaxRetriesExceeded,)),
    (reset, rex.ConnectionError, (MaxRetriesExceeded,)),
    (post_reset, rex.ConnectionError, ()),
    (garbage, rex.ConnectionError, (MaxRetriesExceeded,)),
    (truncated, rex.ChunkedEncodingError, (MaxRetriesExceeded,)),
    (broken_chunk, rex.ChunkedEncodingError, (MaxRetriesExceeded,)),
    (hang, rex.ReadTimeout, (MaxRetriesExceeded,)),
    (status_503, rex.RetryError, (MaxRetriesExceeded,)),
    (redirect_loop, rex.TooManyRedirects, ()),
    (missing_schema, rex.MissingSchema, ()),
    (invalid_url, rex.InvalidURL, ()),
    (breaker_open, rex.ConnectionError, (CircuitBreakerOpen,)),
    (rate_limited, rex.RequestException, (RateLimitExceeded,)),
]


@pytest.mark.parametrize(
    ("case", "requests_class", "extra"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_failure_kind_maps_into_the_contract(
    faults: FaultServer,
    case: Case,
    requests_class: type[BaseException],
    extra: tuple[type[BaseException], ...],
) -> None:
    """The error is a ConnectionManagerError, the requests class, and chains its cause."""
    with (
        ConnectionManager(
            max_retries=2, backoff_factor=0, circuit_breaker_failure_threshold=3
        ) as cm,
        pytest.raises(requests.RequestException) as info,
    ):
        case(faults, cm)
    error = info.value
    assert isinstance(error, ConnectionManagerError)
    assert isinstance(error, requests_class)
    for cls in extra:
        assert isinstance(error, cls)
    if not isinstance(error, (CircuitBreakerOpen, RateLimitExceeded)):
        assert error.__cause__ is not None


def test_session_errors_are_in_the_contract_too(faults: FaultServer) -> None:
    """Calls through cm.session raise the same contract errors."""
    faults.default = f.reset_after_request()
    with ConnectionManager(max_retries=0) as cm, pytest.raises(requests.ConnectionError) as info:
        cm.session.get(faults.url("/"))
    assert isinstance(info.value, ConnectionManagerError)
