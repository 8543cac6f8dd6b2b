"""The circuit breaker in the pipeline: per host, real errors on trip, bounded probes."""

from __future__ import annotations

import threading

import pytest
import requests
import requests.exceptions as rex
from werkzeug.wrappers import Request, Response

from requests_connection_manager import CircuitBreakerOpen, ConnectionManager, MaxRetriesExceeded
from tests import faults as f
from tests.fakes import FakeClock
from tests.faults import FaultServer
from tests.servers import AppServer, free_port

pytestmark = pytest.mark.timeout(30)


def test_opens_on_5xx_and_rejects_without_traffic(app: AppServer, clock: FakeClock) -> None:
    """After the threshold of 5xx attempts the next call is refused with no request sent."""
    app.fail_then_ok("/x", failures=100, status=500)
    with ConnectionManager(max_retries=0, circuit_breaker_failure_threshold=3, clock=clock) as cm:
        for _ in range(3):
            assert cm.get(app.url("/x")).status_code == 500
        with pytest.raises(CircuitBreakerOpen) as info:
            cm.get(app.url("/x"))
        stats = cm.get_stats()
    assert app.hits("/x") == 3
    assert isinstance(info.value, rex.ConnectionError)
    assert info.value.retry_after == pytest.approx(60.0)
    assert info.value.host == f"http://127.0.0.1:{app.port}"
    host = stats["hosts"][info.value.host]
    assert host["rejected_open"] == 1
    assert host["breaker_opened"] == 1
    assert stats["circuit_breaker_state"] == "open"


def test_tripping_call_raises_its_real_error(clock: FakeClock) -> None:
    """The call during which the breaker opens raises the connection error, not Open."""
    url = f"http://127.0.0.1:{free_port()}/x"
    with ConnectionManager(
        max_retries=5, backoff_factor=0, circuit_breaker_failure_threshold=2, clock=clock
    ) as cm:
        with pytest.raises(requests.ConnectionError) as first:
            cm.get(url)
        assert not isinstance(first.value, CircuitBreakerOpen)
        assert first.value.__cause__ is not None
        with pytest.raises(CircuitBreakerOpen):
            cm.get(url)
        host = next(iter(cm.get_stats()["hosts"].values()))
    assert host["attempts"] == 2  # the breaker cut the retries short


def test_opens_on_faults(faults: FaultServer, clock: FakeClock) -> None:
    """Connection faults count as failures too."""
    faults.default = f.reset_after_request()
    with ConnectionManager(max_retries=0, circuit_breaker_failure_threshold=2, clock=clock) as cm:
        for _ in range(2):
            with pytest.raises(requests.ConnectionError):
                cm.get(faults.url("/x"))
        with pytest.raises(CircuitBreakerOpen):
            cm.get(faults.url("/x"))
    assert faults.connections == 2


def test_tripping_status_cuts_retries_and_raises(app: AppServer, clock: FakeClock) -> None:
    """A 503 that opens the breaker on a call's first attempt raises MaxRetriesExceeded."""
    app.fail_then_ok("/x", failures=100, status=503)
    with ConnectionManager(circuit_breaker_failure_threshold=1, clock=clock) as cm:
        with pytest.raises(MaxRetriesExceeded) as info:
            cm.get(app.url("/x"))
        assert info.value.attempts == 1
        assert info.value.last_response is not None
        assert info.value.last_response.status_code == 503
        assert isinstance(info.value, rex.RetryError)
    assert app.hits("/x") == 1


def test_tripping_status_that_would_not_be_retried_is_returned(
    app: AppServer, clock: FakeClock
) -> None:
    """A POST's 500 that opens the breaker is still just returned: no retry was cut short."""
    app.ok("/x", status=500)
    with ConnectionManager(circuit_breaker_failure_threshold=1, clock=clock) as cm:
        assert cm.post(app.url("/x"), data=b"x").status_code == 500
        with pytest.raises(CircuitBreakerOpen):
            cm.post(app.url("/x"), data=b"x")
    assert app.hits("/x") == 1


