"""Listening to the server: advertised quotas, bare 429s, failure ratios, local throttling.

The quota and 429 servers here keep their windows on the test's fake clock, which the
manager sleeps on: windows turn as the client waits, so the runs are instant and every
count is exact.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import threading
import time
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from requests_connection_manager import ConnectionManager, RateLimitExceeded
from requests_connection_manager.events import AttemptStarted, HostPaused, Waited
from tests.fakes import FakeClock
from tests.servers import AppServer

pytestmark = pytest.mark.timeout(60)


class QuotaServer:
    """A route that allows ``limit`` requests per ``window`` seconds, in real time, and says so.

    Each answer carries what remains and when the window resets (rounded up, as a server
    must); beyond the quota it answers 429, and counts it.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.used: dict[int, int] = {}
        self.refused = 0
        self.served = 0
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self.lock:
            now = time.monotonic()
            epoch = int(now // self.window)
            used = self.used.get(epoch, 0) + 1
            self.used[epoch] = used
            reset = (epoch + 1) * self.window - now
            if used > self.limit:
                self.refused += 1
            else:
                self.served += 1
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - used)),
            "X-RateLimit-Reset": f"{math.ceil(reset * 1000) / 1000:.3f}",
        }
        return Response(b"ok", status=429 if used > self.limit else 200, headers=headers)


@pytest.fixture
def recorded() -> list[Any]:
    """A list that an ``on_event`` subscriber appends to."""
    return []


def _parallel(count: int, call: Any) -> list[Any]:
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            results[index] = call()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


# ---------------------------------------------------------------- server-advised quotas
@pytest.mark.timeout(30)
def test_threads_never_send_more_than_the_server_said_remains(app: AppServer) -> None:
    """8 threads x 3 calls against 6 per second: every call succeeds, the server refuses none.

    Real time: the server's windows and the client's waits must line up as they do in
    production (a fake clock shared by threads jumps while requests are on the wire). The
    window is long enough that a request the machine delays by a whole window (which the
    server would count in a window the client never saw) does not happen on a loaded CI.
    """
    quota = QuotaServer(limit=6, window=1.0)
    app.route("/q", quota)
    with ConnectionManager() as cm:
        assert cm.get(app.url("/q")).status_code == 200  # learns the quota
        results = _parallel(8, lambda: [cm.get(app.url("/q")).status_code for _ in range(3)])
    assert results == [[200] * 3] * 8
    assert (quota.refused, quota.served) == (0, 25)