def test_breakers_are_per_host(clock: FakeClock) -> None:
    """One failing host does not open the breaker of another."""
    with AppServer() as bad, AppServer() as good:
        bad.fail_then_ok("/x", failures=100, status=503)
        good.ok("/x")
        with ConnectionManager(
            max_retries=0, circuit_breaker_failure_threshold=1, clock=clock
        ) as cm:
            cm.get(bad.url("/x"))
            with pytest.raises(CircuitBreakerOpen):
                cm.get(bad.url("/x"))
            assert cm.get(good.url("/x")).status_code == 200


def test_recovers_through_a_probe(app: AppServer, clock: FakeClock) -> None:
    """After the recovery timeout one probe goes through; its success closes the breaker."""
    app.sequence("/x", [(500, None, b"down"), (200, None, b"up")])
    with ConnectionManager(
        max_retries=0,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_recovery_timeout=30,
        clock=clock,
    ) as cm:
        cm.get(app.url("/x"))
        with pytest.raises(CircuitBreakerOpen):
            cm.get(app.url("/x"))
        clock.advance(30)
        assert cm.get(app.url("/x")).text == "up"
        assert cm.get_stats()["circuit_breaker_state"] == "closed"
    assert app.hits("/x") == 2


def test_half_open_admits_a_bounded_number_of_probes(app: AppServer, clock: FakeClock) -> None:
    """While one probe is in flight, other calls are refused (half_open_max_calls=1)."""
    release = threading.Event()
    inside = threading.Event()
    state = {"calls": 0}

    def handler(request: Request) -> Response:
        state["calls"] += 1
        if state["calls"] == 1:
            return Response("down", status=503)
        inside.set()
        release.wait(10)
        return Response("up")

    app.route("/x", handler)
    with ConnectionManager(
        max_retries=0,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_recovery_timeout=5,
        clock=clock,
    ) as cm:
        cm.get(app.url("/x"))
        clock.advance(5)
        results: list[int] = []
        probe = threading.Thread(target=lambda: results.append(cm.get(app.url("/x")).status_code))
        probe.start()
        assert inside.wait(10)
        with pytest.raises(CircuitBreakerOpen):
            cm.get(app.url("/x"))
        release.set()
        probe.join(10)
        assert results == [200]
        assert cm.get(app.url("/x")).status_code == 200
    assert state["calls"] == 3


def test_breaker_can_be_disabled(app: AppServer, clock: FakeClock) -> None:
    """circuit_breaker_failure_threshold=None turns the breaker off."""
    app.fail_then_ok("/x", failures=100, status=500)
    with ConnectionManager(
        max_retries=0, circuit_breaker_failure_threshold=None, clock=clock
    ) as cm:
        for _ in range(20):
            assert cm.get(app.url("/x")).status_code == 500
        assert cm.get_stats()["circuit_breaker_state"] == "disabled"


def test_4xx_and_429_do_not_count_as_failures(app: AppServer, clock: FakeClock) -> None:
    """Client errors are answers; only >= 500 and transport faults feed the breaker."""
    app.ok("/nf", status=404)
    app.ok("/busy", status=429)
    with ConnectionManager(max_retries=0, circuit_breaker_failure_threshold=1, clock=clock) as cm:
        for _ in range(5):
            cm.get(app.url("/nf"))
            cm.get(app.url("/busy"))
        assert cm.get_stats()["circuit_breaker_state"] == "closed"


def test_refusals_are_counted_and_offered_to_error_hooks_through_every_entry(
    app: AppServer, clock: FakeClock
) -> None:
    """A refused call (answered before requests prepares it) counts like any other call."""
    app.fail_then_ok("/x", failures=100, status=500)
    fallback = requests.Response()
    fallback.status_code = 203
    with ConnectionManager(max_retries=0, circuit_breaker_failure_threshold=1, clock=clock) as cm:
        assert cm.get(app.url("/x")).status_code == 500
        with pytest.raises(CircuitBreakerOpen):
            cm.get(app.url("/x"), params={"page": 2})
        with pytest.raises(CircuitBreakerOpen):
            cm.session.post(app.url("/other"), json={"a": 1})
        cm.register_error_hook(lambda ctx: ctx.set_fallback_response(fallback))
        assert cm.get(app.url("/x")) is fallback
        stats = cm.get_stats()
    host = stats["hosts"][f"http://127.0.0.1:{app.port}"]
    assert stats["requests_made"] == 4
    assert host["requests"] == 4
    assert host["rejected_open"] == 3
    assert app.hits("/x") == 1