@pytest.mark.parametrize(
    ("family", "seconds"),
    [("delta", 30.0), ("epoch", 30.0), ("ietf", 30.0), ("openai", 90.0), ("github", 30.0)],
)
def test_each_header_family_pauses_for_its_reset(
    app: AppServer, clock: FakeClock, family: str, seconds: float
) -> None:
    """0 left, in each family and reset form: the next call waits for the reset."""
    reset = {
        "delta": {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"},
        "epoch": {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(clock.time()) + 30)},
        "ietf": {"RateLimit": '"default";r=0;t=30', "RateLimit-Policy": '"default";q=60;w=60'},
        "openai": {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m30s"},
        "github": {"RateLimit-Remaining": "0", "RateLimit-Reset": "30"},
    }[family]
    answers = itertools.chain([Response(b"last", headers=reset)], itertools.repeat(Response(b"ok")))
    app.route("/q", lambda request: next(answers))
    with ConnectionManager(clock=clock) as cm:
        cm.get(app.url("/q"))
        cm.get(app.url("/q"))
    (slept,) = clock.sleeps
    assert seconds <= slept <= seconds + 1.0


def test_a_burst_that_fits_in_what_remains_is_not_slowed(app: AppServer, clock: FakeClock) -> None:
    """With 1,000 left, 50 quick calls go without a single wait."""
    app.ok("/q", headers={"X-RateLimit-Remaining": "1000", "X-RateLimit-Reset": "3600"})
    with ConnectionManager(clock=clock) as cm:
        for _ in range(50):
            assert cm.get(app.url("/q")).status_code == 200
    assert clock.sleeps == []


def test_remaining_zero_pauses_every_caller_until_the_reset(
    app: AppServer, clock: FakeClock, recorded: list[Any]
) -> None:
    """A response saying 0 remain for 30 s: the next call, any thread, waits it out first."""
    answers = itertools.chain(
        [Response(b"last", headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"})],
        itertools.repeat(Response(b"ok")),
    )
    app.route("/q", lambda request: next(answers))
    with ConnectionManager(clock=clock, on_event=recorded.append) as cm:
        assert cm.get(app.url("/q")).status_code == 200
        assert clock.sleeps == []
        (result,) = _parallel(1, lambda: cm.get(app.url("/q")).status_code)
        stats = cm.get_stats()["hosts"]
    assert result == 200
    (slept,) = clock.sleeps
    assert 30.0 <= slept <= 31.0  # the reset, plus up to 1 s of spread
    (pause,) = [e for e in recorded if isinstance(e, HostPaused)]
    assert (pause.source, pause.seconds) == ("quota", 30.0)
    (host,) = stats.values()
    assert host["paused"] == 1


def test_a_reset_longer_than_retry_after_max_is_refused_at_once(
    app: AppServer, clock: FakeClock
) -> None:
    """0 left for 500 s with retry_after_max 100: RateLimitExceeded, nothing sent, no sleep."""
    app.ok("/q", headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "500"})
    with ConnectionManager(clock=clock, retry_after_max=100) as cm:
        cm.get(app.url("/q"))
        with pytest.raises(RateLimitExceeded) as info:
            cm.get(app.url("/q"))
    assert info.value.retry_after == pytest.approx(500)
    assert app.hits("/q") == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("client_limit", [{}, {"rate_limit_requests": 1000}], ids=["alone", "with"])
def test_rate_limit_max_wait_bounds_a_server_pause_too(
    app: AppServer, clock: FakeClock, client_limit: dict[str, Any]
) -> None:
    """rate_limit_max_wait=0 with 0 left for 30 s: refused at once, with or without a limiter."""
    app.ok("/q", headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"})
    with ConnectionManager(clock=clock, rate_limit_max_wait=0, **client_limit) as cm:
        cm.get(app.url("/q"))
        with pytest.raises(RateLimitExceeded, match="rate_limit_max_wait") as info:
            cm.get(app.url("/q"))
    assert info.value.retry_after == pytest.approx(30)
    assert app.hits("/q") == 1
    assert clock.sleeps == []


def test_rate_limit_max_wait_bounds_a_retry_after(app: AppServer, clock: FakeClock) -> None:
    """429 asking for 5 s, rate_limit_max_wait=1: RateLimitExceeded at once, no sleep."""
    app.ok("/q", b"slow down", status=429, headers={"Retry-After": "5"})
    with (
        ConnectionManager(clock=clock, rate_limit_max_wait=1) as cm,
        pytest.raises(RateLimitExceeded, match="rate_limit_max_wait"),
    ):
        cm.get(app.url("/q"))
    assert app.hits("/q") == 1
    assert clock.sleeps == []


def test_the_headers_can_be_ignored(app: AppServer, clock: FakeClock) -> None:
    """respect_rate_limit_headers=False: a spent quota does not hold the next call."""
    app.ok("/q", headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"})
    with ConnectionManager(clock=clock, respect_rate_limit_headers=False) as cm:
        cm.get(app.url("/q"))
        cm.get(app.url("/q"))
    assert clock.sleeps == []
    assert app.hits("/q") == 2


def test_the_stats_show_what_is_left(app: AppServer, clock: FakeClock) -> None:
    """get_stats() shows the quota left after the last answer."""
    app.ok("/q", headers={"X-RateLimit-Remaining": "41", "X-RateLimit-Reset": "60"})
    with ConnectionManager(clock=clock) as cm:
        cm.get(app.url("/q"))
        (host,) = cm.get_stats()["hosts"].values()
    assert host["quota_remaining"] == 41


@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "30"},
        {"X-RateLimit-Remaining": "zero", "X-RateLimit-Reset": "30"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "nan"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1e400"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "99999999999999999999"},
        {"RateLimit": '"d";r=0;t=-5'},
        {"RateLimit": "garbage;;;"},
    ],
)
def test_garbage_quota_headers_change_nothing(
    app: AppServer, clock: FakeClock, headers: dict[str, str]
) -> None:
    """Negative, non-numeric, NaN, huge or malformed values never pause a host."""
    app.ok("/q", headers=headers)
    with ConnectionManager(clock=clock) as cm:
        for _ in range(3):
            assert cm.get(app.url("/q")).status_code == 200
    assert clock.sleeps == []


# -------------------------------------------------------------------------- bare 429s
class BareLimit:
    """A route that allows ``limit`` requests per fake second and answers a bare 429 beyond."""

    def __init__(self, clock: FakeClock, limit: int) -> None:
        self.clock = clock
        self.limit = limit
        self.used: dict[int, int] = {}
        self.refused = 0
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self.lock:
            second = int(self.clock.monotonic())
            self.used[second] = self.used.get(second, 0) + 1
            if self.used[second] > self.limit:
                self.refused += 1
                return Response(b"slow down", status=429)
        return Response(b"ok")


def test_bare_429s_slow_the_host_down_and_every_call_completes(
    app: AppServer, clock: FakeClock, recorded: list[Any]
) -> None:
    """120 calls from 8 threads to a 10/s API that answers bare 429s: all complete, defaults."""
    limit = BareLimit(clock, 10)
    app.route("/api", limit)
    with ConnectionManager(clock=clock, on_event=recorded.append) as cm:
        results = _parallel(8, lambda: [cm.get(app.url("/api")).status_code for _ in range(15)])
        stats = cm.get_stats()["hosts"]
    assert results == [[200] * 15] * 8
    pauses = [e for e in recorded if isinstance(e, HostPaused)]
    assert pauses, "a bare 429 must pause the host"
    assert {p.source for p in pauses} == {"slow-down"}
    (host,) = stats.values()
    assert host["retries_denied"] == 0  # 429s do not spend the retry budget
    assert host["breaker_state"] == "closed"  # nor count against the host
    assert host["attempts"] == 120 + limit.refused  # each 429 retried once more, no more


def test_bare_429_pauses_grow_once_for_a_burst(app: AppServer, clock: FakeClock) -> None:
    """Eight 429s for attempts on the wire together pause the host once, at the first level."""
    together = threading.Barrier(8)

    def all_at_once(request: Request) -> Response:
        together.wait(10)  # the server answers only once all eight are in
        return Response(b"slow down", status=429)

    app.route("/api", all_at_once)
    events: list[Any] = []
    with ConnectionManager(clock=clock, max_retries=0, on_event=events.append) as cm:
        assert _parallel(8, lambda: cm.get(app.url("/api")).status_code) == [429] * 8
    pauses = [e for e in events if isinstance(e, HostPaused)]
    assert len(pauses) == 8  # every 429 pauses (extends) the host ...
    assert max(p.seconds for p in pauses) <= 0.5  # ... but the level grew only once
    assert clock.sleeps == []


# --------------------------------------------------------------- failure-rate breaker
def _every_tenth(failing: set[int]) -> Any:
    counter = itertools.count()

    def handler(request: Request) -> Response:
        if next(counter) % 10 in failing:
            return Response(b"down", status=503)
        return Response(b"ok")

    return handler


def test_a_30_percent_failure_rate_opens_a_ratio_breaker(app: AppServer, clock: FakeClock) -> None:
    """Failing 3 calls in 10 never makes 5 in a row; a 25 % ratio rule opens within the window."""
    app.route("/flaky", _every_tenth({0, 4, 7}))
    with ConnectionManager(
        clock=clock,
        max_retries=0,
        circuit_breaker_failure_rate=0.25,
        circuit_breaker_minimum_calls=20,
    ) as cm:
        outcomes = []
        for _ in range(40):
            try:
                outcomes.append(cm.get(app.url("/flaky")).status_code)
            except requests.ConnectionError as exc:
                outcomes.append(type(exc).__name__)
        (host,) = cm.get_stats()["hosts"].values()
    assert host["breaker_opened"] == 1
    assert outcomes.index("CircuitBreakerOpen") >= 20  # not before the minimum
    assert app.hits("/flaky") < 40


def test_without_the_ratio_rule_a_30_percent_failure_rate_never_opens(
    app: AppServer, clock: FakeClock
) -> None:
    """The consecutive rule alone (5 in a row) never trips on 3 scattered failures in 10."""
    app.route("/flaky", _every_tenth({0, 4, 7}))
    with ConnectionManager(clock=clock, max_retries=0, circuit_breaker_failure_rate=None) as cm:
        for _ in range(40):
            cm.get(app.url("/flaky"))
        (host,) = cm.get_stats()["hosts"].values()
    assert host["breaker_opened"] == 0
    assert app.hits("/flaky") == 40


def test_the_ratio_waits_for_the_minimum_number_of_calls(app: AppServer, clock: FakeClock) -> None:
    """Two failures in three calls (67 %) do not open a breaker that needs 20 calls."""
    app.route("/flaky", _every_tenth({0, 1}))
    with ConnectionManager(clock=clock, max_retries=0, circuit_breaker_failure_rate=0.5) as cm:
        for _ in range(3):
            cm.get(app.url("/flaky"))
        (host,) = cm.get_stats()["hosts"].values()
    assert host["breaker_state"] == "closed"


def test_the_window_forgets_old_failures(app: AppServer, clock: FakeClock) -> None:
    """Failures older than the window no longer count toward the ratio."""
    app.route("/flaky", _every_tenth({0, 2, 4, 6, 8}))
    with ConnectionManager(
        clock=clock, max_retries=0, circuit_breaker_window=10, circuit_breaker_minimum_calls=12
    ) as cm:
        for _ in range(10):  # 50 % failed, but only 10 calls
            cm.get(app.url("/flaky"))
        clock.advance(11)
        app.ok("/flaky")
        for _ in range(12):
            cm.get(app.url("/flaky"))
        (host,) = cm.get_stats()["hosts"].values()
    assert host["breaker_opened"] == 0


def test_slow_calls_count_as_failures_for_the_ratio(app: AppServer, clock: FakeClock) -> None:
    """Every call answered 200 after 2 s, with slow_call_duration 1 s: the ratio opens."""

    def slow(request: Request) -> Response:
        clock.advance(2.0)  # the attempt lasts 2 fake seconds
        return Response(b"ok")

    app.route("/slow", slow)
    with ConnectionManager(
        clock=clock,
        max_retries=0,
        circuit_breaker_slow_call_duration=1.0,
        circuit_breaker_minimum_calls=5,
        circuit_breaker_window=60,
    ) as cm:
        codes = [cm.get(app.url("/slow")).status_code for _ in range(5)]
        with pytest.raises(requests.ConnectionError):
            cm.get(app.url("/slow"))
    assert codes == [200] * 5


@pytest.mark.parametrize("status", [400, 404, 429])
def test_client_errors_never_count_against_the_host(
    app: AppServer, clock: FakeClock, status: int
) -> None:
    """40 answers of 4xx (429 included) leave both breaker rules closed."""
    app.ok("/x", status=status)
    with ConnectionManager(
        clock=clock, max_retries=0, circuit_breaker_minimum_calls=5, retry_after_max=0
    ) as cm:
        for _ in range(40):
            assert cm.get(app.url("/x")).status_code == status
        (host,) = cm.get_stats()["hosts"].values()
    assert (host["breaker_state"], host["failures"]) == ("closed", 0)


# ---------------------------------------------------------------- adaptive throttling
def test_adaptive_throttling_rejects_locally_while_the_host_refuses(
    app: AppServer, clock: FakeClock
) -> None:
    """A host refusing 3 in 4: some calls fail locally, without traffic, and say so."""
    app.route("/busy", _every_tenth({0, 1, 2, 4, 5, 6, 8}))
    with ConnectionManager(
        clock=clock,
        max_retries=0,
        circuit_breaker_failure_threshold=None,
        adaptive_throttling=True,
    ) as cm:
        cm._engine.rng.seed(7)
        refusals = []
        for _ in range(200):
            try:
                cm.get(app.url("/busy"))
            except RateLimitExceeded as exc:
                refusals.append(str(exc))
        local = len(refusals)
        assert all("rejected locally" in text for text in refusals)
        (host,) = cm.get_stats()["hosts"].values()
    assert local > 0
    assert host["rejected_local"] == local
    assert app.hits("/busy") == 200 - local


@pytest.mark.parametrize("cap", [1.0, 0.8])
def test_the_throttles_cap_bounds_the_share_rejected(
    app: AppServer, clock: FakeClock, cap: float
) -> None:
    """A host refusing everything: the probability climbs to the cap and stays there."""
    app.ok("/down", b"no", status=503)
    with ConnectionManager(
        clock=clock,
        max_retries=0,
        circuit_breaker_failure_threshold=None,
        adaptive_throttling=True,
        adaptive_throttling_max_probability=cap,
    ) as cm:
        cm._engine.rng.seed(7)
        for _ in range(400):
            with contextlib.suppress(RateLimitExceeded):
                cm.get(app.url("/down"))
        (host,) = cm.get_stats()["hosts"].values()
    assert cm.policy.signals.adaptive_throttling_max_probability == cap
    assert cap - 0.05 <= host["throttle_probability"] <= cap
    sent = app.hits("/down")
    assert sent + host["rejected_local"] == 400
    if cap < 1:
        assert sent >= 400 * (1 - cap) * 0.7  # about a fifth still reaches the host


def test_without_adaptive_throttling_every_call_is_sent(app: AppServer, clock: FakeClock) -> None:
    """The default: no local rejection, however much the host refuses."""
    app.ok("/busy", status=503)
    with ConnectionManager(
        clock=clock, max_retries=0, circuit_breaker_failure_threshold=None
    ) as cm:
        for _ in range(100):
            cm.get(app.url("/busy"))
    assert app.hits("/busy") == 100


# -------------------------------------------------------------------- idempotency keys
def _keyed(app: AppServer) -> list[str]:
    return [r.headers.get("Idempotency-Key", "") for r in app.requests if r.path == "/pay"]


def test_a_post_with_an_idempotency_key_is_retried_with_the_same_key(
    app: AppServer, clock: FakeClock, recorded: list[Any]
) -> None:
    """idempotency_keys=True: a POST answered 503 is retried; the server sees one key twice."""
    app.fail_then_ok("/pay", failures=1, status=503)
    with ConnectionManager(clock=clock, idempotency_keys=True, on_event=recorded.append) as cm:
        assert cm.post(app.url("/pay"), json={"amount": 5}).status_code == 200
    keys = _keyed(app)
    assert len(keys) == 2
    assert re.fullmatch(
        r'"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"', keys[0]
    )
    assert keys[0] == keys[1]
    started = [e.idempotency_key for e in recorded if isinstance(e, AttemptStarted)]
    assert started == keys


def test_a_post_without_keys_is_not_retried(app: AppServer, clock: FakeClock) -> None:
    """The default: a POST is not replayed after a 503."""
    app.fail_then_ok("/pay", failures=1, status=503)
    with ConnectionManager(clock=clock) as cm:
        assert cm.post(app.url("/pay")).status_code == 503
    assert app.hits("/pay") == 1
    assert _keyed(app) == [""]


@pytest.mark.parametrize("spelling", ["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"])
def test_the_callers_own_key_wins_in_any_spelling(
    app: AppServer, clock: FakeClock, spelling: str
) -> None:
    """A key the caller set is sent as it is, on every attempt."""
    app.fail_then_ok("/pay", failures=1, status=503)
    with ConnectionManager(clock=clock, idempotency_keys=True) as cm:
        cm.post(app.url("/pay"), headers={spelling: "order-42"})
    assert _keyed(app) == ["order-42", "order-42"]


def test_every_redirect_hop_carries_the_same_key(app: AppServer, clock: FakeClock) -> None:
    """A 307 keeps the POST; both hops carry one key."""
    app.ok("/start", status=307, headers={"Location": "/pay"})
    app.ok("/pay")
    with ConnectionManager(clock=clock, idempotency_keys=True) as cm:
        cm.post(app.url("/start"), data=b"x")
    first = next(r for r in app.requests if r.path == "/start").headers["Idempotency-Key"]
    assert _keyed(app) == [first]


def test_get_carries_no_idempotency_key(app: AppServer, clock: FakeClock) -> None:
    """Keys are for POST and PATCH only."""
    app.ok("/pay")
    with ConnectionManager(clock=clock, idempotency_keys=True) as cm:
        cm.get(app.url("/pay"))
        cm.put(app.url("/pay"))
    assert _keyed(app) == ["", ""]


def test_events_show_the_waits(app: AppServer, clock: FakeClock, recorded: list[Any]) -> None:
    """A wait for a spent quota is published as a Waited event with its reason."""
    app.ok("/q", headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "5"})
    with ConnectionManager(clock=clock, on_event=recorded.append) as cm:
        cm.get(app.url("/q"))
        cm.get(app.url("/q"))
    waits = [e for e in recorded if isinstance(e, Waited)]
    assert [w.reason for w in waits] == ["pause"]
    assert 5.0 <= waits[0].seconds <= 6.25
