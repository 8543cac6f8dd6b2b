"""Adversarial cases: attacks and bad days beyond the known-defect list, grouped by theme.

Each case names the behaviour the contract (DESIGN.md) asks for, decided against what plain
``requests`` does on the same server where that matters. Everything runs on loopback:
werkzeug apps, the socket-level fault server (hostile bytes), a real ``redis-server``.
Cases that fail on today's code are ``xfail(strict=True)`` with the precise defect.
"""

from __future__ import annotations

import base64
import logging
import pickle
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any, Callable
from urllib.parse import urlsplit

import pytest
import redis
import requests
import requests.exceptions as rex
from werkzeug import Request, Response

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    ConnectionManagerError,
    MaxRetriesExceeded,
    RateLimitExceeded,
)
from requests_connection_manager.events import SharedStateChanged
from tests import faults as f
from tests.bounded import start_bounded
from tests.fakes import FakeClock
from tests.faults import FaultServer
from tests.redisfleet import hour_quota, wait_until
from tests.redisserver import RedisServer
from tests.servers import AppServer, free_port
from tests.slowproxy import SlowProxy

pytestmark = pytest.mark.timeout(30)

LOGGER = "requests_connection_manager"
SECRETS = ("k-123-secret", "t-456-secret")


def xfail(defect: str) -> pytest.MarkDecorator:
    """The strict expected-failure marker of one defect."""
    return pytest.mark.xfail(strict=True, reason=defect)


A_KEY_FOLLOWS = (
    "A-KEY: a caller-supplied header named like the API-key header (X-API-Key, or the "
    "configured api_key_header) follows a redirect to another origin: "
    "session.ManagedSession.rebuild_auth removes only the values the manager added, and "
    "requests strips only Authorization. Judgment call: the API-key header is a credential "
    "whoever set it, as Authorization is for requests"
)
B_DRIP_CONTINUE = (
    "H5 (another shape): interim 100-Continue responses dripping past total_timeout keep "
    "the call alive until the server stops; the deadline clamps only each socket read"
)
B_NEG_CHUNK = (
    "B-CHUNK: without total_timeout a negative chunk size lets urllib3's ValueError('read "
    "length must be non-negative') out of the contract (adapter._read_body uses "
    "Response.content; adapter._as_requests_error re-raises unmapped errors); with "
    "total_timeout the same body is a ChunkedEncodingError"
)
B_STALL_CLASS = (
    "B-STALL: a body stalled past total_timeout surfaces as ConnectionError('Read timed "
    "out') because the socket read timeout (clamped to the deadline) fires first "
    "(adapter._read_until -> _body_error), while a dripping body gets "
    "ReadTimeout('total_timeout expired ...'): one deadline, two reports"
)
C_TIMEOUT_ARGS = (
    "C-TIMEOUT: an invalid per-call timeout does not raise what requests raises: the "
    "adapter turns it into a (connect, read) tuple first (adapter._resolve_timeout, "
    "min() against the deadline in _attempt), so the type or message differs"
)
E_POOL_DEADLINE = (
    "E-POOL: waiting for a pooled connection (pool_block=True) ignores total_timeout: "
    "urllib3's pool queue.get is not given the remaining deadline (adapter._attempt)"
)
F_PROBE_FLUSH = (
    "H16 (another shape): after FLUSHALL during a shared probe, shared.ProbeSlots.give "
    "DECRs the missing key to -1 with no expiry, loosening the bound for good"
)
F_GARBAGE = (
    "F-GARBAGE: a corrupt pybreaker:opened_at in Redis makes every call raise a bare "
    "ValueError (int() in pybreaker.CircuitRedisStorage.opened_at, which catches only "
    "RedisError; shared.FailoverStorage does not fail open on it)"
)
G_ECHO = (
    "H2 (by value): a server echoing the Authorization value in a response header or body "
    "puts the bearer token in the DEBUG log (utils.safe_log_response redacts by header "
    "name and field name only)"
)
G_COOKIE = (
    "G-COOKIE: a cookie value with CR/LF escapes as a bare ValueError from "
    "http.client.putheader (adapter._as_requests_error re-raises unmapped ValueErrors); "
    "requests.InvalidHeader is also a ValueError, so mapping it breaks no except clause"
)


@pytest.fixture
def other() -> Iterator[AppServer]:
    """A second origin: a server on 127.0.0.2."""
    with AppServer("127.0.0.2") as server:
        yield server


@pytest.fixture
def port2() -> Iterator[AppServer]:
    """A third origin: the same host (127.0.0.1) on another port."""
    with AppServer() as server:
        yield server


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server on a free loopback port."""
    with RedisServer() as server:
        yield server


def _redirect(server: AppServer, path: str, location: str, status: int = 302) -> None:
    def handler(request: Request) -> Response:
        return Response(b"", status=status, headers={"Location": location})

    server.route(path, handler)


def _leaks(server: AppServer) -> list[tuple[str, str]]:
    """(path, header) of every request to ``server`` that carried a secret."""
    return [
        (r.path, name)
        for r in server.requests
        for name, value in r.headers.items()
        if any(secret in value for secret in SECRETS)
    ]


def _contract(error: BaseException, requests_class: type[BaseException]) -> None:
    assert isinstance(error, ConnectionManagerError), type(error).__mro__
    assert isinstance(error, requests_class), type(error).__mro__


def _plain_error(url: str, **kwargs: Any) -> BaseException:
    """What plain requests raises for ``url`` (the test fails if it does not raise)."""
    with pytest.raises(Exception) as info:  # whatever requests raises is the reference
        requests.get(url, timeout=5, **kwargs)
    return info.value


# =====================================================================================
# Credentials x redirects: a credential goes only to the origin it belongs to.
# =====================================================================================
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_port_of_the_same_host_gets_no_credentials(
    app: AppServer, port2: AppServer, status: int
) -> None:
    """Same host, other port: another origin, so neither the key nor the token goes."""
    port2.ok("/landing")
    _redirect(app, "/go", port2.url("/landing"), status)
    with ConnectionManager(api_key=SECRETS[0], bearer_token=SECRETS[1]) as cm:
        assert cm.get(app.url("/go")).status_code == 200
    assert port2.hits("/landing") == 1
    assert _leaks(port2) == []


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("http://127.0.0.1:{app}@127.0.0.2:{other}/landing", id="userinfo-trick"),
        pytest.param("//127.0.0.2:{other}/landing", id="protocol-relative"),
        pytest.param("HTTP://127.0.0.2:{other}/landing", id="upper-case-scheme"),
        pytest.param("http://127.0.0.2:{other}\t/landing", id="tab-in-authority"),
        pytest.param("/\\127.0.0.2:{other}/landing", id="backslash"),
        pytest.param("http:\\\\127.0.0.2:{other}/landing", id="backslashes-after-scheme"),
    ],
)
def test_tricky_locations_never_carry_credentials_to_another_host(
    app: AppServer, other: AppServer, location: str
) -> None:
    """Whatever a Location resolves to, the other host gets no credential; as requests does."""
    other.ok("/landing")
    app.ok("/landing")
    target = location.format(app=app.port, other=other.port)
    _redirect(app, "/go", target)
    with ConnectionManager(api_key=SECRETS[0], bearer_token=SECRETS[1]) as cm:
        ours = cm.get(app.url("/go"))
    plain = requests.get(app.url("/go"), timeout=5)
    assert (ours.status_code, ours.url) == (plain.status_code, plain.url)
    assert _leaks(other) == []


def test_percent_encoded_crlf_in_a_location_injects_no_header(app: AppServer) -> None:
    """Location /landing%0d%0aX-Evil:%201 is followed as a path; no header is injected."""
    _redirect(app, "/go", "/landing%0d%0aX-Evil:%201")
    with ConnectionManager() as cm:
        response = cm.get(app.url("/go"))
    assert response.status_code == 404  # a path nobody serves, not a split request
    assert all("X-Evil" not in r.headers for r in app.requests)


@pytest.mark.parametrize(
    "scheme", ["file:///etc/passwd", "ftp://127.0.0.2:{other}/landing"], ids=["file", "ftp"]
)
def test_a_redirect_to_a_non_http_scheme_is_refused_in_the_contract(
    app: AppServer, other: AppServer, scheme: str
) -> None:
    """file:// and ftp:// Locations raise InvalidSchema (as requests), nothing is fetched."""
    _redirect(app, "/go", scheme.format(other=other.port))
    with ConnectionManager(api_key=SECRETS[0]) as cm, pytest.raises(ConnectionManagerError) as info:
        cm.get(app.url("/go"))
    _contract(info.value, rex.InvalidSchema)
    assert other.total() == 0


def test_an_absurdly_long_location_is_a_contract_error_like_requests(faults: FaultServer) -> None:
    """A 70 KB Location line: requests' ConnectionError (LineTooLong), inside the contract."""
    faults.default = f.raw(
        b"HTTP/1.1 302 Found\r\nLocation: /" + b"a" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n"
    )
    plain = _plain_error(faults.url("/"))
    with (
        ConnectionManager(max_retries=1, backoff_factor=0) as cm,
        pytest.raises(ConnectionManagerError) as info,
    ):
        cm.get(faults.url("/"))
    _contract(info.value, type(plain))


def test_a_location_that_is_not_utf8_is_a_contract_error(faults: FaultServer) -> None:
    """Location bytes that are not UTF-8: requests lets UnicodeDecodeError out; we do not."""
    faults.default = f.raw(
        b"HTTP/1.1 302 Found\r\nLocation: /\xe9\xff\r\nContent-Length: 0\r\n\r\n"
    )
    with ConnectionManager() as cm, pytest.raises(ConnectionManagerError) as info:
        cm.get(faults.url("/"))
    _contract(info.value, rex.InvalidURL)
    assert isinstance(info.value, ValueError)  # what plain requests' error also is


def test_a_post_redirected_307_to_another_origin_keeps_its_body_not_its_key(
    app: AppServer, other: AppServer
) -> None:
    """307 re-sends method and body (HTTP semantics), never the credential."""
    other.ok("/landing")
    _redirect(app, "/post", other.url("/landing"), 307)
    with ConnectionManager(api_key=SECRETS[0]) as cm:
        assert cm.post(app.url("/post"), data=b"payload").status_code == 200
    landed = other.requests[-1]
    assert (landed.method, landed.body) == ("POST", b"payload")
    assert _leaks(other) == []


def test_auth_tuple_and_url_userinfo_are_stripped_on_a_cross_origin_redirect(
    app: AppServer, other: AppServer
) -> None:
    """auth=(user, password) and http://user:password@ go to the origin only."""
    other.ok("/landing")
    _redirect(app, "/go", other.url("/landing"))
    with ConnectionManager() as cm:
        cm.get(app.url("/go"), auth=("ann", SECRETS[1]))
        cm.get(f"http://ann:{SECRETS[1]}@127.0.0.1:{app.port}/go")
    expected = "Basic " + base64.b64encode(f"ann:{SECRETS[1]}".encode()).decode()
    assert [r.headers.get("Authorization") for r in app.requests] == [expected, expected]
    assert [r.headers.get("Authorization") for r in other.requests] == [None, None]


def test_an_endpoint_pattern_with_a_port_does_not_cover_other_ports(
    app: AppServer, port2: AppServer
) -> None:
    """Pattern 127.0.0.1:PORT: its token is not sent after a redirect to another port."""
    port2.ok("/landing")
    _redirect(app, "/go", port2.url("/landing"))
    with ConnectionManager() as cm:
        cm.set_endpoint_auth(f"127.0.0.1:{app.port}", "bearer", token=SECRETS[1])
        cm.get(app.url("/go"))
    assert app.requests[-1].headers.get("Authorization") == f"Bearer {SECRETS[1]}"
    assert _leaks(port2) == []


def test_an_endpoint_path_prefix_does_not_cover_a_redirect_outside_it(app: AppServer) -> None:
    """Pattern host:port/v2: a same-origin redirect to /v1 leaves the endpoint's token."""
    app.ok("/v1/landing")
    _redirect(app, "/v2/go", "/v1/landing")
    with ConnectionManager() as cm:
        cm.set_endpoint_auth(f"127.0.0.1:{app.port}/v2", "bearer", token=SECRETS[1])
        cm.get(app.url("/v2/go"))
    seen = {r.path: r.headers.get("Authorization") for r in app.requests}
    assert seen == {"/v2/go": f"Bearer {SECRETS[1]}", "/v1/landing": None}


def test_a_callers_api_key_header_does_not_follow_a_cross_origin_redirect(
    app: AppServer, other: AppServer
) -> None:
    """headers={'X-API-Key': ...} is a credential: stripped like Authorization."""
    other.ok("/landing")
    _redirect(app, "/go", other.url("/landing"))
    with ConnectionManager() as cm:
        cm.get(app.url("/go"), headers={"X-API-Key": SECRETS[0]})
    assert app.requests[0].headers.get("X-Api-Key") == SECRETS[0]
    assert _leaks(other) == []


def test_a_session_level_api_key_header_does_not_follow_a_cross_origin_redirect(
    app: AppServer, other: AppServer
) -> None:
    """cm.session.headers[<api_key_header>] set by third-party code stays at the origin."""
    other.ok("/landing")
    _redirect(app, "/go", other.url("/landing"))
    with ConnectionManager(api_key_header="X-Service-Key") as cm:
        cm.session.headers["X-Service-Key"] = SECRETS[0]
        cm.get(app.url("/go"))
    assert _leaks(other) == []


# =====================================================================================
# Hostile servers: bytes no honest server sends. Contract class = plain requests' class.
# =====================================================================================
STATUS_HEAD = b"HTTP/1.1 200 OK\r\n"
HOSTILE_HEADS = {
    "status-2000": b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    "status-099": b"HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n",
    "http-0.9": b"ok",
    "empty-status-line": b"\r\n\r\n",
    "100KB-header-line": STATUS_HEAD + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    "2000-headers": STATUS_HEAD + b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n",
    "huge-chunk-size": STATUS_HEAD
    + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc",
    "two-content-lengths": STATUS_HEAD + b"Content-Length: 2\r\nContent-Length: 5\r\n\r\nokabc",
    # The server closes after each answer and says so: the retry cannot race a dropped
    # keep-alive connection (a reused connection the server already closed).
    "bad-gzip": STATUS_HEAD
    + b"Content-Encoding: gzip\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnotgz",
}


@pytest.mark.parametrize("payload", list(HOSTILE_HEADS.values()), ids=list(HOSTILE_HEADS))
def test_a_persistently_hostile_server_gets_the_error_plain_requests_raises(
    faults: FaultServer, payload: bytes
) -> None:
    """Every connection answers garbage: the contract error is requests' class, chained."""
    faults.default = f.raw(payload)
    plain = _plain_error(faults.url("/"))
    with (
        ConnectionManager(max_retries=1, backoff_factor=0) as cm,
        pytest.raises(ConnectionManagerError) as info,
    ):
        cm.get(faults.url("/"))
    _contract(info.value, type(plain))
    assert info.value.__cause__ is not None


def test_a_storm_of_100_continue_then_a_200_is_read_through(faults: FaultServer) -> None:
    """10,000 interim 100 responses, then the real one: a 200, as plain requests gets."""
    faults.default = f.raw(
        b"HTTP/1.1 100 Continue\r\n\r\n" * 10_000
        + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    )
    with ConnectionManager(max_retries=0, total_timeout=10) as cm:
        response = cm.get(faults.url("/"))
    assert (response.status_code, response.content) == (200, b"ok")


@pytest.mark.timeout(20)
def test_a_dripping_storm_of_100_continue_ends_at_the_deadline(faults: FaultServer) -> None:
    """One '100 Continue' every 20 ms for 8 s: total_timeout=1 ends the call before 4 s."""
    faults.default = f.raw(*([b"HTTP/1.1 100 Continue\r\n\r\n"] * 400), interval=0.02)
    cm = ConnectionManager(total_timeout=1, max_retries=0)
    try:
        call = start_bounded(lambda: cm.get(faults.url("/")))
        assert call.join(4.0), "the call outlived its deadline by 3 s"
        _contract(call.error, rex.RequestException)  # type: ignore[arg-type]
    finally:
        cm.close()


NEGATIVE_CHUNK = f.raw(STATUS_HEAD + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n")


@pytest.mark.parametrize(
    "total_timeout", [pytest.param(None, id="no-deadline"), pytest.param(5, id="deadline")]
)
def test_a_negative_chunk_size_is_a_chunked_encoding_error(
    faults: FaultServer, total_timeout: float | None
) -> None:
    """Chunk size -5: ChunkedEncodingError in the contract, with or without a deadline."""
    faults.default = NEGATIVE_CHUNK
    with (
        ConnectionManager(max_retries=0, total_timeout=total_timeout) as cm,
        pytest.raises(ConnectionManagerError) as info,
    ):
        cm.get(faults.url("/"))
    _contract(info.value, rex.ChunkedEncodingError)


def test_a_body_longer_than_content_length_is_cut_as_requests_does(faults: FaultServer) -> None:
    """Content-Length: 5 and 12 bytes sent: the 5 declared bytes, like plain requests."""
    faults.default = f.raw(
        STATUS_HEAD + b"Content-Length: 5\r\nConnection: close\r\n\r\nokokokokokok"
    )
    with ConnectionManager() as cm:
        ours = cm.get(faults.url("/")).content
    assert ours == requests.get(faults.url("/"), timeout=5).content == b"okoko"


def test_a_reset_in_the_middle_of_the_body_is_requests_error_retried(faults: FaultServer) -> None:
    """10 of 100 bytes then RST: ChunkedEncodingError (as requests), the GET retried."""
    faults.default = f.raw(
        STATUS_HEAD + b"Content-Length: 100\r\nConnection: close\r\n\r\n" + b"x" * 10,
        hold=0.1,
        reset=True,
    )
    plain = _plain_error(faults.url("/"))
    before = faults.connections
    with (
        ConnectionManager(max_retries=1, backoff_factor=0) as cm,
        pytest.raises(MaxRetriesExceeded) as info,
    ):
        cm.get(faults.url("/"))
    _contract(info.value, type(plain))
    assert faults.connections - before == 2


@pytest.mark.timeout(20)
def test_a_gzip_bomb_is_cut_off_by_the_deadline(faults: FaultServer) -> None:
    """512 MiB of zeros in 0.5 MB of gzip: total_timeout=0.5 ends the call before 3 s."""
    squeeze = zlib.compressobj(1, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    bomb = b"".join(squeeze.compress(block) for _ in range(512)) + squeeze.flush()
    faults.default = f.raw(
        STATUS_HEAD
        + b"Content-Encoding: gzip\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(bomb)
        + bomb
    )
    cm = ConnectionManager(total_timeout=0.5, max_retries=0)
    try:
        call = start_bounded(lambda: cm.get(faults.url("/")))
        assert call.join(3.0), "the bomb outlived the deadline"
        if call.error is None:  # decompressed in time: then it must be the whole thing
            assert len(call.value.content) == 512 << 20
        else:
            _contract(call.error, rex.Timeout)
    finally:
        cm.close()


def test_an_answer_before_the_request_body_is_returned_and_not_resent(
    faults: FaultServer,
) -> None:
    """413 while an 8 MB POST is still uploading: the 413 comes back once, as in requests."""
    faults.default = f.answer_before_body(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntoo big"
    )
    with ConnectionManager(max_retries=2) as cm:
        response = cm.post(faults.url("/up"), data=b"x" * (8 << 20))
    assert (response.status_code, response.content) == (413, b"too big")
    assert faults.connections == 1


@pytest.mark.timeout(20)
def test_an_upload_the_server_stops_reading_ends_at_the_deadline(faults: FaultServer) -> None:
    """The server reads the head and then nothing: a 32 MB POST ends by total_timeout.

    The error is the deadline's (a Timeout), as for every call total_timeout cuts short.
    """
    faults.default = f.answer_before_body(b"", hold=8)
    cm = ConnectionManager(total_timeout=1, max_retries=0)
    try:
        call = start_bounded(lambda: cm.post(faults.url("/up"), data=b"x" * (32 << 20)))
        assert call.join(4.0), "the upload outlived its deadline"
        _contract(call.error, rex.Timeout)  # type: ignore[arg-type]
        assert faults.connections == 1
    finally:
        cm.close()


@pytest.mark.parametrize("value", ["-1", "nan", "1e400", "soon", "", "Tue, 99 Foo 2024"])
def test_an_unusable_retry_after_falls_back_to_backoff(
    faults: FaultServer, clock: FakeClock, value: str
) -> None:
    """Retry-After that is no wait at all: ignored, normal full-jitter backoff, success."""
    faults.script([f.retry_after(503, value)])
    with ConnectionManager(max_retries=2, backoff_factor=1, clock=clock) as cm:
        assert cm.get(faults.url("/")).status_code == 200
    assert faults.connections == 2
    assert all(0 <= s <= 1 for s in clock.sleeps), clock.sleeps


def test_a_retry_after_of_5000_digits_is_refused_at_once(
    faults: FaultServer, clock: FakeClock
) -> None:
    """A number no float holds: RateLimitExceeded at once, no sleep, one connection."""
    faults.default = f.retry_after(429, "9" * 5000)
    with ConnectionManager(clock=clock) as cm, pytest.raises(RateLimitExceeded) as info:
        cm.get(faults.url("/"))
    assert info.value.retry_after is not None
    assert info.value.retry_after > 120
    assert clock.sleeps == []
    assert faults.connections == 1


@pytest.mark.timeout(20)
def test_a_body_stalled_past_the_deadline_is_reported_as_the_deadline(faults: FaultServer) -> None:
    """Stall or drip, the same total_timeout ended the call: a ReadTimeout naming it."""
    faults.default = f.stall_body(declared=100, sent=10, seconds=8)
    cm = ConnectionManager(total_timeout=1, max_retries=0)
    try:
        call = start_bounded(lambda: cm.get(faults.url("/")))
        assert call.join(4.0)
        _contract(call.error, rex.ReadTimeout)  # type: ignore[arg-type]
        assert "total_timeout" in str(call.error)
    finally:
        cm.close()


# =====================================================================================
# Bad input from the caller: what requests does, inside the contract, nothing smuggled.
# =====================================================================================
@pytest.mark.parametrize(
    "path",
    ["/a b", "/a\x00b", "/a\r\nX-Injected: 1", "/a\tb", "/ä/€"],
    ids=["space", "nul", "crlf", "tab", "non-ascii"],
)
def test_control_characters_in_a_path_are_encoded_not_smuggled(
    faults: FaultServer, path: str
) -> None:
    """Spaces, NUL, CR/LF, tabs, non-ASCII: one request line, percent-encoded, as requests."""
    with ConnectionManager() as cm:
        assert cm.get(faults.url(path)).status_code == 200
    requests.get(faults.url(path), timeout=5)
    ours, plain = faults.requests[-2:]
    assert ours.path == plain.path
    assert not any(c in ours.path for c in " \x00\r\n\t")
    assert "X-Injected" not in ours.headers


def test_a_nul_in_the_host_is_an_invalid_url_and_nothing_is_sent(faults: FaultServer) -> None:
    """A NUL byte inside the host name: requests' error for it, no connection.

    urllib3 2.3+ refuses the host (InvalidURL); older urllib3 percent-encodes it and the
    name does not resolve (ConnectionError): the contract error is what requests raises.
    """
    url = f"http://127.0.0.1\x00.evil:{faults.port}/"
    plain = _plain_error(url)
    with ConnectionManager() as cm, pytest.raises(ConnectionManagerError) as info:
        cm.get(url)
    _contract(info.value, type(plain))
    assert isinstance(plain, (rex.InvalidURL, rex.ConnectionError))
    assert faults.connections == 0


def test_a_bytes_url_works_as_in_requests(faults: FaultServer) -> None:
    """cm.get(b'http://...') is accepted like requests.get(b'http://...')."""
    with ConnectionManager() as cm:
        assert cm.get(faults.url("/x").encode()).status_code == 200
    assert faults.requests[-1].path == "/x"


@pytest.mark.parametrize(
    ("call", "requests_class"),
    [
        pytest.param({"params": {"q": "\ud800"}}, rex.InvalidURL, id="lone-surrogate-param"),
        pytest.param({"headers": {"X:Y": "v"}}, rex.InvalidHeader, id="colon-in-header-name"),
        pytest.param({"headers": {"X": 5}}, rex.InvalidHeader, id="int-header-value"),
        pytest.param({"headers": {"X": "€"}}, rex.InvalidHeader, id="non-latin1-value"),
        pytest.param({"json": {"a": float("nan")}}, rex.InvalidJSONError, id="json-nan"),
    ],
)
def test_unencodable_input_is_a_contract_error_and_nothing_is_sent(
    faults: FaultServer, call: dict[str, Any], requests_class: type[BaseException]
) -> None:
    """Values HTTP cannot carry: the matching requests error (in the contract), no traffic."""
    with ConnectionManager() as cm, pytest.raises(ConnectionManagerError) as info:
        cm.post(faults.url("/"), **call)
    _contract(info.value, requests_class)
    assert faults.connections == 0


@pytest.mark.parametrize(
    "method", ["GET /evil HTTP/1.1\r\nX-Injected: 1", "GËT"], ids=["crlf", "non-ascii"]
)
def test_a_method_that_is_not_a_token_is_refused_before_the_wire(
    faults: FaultServer, method: str
) -> None:
    """CR/LF or non-ASCII in the method: ValueError (as requests), nothing is sent."""
    with ConnectionManager() as cm, pytest.raises(ValueError):
        cm.request(method, faults.url("/"))
    with pytest.raises(ValueError):
        requests.request(method, faults.url("/"), timeout=5)
    assert faults.connections == 0


@pytest.mark.parametrize(
    ("timeout", "total_timeout"),
    [(-1, None), ("5", None), ("5", 5), ((1, 2, 3), None)],
    ids=["negative", "string", "string+deadline", "triple"],
)
def test_an_invalid_per_call_timeout_raises_what_requests_raises(
    faults: FaultServer, timeout: Any, total_timeout: float | None
) -> None:
    """Same exception type and message as plain requests, and nothing sent."""
    with pytest.raises(Exception) as plain:  # the reference, whatever it is
        requests.get(faults.url("/"), timeout=timeout)
    with ConnectionManager(total_timeout=total_timeout) as cm, pytest.raises(Exception) as ours:
        cm.get(faults.url("/"), timeout=timeout)
    assert isinstance(ours.value, type(plain.value)), (type(ours.value), type(plain.value))
    assert str(plain.value) in str(ours.value)
    assert faults.connections == 0


@pytest.mark.parametrize("timeout", [float("inf"), 1e300, 10**400], ids=["inf", "1e300", "10**400"])
def test_an_absurdly_large_timeout_is_clamped_by_the_deadline(
    faults: FaultServer, timeout: float
) -> None:
    """With total_timeout set, timeout=inf / 1e300 / 10**400 just means 'the deadline'."""
    with ConnectionManager(total_timeout=5) as cm:
        assert cm.get(faults.url("/"), timeout=timeout).status_code == 200


# =====================================================================================
# Lifecycle: close at awkward moments, re-entrancy, exceptions that travel.
# =====================================================================================
def test_a_closed_manager_refuses_every_entry_point(app: AppServer) -> None:
    """cm.get, cm.session.get and batch_request after close: 'closed', nothing sent."""
    app.ok("/x")
    cm = ConnectionManager()
    cm.close()
    cm.close()  # idempotent
    with pytest.raises(ConnectionManagerError, match="closed"):
        cm.get(app.url("/x"))
    with pytest.raises(ConnectionManagerError, match="closed"):
        cm.session.get(app.url("/x"))
    [result] = cm.batch_request([("GET", app.url("/x"), {})])
    assert isinstance(result, ConnectionManagerError)
    assert "closed" in str(result)
    assert app.total() == 0


def test_close_from_a_post_response_hook_finishes_the_call_then_refuses(app: AppServer) -> None:
    """The call in flight returns its response; the next one is refused."""
    app.ok("/x")
    cm = ConnectionManager()
    cm.register_post_response_hook(lambda context: cm.close())
    assert cm.get(app.url("/x")).status_code == 200
    with pytest.raises(ConnectionManagerError, match="closed"):
        cm.get(app.url("/x"))
    assert app.hits("/x") == 1


@pytest.mark.parametrize("wait", ["retry-after", "backoff"])
def test_close_from_another_thread_ends_a_sleeping_retry_at_once(app: AppServer, wait: str) -> None:
    """A call sleeping 5 s before its retry is woken by close() with a 'closed' error."""
    if wait == "retry-after":
        app.retry_after("/x", 503, 5)
        cm = ConnectionManager()
    else:
        app.ok("/x", b"no", status=503)
        cm = ConnectionManager(backoff_factor=50, max_retries=3)  # first backoff up to 50 s
    try:
        call = start_bounded(lambda: cm.get(app.url("/x")))
        for _ in range(100):
            if app.hits("/x"):
                break
            time.sleep(0.02)
        time.sleep(0.2)
        cm.close()
        assert call.join(2.0), "close() did not wake the sleeping call"
        assert isinstance(call.error, ConnectionManagerError)
        assert "closed" in str(call.error)
    finally:
        cm.close()
    if wait == "retry-after":
        assert app.hits("/x") == 1


def test_close_during_a_batch_returns_promptly_with_the_rest_refused(app: AppServer) -> None:
    """50 items of 100 ms on 2 workers; close() after 0.3 s: few sent, the rest 'closed'."""
    app.slow("/s", 0.1)
    cm = ConnectionManager()
    timer = threading.Timer(0.3, cm.close)
    timer.start()
    try:
        results = cm.batch_request([("GET", app.url("/s"), {})] * 50, max_workers=2)
    finally:
        timer.cancel()
        cm.close()
    refused = [r for r in results if isinstance(r, ConnectionManagerError) and "closed" in str(r)]
    assert len(results) == 50
    assert app.hits("/s") < 20
    assert len(refused) + app.hits("/s") >= 50 - 2  # at most the two in flight differ


def test_hooks_may_call_the_manager_reentrantly(app: AppServer) -> None:
    """Pre- and post-hooks making their own calls: no deadlock, every call counted."""
    app.ok("/x")
    app.ok("/audit")
    cm = ConnectionManager()
    local = threading.local()

    def audit(context: object) -> None:
        if getattr(local, "busy", False):
            return
        local.busy = True
        try:
            cm.get(app.url("/audit"))
        finally:
            local.busy = False

    cm.register_pre_request_hook(audit)
    cm.register_post_response_hook(audit)
    try:
        call = start_bounded(lambda: cm.get(app.url("/x")))
        assert call.join(10), "a re-entrant hook deadlocked"
        assert call.value.status_code == 200
        assert cm.get_stats()["requests_made"] == 3
    finally:
        cm.close()
    assert (app.hits("/x"), app.hits("/audit")) == (1, 2)


def _trip_then_call(cm: ConnectionManager) -> None:
    """Open a dead port's breaker with one refused call, then call again (refused early)."""
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(ConnectionManagerError):
        cm.get(url)
    cm.get(url)


def _errors_of_every_kind(app: AppServer) -> list[BaseException]:
    app.slow("/slow", 2)
    app.ok("/down", b"down", status=503)
    app.retry_after("/ra", 429, 99999)
    app.ok("/x")
    made: list[BaseException] = []
    attempts: list[tuple[dict[str, Any], Callable[[ConnectionManager], Any]]] = [
        ({"read_timeout": 0.2, "max_retries": 0}, lambda cm: cm.get(app.url("/slow"))),
        ({"max_retries": 1, "backoff_factor": 0}, lambda cm: cm.get(app.url("/down"))),
        ({}, lambda cm: cm.get(app.url("/ra"))),
        ({"max_retries": 0, "circuit_breaker_failure_threshold": 1}, _trip_then_call),
        ({}, lambda cm: cm.get("http://[::1")),
        ({}, lambda cm: cm.get(app.url("/x"), headers={"X": "€"})),
    ]
    for settings, action in attempts:
        with ConnectionManager(**settings) as cm, pytest.raises(ConnectionManagerError) as info:
            action(cm)
        made.append(info.value)
    return made


def test_contract_exceptions_survive_pickling(app: AppServer) -> None:
    """ReadTimeout, RetryError, RateLimitExceeded, CircuitBreakerOpen, ... cross processes."""
    for error in _errors_of_every_kind(app):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy).__name__ == type(error).__name__
        assert [c.__name__ for c in type(copy).__mro__] == [c.__name__ for c in type(error).__mro__]
        assert isinstance(copy, ConnectionManagerError)
        # Arguments that are exceptions compare by identity, and urllib3's own errors drop
        # their pool when pickled (as under plain requests): compare the arguments' kinds.
        assert [type(a) for a in copy.args] == [type(a) for a in error.args]
        assert getattr(copy, "retry_after", None) == getattr(error, "retry_after", None)
        assert getattr(copy, "attempts", None) == getattr(error, "attempts", None)


# =====================================================================================
# Concurrency: many threads at once against shared per-host state.
# =====================================================================================
def test_32_threads_at_an_open_breaker_are_all_refused_without_traffic(app: AppServer) -> None:
    """Breaker open: 32 concurrent calls raise CircuitBreakerOpen; the server sees none."""
    app.ok("/down", b"down", status=500)
    with ConnectionManager(max_retries=0, circuit_breaker_failure_threshold=1) as cm:
        cm.get(app.url("/down"))
        calls = [start_bounded(lambda: cm.get(app.url("/down"))) for _ in range(32)]
        assert all(call.join(10) for call in calls)
        assert all(isinstance(call.error, CircuitBreakerOpen) for call in calls)
        assert cm.get_stats()["hosts"][f"http://127.0.0.1:{app.port}"]["rejected_open"] == 32
    assert app.hits("/down") == 1


def test_16_threads_at_a_half_open_breaker_let_exactly_one_probe_through(
    app: AppServer, clock: FakeClock
) -> None:
    """Half-open, probe held in the server: the 15 others are refused; one hit."""
    release = threading.Event()
    app.ok("/svc", b"down", status=500)
    with ConnectionManager(
        max_retries=0,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_recovery_timeout=10,
        clock=clock,
    ) as cm:
        cm.get(app.url("/svc"))
        clock.advance(11)

        def held(request: Request) -> Response:
            release.wait(10)
            return Response("ok")

        app.route("/svc", held)
        calls = [start_bounded(lambda: cm.get(app.url("/svc"))) for _ in range(16)]
        for _ in range(100):
            if sum(not c.running for c in calls) == 15:
                break
            time.sleep(0.02)
        release.set()
        assert all(call.join(10) for call in calls)
    outcomes = Counter(
        "open" if isinstance(c.error, CircuitBreakerOpen) else c.value.status_code for c in calls
    )
    assert outcomes == {"open": 15, 200: 1}
    assert app.hits("/svc") == 2  # the tripping call and the one probe


@pytest.mark.parametrize("where", ["endpoint", "global"])
def test_credentials_changed_during_calls_are_never_torn(app: AppServer, where: str) -> None:
    """8 threads x 50 calls while the token flips: every request carries t0 or t1."""
    app.ok("/x")
    with ConnectionManager() as cm:

        def set_token(token: str) -> None:
            if where == "endpoint":
                cm.set_endpoint_auth("127.0.0.1", "bearer", token=token)
            else:
                cm.set_bearer_token(token)

        set_token("t0")
        stop = threading.Event()

        def flip() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                set_token(f"t{i % 2}")

        flipper = threading.Thread(target=flip)
        flipper.start()
        try:
            calls = [
                start_bounded(lambda: [cm.get(app.url("/x")) for _ in range(50)]) for _ in range(8)
            ]
            assert all(call.join(20) for call in calls)
            assert all(call.error is None for call in calls)
        finally:
            stop.set()
            flipper.join(5)
    seen = Counter(r.headers.get("Authorization") for r in app.requests)
    assert set(seen) <= {"Bearer t0", "Bearer t1"}, seen
    assert sum(seen.values()) == 400


def test_20_threads_under_a_limit_of_5_let_exactly_5_through(app: AppServer) -> None:
    """5 per minute, fail fast: of 20 concurrent calls exactly 5 reach the server."""
    app.ok("/x")
    with ConnectionManager(
        rate_limit_requests=5, rate_limit_period=60, rate_limit_max_wait=0
    ) as cm:
        calls = [start_bounded(lambda: cm.get(app.url("/x"))) for _ in range(20)]
        assert all(call.join(10) for call in calls)
    assert sum(isinstance(c.error, RateLimitExceeded) for c in calls) == 15
    assert app.hits("/x") == 5


@pytest.mark.timeout(20)
def test_waiting_for_a_pooled_connection_counts_inside_total_timeout(app: AppServer) -> None:
    """The only connection is busy for 3 s: a call with a 0.5 s deadline ends before 2 s."""
    app.slow("/hold", 3)
    app.ok("/x")
    cm = ConnectionManager(
        pool_maxsize=1,
        pool_block=True,
        max_retries=0,
        endpoint_configs={f"127.0.0.1:{app.port}/x": {"total_timeout": 0.5}},
    )
    try:
        holder = start_bounded(lambda: cm.get(app.url("/hold")))
        for _ in range(100):
            if app.hits("/hold"):
                break
            time.sleep(0.02)
        waiter = start_bounded(lambda: cm.get(app.url("/x")))
        assert waiter.join(2.0), "the pool wait outlived the 0.5 s deadline"
        _contract(waiter.error, rex.Timeout)  # type: ignore[arg-type]
        assert holder.join(10)
    finally:
        cm.close()


# =====================================================================================
# Redis faults: shared state that goes wrong under a running fleet.
# =====================================================================================
def test_flushall_while_a_breaker_is_open_reads_as_closed_and_reopens(
    app: AppServer, redis_server: RedisServer
) -> None:
    """Flushed keys are a closed breaker (docs/fleet.md); failures open it again.

    The process's open copy refuses until its recovery timeout, then finds it closed.
    """
    app.ok("/down", b"down", status=500)
    client = redis.Redis.from_url(redis_server.url)
    try:
        with ConnectionManager(
            redis_url=redis_server.url,
            max_retries=0,
            circuit_breaker_failure_threshold=2,
            circuit_breaker_recovery_timeout=1,
        ) as cm:
            cm.get(app.url("/down"))
            cm.get(app.url("/down"))
            with pytest.raises(CircuitBreakerOpen):
                cm.get(app.url("/down"))
            client.flushall()
            assert wait_until(lambda: _answered(cm, app.url("/down")), seconds=5)
            assert cm.get(app.url("/down")).status_code == 500
            with pytest.raises(CircuitBreakerOpen):
                cm.get(app.url("/down"))
            assert cm.get_stats()["shared_state"]["healthy"] is True
    finally:
        client.close()
    assert app.hits("/down") == 4


def _answered(cm: ConnectionManager, url: str) -> bool:
    try:
        return cm.get(url).status_code == 500
    except CircuitBreakerOpen:
        return False


@pytest.mark.timeout(40)
def test_flushall_during_a_shared_probe_leaves_no_negative_counter(
    app: AppServer, redis_server: RedisServer
) -> None:
    """Redis flushed while a probe is in flight: no key below zero, no counter without TTL."""
    app.ok("/svc", b"down", status=500)
    client = redis.Redis.from_url(redis_server.url)
    cm = ConnectionManager(
        redis_url=redis_server.url,
        max_retries=0,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_recovery_timeout=5,
    )
    try:
        cm.get(app.url("/svc"))
        with pytest.raises(CircuitBreakerOpen) as info:
            cm.get(app.url("/svc"))
        app.slow("/svc", 2)
        time.sleep((info.value.retry_after or 0) + 1.05)
        probe = start_bounded(lambda: cm.get(app.url("/svc")))
        time.sleep(0.5)
        client.flushall()
        assert probe.join(10)
        leftovers = {}
        for key in client.keys("*"):
            value = client.get(key)
            if value is not None and value.lstrip(b"-").isdigit():
                leftovers[key.decode()] = (int(value), client.ttl(key))
    finally:
        cm.close()
        client.close()
    assert all(value >= 0 for value, _ in leftovers.values()), leftovers
    assert all(ttl != -1 for key, (_, ttl) in leftovers.items() if "probe" in key), leftovers


def test_a_corrupt_breaker_record_in_redis_keeps_calls_in_the_contract(
    app: AppServer, redis_server: RedisServer
) -> None:
    """Someone wrote 'notanumber' into opened_at: calls still answer or raise our errors."""
    app.ok("/down", b"down", status=500)
    client = redis.Redis.from_url(redis_server.url)
    outcomes: list[object] = []
    try:
        with ConnectionManager(
            redis_url=redis_server.url, max_retries=0, circuit_breaker_failure_threshold=2
        ) as cm:
            cm.get(app.url("/down"))
            for key in client.keys("*opened_at*") or [
                f"rcm:http://127.0.0.1:{app.port}:pybreaker:opened_at"
            ]:
                client.set(key, "notanumber")
            for _ in range(4):
                try:
                    outcomes.append(cm.get(app.url("/down")).status_code)
                except ConnectionManagerError as exc:
                    outcomes.append(type(exc).__name__)
                except Exception as exc:  # the defect: recorded, not raised
                    outcomes.append(f"outside the contract: {exc!r}")
    finally:
        client.close()
    assert not [o for o in outcomes if str(o).startswith("outside")], outcomes


@pytest.mark.timeout(30)
def test_a_redis_that_accepts_but_never_answers_costs_one_short_timeout(
    app: AppServer, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A black-hole Redis: calls complete on local state, one warning, bounded cost."""
    app.ok("/x")
    with (
        SlowProxy(redis_server.port, delay=60) as black_hole,
        caplog.at_level(logging.WARNING, logger=LOGGER),
        ConnectionManager(
            redis_url=f"redis://127.0.0.1:{black_hole.port}/0",
            rate_limit_requests=100,
            rate_limit_period=1,
            total_timeout=5,
        ) as cm,
    ):
        calls = []
        for _ in range(5):
            call = start_bounded(lambda: cm.get(app.url("/x")))
            assert call.join(5)
            assert call.error is None, call.error
            calls.append(call.elapsed)
        assert sum(calls) < 3, calls
        assert cm.get_stats()["shared_state"]["healthy"] is False
    assert len([r for r in caplog.records if "Redis" in r.getMessage()]) == 1


def test_a_breaker_key_of_the_wrong_type_fails_open(
    app: AppServer, redis_server: RedisServer
) -> None:
    """A list where the breaker's hash should be (WRONGTYPE): local state, calls go on."""
    app.ok("/down", b"down", status=500)
    client = redis.Redis.from_url(redis_server.url)
    try:
        with ConnectionManager(
            redis_url=redis_server.url, max_retries=0, circuit_breaker_failure_threshold=2
        ) as cm:
            cm.get(app.url("/down"))
            spoiled = [key for key in client.scan_iter("*") if key.endswith(b":br")]
            assert spoiled, sorted(client.scan_iter("*"))
            for key in spoiled:
                client.delete(key)
                client.lpush(key, "open")
            outcomes: list[Any] = []
            for _ in range(4):
                try:
                    outcomes.append(cm.get(app.url("/down")).status_code)
                except CircuitBreakerOpen:
                    outcomes.append("open")
            # Every call stays in the contract and the breaker still works (locally).
            assert set(outcomes) <= {500, "open"}, outcomes
            assert outcomes[-1] == "open", outcomes
            assert app.hits("/down") <= 3
    finally:
        client.close()


# =====================================================================================
# Logs and stats: what a server sends back, and what the stats show.
# =====================================================================================
def test_a_server_echoing_the_token_does_not_put_it_in_the_debug_log(
    app: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    """X-Echo: Bearer <token> and a body quoting it: the DEBUG response line redacts both."""

    def echo(request: Request) -> Response:
        sent = request.headers.get("Authorization", "")
        return Response(f'{{"you sent": "{sent}"}}', headers={"X-Echo": sent})

    app.route("/echo", echo)
    with (
        caplog.at_level(logging.DEBUG, logger=LOGGER),
        ConnectionManager(bearer_token=SECRETS[1]) as cm,
    ):
        assert cm.get(app.url("/echo")).status_code == 200
    assert SECRETS[1] not in caplog.text


def test_set_cookie_in_a_response_is_redacted_in_the_debug_log(
    app: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Set-Cookie: session=<secret> never reaches the log."""
    app.ok("/login", headers={"Set-Cookie": f"session={SECRETS[0]}; HttpOnly"})
    with caplog.at_level(logging.DEBUG, logger=LOGGER), ConnectionManager() as cm:
        assert cm.get(app.url("/login")).status_code == 200
    assert caplog.records
    assert SECRETS[0] not in caplog.text


def test_userinfo_and_secret_params_never_reach_the_stats_or_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """http://ann:<pw>@host/?access_token=<t>: not in get_stats(), the error or the log."""
    url = f"http://ann:{SECRETS[0]}@127.0.0.1:{free_port()}/"
    with caplog.at_level(logging.DEBUG, logger=LOGGER), ConnectionManager(max_retries=0) as cm:
        with pytest.raises(ConnectionManagerError) as info:
            cm.get(url, params={"access_token": SECRETS[1], "client_secret": SECRETS[1]})
        stats = repr(cm.get_stats())
    text = f"{info.value!s} {info.value!r} {info.value.__cause__!r} {stats} {caplog.text}"
    assert not [s for s in SECRETS if s in text]


def test_a_cookie_with_crlf_is_an_invalid_header_in_the_contract(faults: FaultServer) -> None:
    """A cookie value with CR/LF: InvalidHeader (a ValueError too), nothing sent."""
    with ConnectionManager() as cm, pytest.raises(Exception) as info:  # the type is the point
        cm.get(faults.url("/"), cookies={"pref": "v\r\nX-Injected: 1"})
    _contract(info.value, rex.InvalidHeader)
    assert isinstance(info.value, ValueError)
    assert faults.connections == 0


# =====================================================================================
# Remembered answers: what the session keeps between calls never answers differently
# from requests (the environment's answers per URL beginning, prepared URLs).
# =====================================================================================
#: requests before 2.32.4 looked .netrc up by ``netloc.split(":")[0]`` (CVE-2024-47081).
_NETLOC_NETRC = tuple(int(p) for p in requests.__version__.split(".")[:3]) < (2, 32, 4)
TRICKY_URLS = [
    "http://good.example/x",
    "http://user:p#x@evil.example/",  # the authority ends at '#': the host is 'user'
    "http://user:p#y@good.example/",
    "http://evil.example\\@good.example/",  # a backslash is not a delimiter here
    "http://good.example@evil.example/",
    "http://good.example:80@evil.example:8080/",
    "http://GOOD.example/",
    "http://good.example./",
    "http://[::1]:8080/",
    "http://127.0.0.1:8080@good.example/",
    "HTTP://good.example/",
    "http://good.example\t/tab",
]


def test_urls_that_share_a_beginning_get_requests_netrc_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """.netrc credentials per URL, asked in an order meant to poison what is remembered."""
    netrc = tmp_path / "netrc"
    netrc.write_text(
        "machine good.example login g password gp\n"
        "machine evil.example login e password ep\n"
        "machine user login u password up\n"
    )
    monkeypatch.setenv("NETRC", str(netrc))
    with ConnectionManager() as cm, requests.Session() as plain:
        for url in [*TRICKY_URLS, *reversed(TRICKY_URLS)]:
            try:
                theirs = plain.prepare_request(requests.Request("GET", url))
            except rex.RequestException as exc:
                with pytest.raises(type(exc)):
                    cm.session.prepare_request(requests.Request("GET", url))
                continue
            ours = cm.session.prepare_request(requests.Request("GET", url))
            assert ours.url == theirs.url, url
            if _NETLOC_NETRC and "@" in urlsplit(url).netloc:
                # requests < 2.32.4 looked the entry up by the user-info (CVE-2024-47081):
                # the manager asks for the host's, as requests does since
                netloc = urlsplit(url).netloc.rpartition("@")[2]
                host_only = f"{urlsplit(url).scheme}://{netloc}/"
                theirs = plain.prepare_request(requests.Request("GET", host_only))
                if theirs.headers.get("Authorization") is None:  # no entry: the URL's own
                    continue
            assert ours.headers.get("Authorization") == theirs.headers.get("Authorization"), url


def test_urls_that_share_a_beginning_get_requests_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Proxies per URL with no_proxy listing some of the hosts: requests' answer every time."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "good.example,user,::1")
    with ConnectionManager() as cm, requests.Session() as plain:
        for url in [*TRICKY_URLS, *reversed(TRICKY_URLS)]:
            args = (url, {}, None, None, None)
            assert _answer(cm.session.merge_environment_settings, *args) == _answer(
                plain.merge_environment_settings, *args
            ), url


def _answer(function: Callable[..., Any], *args: Any) -> Any:
    """What ``function(*args)`` returns, or the class of what it raises."""
    try:
        return function(*args)
    except Exception as exc:  # the class is the answer compared
        return type(exc)


def test_the_prepared_url_memo_stays_bounded_and_right() -> None:
    """3,000 distinct URLs: at most 1,024 remembered, and every one prepared as requests does."""
    from requests_connection_manager import _prepare

    with ConnectionManager() as cm, requests.Session() as plain:
        for index in range(3000):
            url = f"http://h{index % 7}.example/{index}/ä?q={index}"
            ours = cm.session.prepare_request(requests.Request("GET", url))
            assert ours.url == plain.prepare_request(requests.Request("GET", url)).url
        assert len(cm.session._rcm_prepare_memo.urls) <= _prepare.MEMO_SIZE


# Functions requests looks up by name where it calls them: a test that replaces one there
# changes requests' behaviour, and must change the manager's the same way (the cheaper
# copies of requests' steps stand aside while one is replaced).
_PATCHED_HELPERS = [
    pytest.param(
        "requests.models.check_header_validity",
        lambda original: lambda header: None,
        id="lenient-header-check",
    ),
    pytest.param(
        "requests.models.get_auth_from_url",
        lambda original: lambda url: ("svc", "from-patch"),
        id="auth-from-url",
    ),
    pytest.param(
        "requests.adapters.get_encoding_from_headers",
        lambda original: lambda headers: "utf-16",
        id="encoding",
    ),
    pytest.param(
        "requests.sessions.merge_setting",
        lambda original: (
            lambda request, session, dict_class=dict: original(request, session, dict_class)
        ),
        id="merge-setting-wrapped",
    ),
]


@pytest.mark.parametrize(("target", "make"), _PATCHED_HELPERS)
def test_a_requests_helper_replaced_in_its_module_is_followed(
    target: str, make: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch, app: AppServer
) -> None:
    """Found in review: the copies used the helpers as imported, not the patched ones."""
    module_name, name = target.rsplit(".", 1)
    module = __import__(module_name, fromlist=[name])
    calls: list[int] = []
    replacement = make(getattr(module, name))

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return replacement(*args, **kwargs)

    app.ok("/ok")
    url = app.url("/ok")
    # A value requests refuses (leading space) unless its check is the lenient one.
    headers = {"X-Pad": " leading space"} if name == "check_header_validity" else None
    with ConnectionManager(max_retries=0) as cm, requests.Session() as plain:
        cm.get(url)  # the memos are warm
        monkeypatch.setattr(module, name, counted)
        theirs = plain.get(url, headers=headers)
        plain_calls = len(calls)
        ours = cm.get(url, headers=headers)
        assert len(calls) - plain_calls == plain_calls > 0
        assert ours.encoding == theirs.encoding
        assert ours.request.headers.get("Authorization") == theirs.request.headers.get(
            "Authorization"
        )


def test_a_replaced_cookie_extractor_sees_every_response(
    monkeypatch: pytest.MonkeyPatch, app: AppServer
) -> None:
    import requests.adapters

    seen: list[str] = []
    original = requests.adapters.extract_cookies_to_jar

    def spy(jar: Any, request: Any, response: Any) -> None:
        seen.append(request.url)
        original(jar, request, response)

    app.ok("/ok")
    with ConnectionManager(max_retries=0) as cm:
        cm.get(app.url("/ok"))
        monkeypatch.setattr(requests.adapters, "extract_cookies_to_jar", spy)
        cm.get(app.url("/ok"))
    assert seen == [app.url("/ok")]


def test_long_header_names_and_urls_are_not_remembered() -> None:
    """Found in review: only the value's length was capped (60 MB held for 1,000 calls)."""
    with ConnectionManager() as cm:
        session = cm.session
        for index in range(50):
            session.headers[f"X-{index}-" + "n" * 60_000] = "v"
            session.prepare_request(
                requests.Request("GET", f"http://h.example/{index}/" + "p" * 60_000)
            )
            del session.headers[f"X-{index}-" + "n" * 60_000]
        memo = session._rcm_prepare_memo
        assert sum(len(n) + len(v) for n, v in memo.valid_headers) < 100_000
        assert sum(len(url) for url in memo.urls) < 100_000


class _SaysOtherwise(str):
    """A URL string whose str() is another URL (requests prepares what str() says)."""

    def __str__(self) -> str:
        return "http://other.example/"


def test_a_str_subclass_url_is_prepared_from_what_str_says() -> None:
    with ConnectionManager() as cm, requests.Session() as plain:
        cm.session.prepare_request(requests.Request("GET", "http://h.example/a"))  # remembered
        url = _SaysOtherwise("http://h.example/a")
        ours = cm.session.prepare_request(requests.Request("GET", url))
        theirs = plain.prepare_request(requests.Request("GET", url))
        assert ours.url == theirs.url == "http://other.example/"


def test_session_headers_set_to_none_and_odd_mappings_merge_as_requests_does() -> None:
    """A session header set to None is dropped; a mapping whose items() lie goes to requests."""

    class Hiding(requests.structures.CaseInsensitiveDict):  # type: ignore[type-arg]
        def items(self) -> Any:
            return [(k, v) for k, v in super().items() if k.lower() != "x-hidden"]

    with ConnectionManager() as cm, requests.Session() as plain:
        for session in (cm.session, plain):
            session.headers["Accept"] = None  # type: ignore[assignment]
            session.headers = Hiding({**session.headers, "X-Hidden": "1", "X-Shown": "2"})
        for headers in (None, {"X-Call": "c", "X-Shown": None}, Hiding({"X-Hidden": "call"})):
            request = requests.Request("GET", "http://good.example/", headers=headers)
            ours = cm.session.prepare_request(request)
            theirs = plain.prepare_request(request)
            assert dict(ours.headers) == dict(theirs.headers)


def test_a_refusal_carries_no_secret_of_the_call(caplog: pytest.LogCaptureFixture) -> None:
    """Refused by an open breaker (not scrubbed: worded by the library): no secret in it."""
    port = free_port()
    url = f"http://ann:{SECRETS[0]}@127.0.0.1:{port}/?api_key={SECRETS[1]}"
    settings: dict[str, Any] = {"max_retries": 0, "circuit_breaker_failure_threshold": 1}
    with caplog.at_level(logging.DEBUG, logger=LOGGER), ConnectionManager(**settings) as cm:
        with pytest.raises(ConnectionManagerError):
            cm.get(url, headers={"X-Api-Key": SECRETS[0]})  # nothing listens: opens
        with pytest.raises(CircuitBreakerOpen) as info:
            cm.get(url, headers={"X-Api-Key": SECRETS[0]})
    text = f"{info.value!s} {info.value!r} {info.value.args!r} {caplog.text}"
    assert "127.0.0.1" in str(info.value)
    assert not [s for s in SECRETS if s in text]


def test_netrc_credentials_never_go_to_the_host_after_the_user_info(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """http://good:@evil/ gets no .netrc entry of 'good' (CVE-2024-47081), on any requests."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine good.example login g password good-secret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    leaked = "Basic " + base64.b64encode(b"g:good-secret").decode()
    with ConnectionManager() as cm:
        for url in ("http://good.example:@evil.example/", "http://good.example:80@evil.example/"):
            prepared = cm.session.prepare_request(requests.Request("GET", url))
            assert prepared.headers.get("Authorization") != leaked, url
        prepared = cm.session.prepare_request(requests.Request("GET", "http://good.example/"))
        assert prepared.headers.get("Authorization") == leaked  # its own host gets it


# =====================================================================================
# Leased permits of a shared limit (fleet2): many threads, closing, Redis gone.
# =====================================================================================
def _spend(cm: ConnectionManager, url: str, served: list[int], lock: threading.Lock) -> None:
    for _ in range(200):  # bounded: the quota is 64
        try:
            cm.get(url)
        except RateLimitExceeded:
            return
        with lock:
            served.append(1)


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window"])
def test_threads_of_two_managers_share_leases_without_one_extra_permit(
    app: AppServer, redis_server: RedisServer, strategy: str
) -> None:
    """6 threads in each of two managers race for 64 permits an hour: exactly 64 go out.

    The guarantee holds while Redis is healthy. A manager that timed two Redis answers over
    100 ms in a row (a loaded CI machine under coverage, twelve threads on one GIL, can)
    falls back to its local quota, as documented, and says so: that run is repeated under
    a new prefix, at most three times in all.
    """
    app.ok("/x")
    for run in range(3):
        outages: list[object] = []

        def on_event(event: object, outages: list[object] = outages) -> None:
            if isinstance(event, SharedStateChanged) and not event.healthy:
                outages.append(event)

        quota = {
            **hour_quota(redis_server.url, strategy),
            "redis_prefix": f"race{run}",
            "on_event": on_event,
        }
        served: list[int] = []
        lock = threading.Lock()
        hits = app.hits("/x")
        with ConnectionManager(**quota) as one, ConnectionManager(**quota) as two:
            threads = [
                threading.Thread(target=_spend, args=(cm, app.url("/x"), served, lock))
                for cm in (one, two)
                for _ in range(6)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert not any(thread.is_alive() for thread in threads)
        if not outages:
            break
    assert outages == [], "Redis was unhealthy in 3 runs"
    assert len(served) == app.hits("/x") - hits == 64


def test_a_closing_manager_gives_its_leased_permits_back(
    app: AppServer, redis_server: RedisServer
) -> None:
    """A worker recycled mid-lease does not keep its unused permits from the others."""
    app.ok("/x")
    quota = hour_quota(redis_server.url, "sliding-window")
    with ConnectionManager(**quota) as one:
        one.get(app.url("/x"))
        one.get(app.url("/x"))  # a lease of up to 4: two used
    served: list[int] = []
    with ConnectionManager(**quota) as two:
        _spend(two, app.url("/x"), served, threading.Lock())
    assert len(served) == 62


def test_a_manager_closes_cleanly_when_redis_is_gone_mid_lease(
    app: AppServer, redis_server: RedisServer
) -> None:
    """Giving a lease back to a Redis that is gone: close() neither raises nor hangs."""
    app.ok("/x")
    cm = ConnectionManager(
        redis_url=redis_server.url,
        max_retries=0,
        rate_limit_requests=10**6,
        rate_limit_period=60,
    )
    try:
        cm.get(app.url("/x"))
        cm.get(app.url("/x"))
        redis_server.stop()
    finally:
        cm.close()
    with pytest.raises(ConnectionManagerError, match="closed"):
        cm.get(app.url("/x"))


def test_urls_that_share_a_beginning_get_requests_pools() -> None:
    """The remembered pool key parts never give one URL another's pool (poisoning order)."""
    from requests.adapters import HTTPAdapter

    from requests_connection_manager._transport import Transport

    requests_way = HTTPAdapter.get_connection_with_tls_context
    urls = [
        "http://127.0.0.1:80/x",
        "http://127.0.0.1:8080/x",
        "http://127.0.0.1/x",
        "http://good.test@127.0.0.2/x",
        "http://127.0.0.2@good.test/x",
        "http://good.test\\@127.0.0.3/x",
        "http://good.test#@127.0.0.4/x",
        "http://good.test?@127.0.0.5/x",
        "http://GOOD.test/x",
        "http://good.test./x",
        "https://good.test/x",
        "https://good.test:443/x",
    ]
    adapter = Transport(pool_connections=len(urls) * 2)
    try:
        for order in (urls, urls[::-1]):
            for url in order:
                request = requests.PreparedRequest()
                request.prepare_method("GET")
                request.url = url  # as written: no normalisation on the way
                ours = adapter.get_connection_with_tls_context(request, True, {}, None)
                assert ours is requests_way(adapter, request, True, None, None), url
    finally:
        adapter.close()


def test_ctrl_c_while_giving_leases_back_still_stops_the_fleet_threads(
    app: AppServer, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KeyboardInterrupt during close's give-back propagates; the link's threads stop anyway."""
    from requests_connection_manager import _shared_limiter

    monkeypatch.setattr(_shared_limiter, "LEASE_SECONDS", 30.0)  # a slow first call still leases
    app.ok("/x")
    before = set(threading.enumerate())  # other tests' managers may still have threads
    cm = ConnectionManager(**hour_quota(redis_server.url, "sliding-window"))
    cm.get(app.url("/x"))
    cm.get(app.url("/x"))  # a lease with unused permits: close gives it back

    def fleet_threads() -> list[str]:
        return [
            t.name
            for t in threading.enumerate()
            if t.name.startswith("rcm-fleet") and t not in before
        ]

    assert fleet_threads()  # the subscriber and the ticker of this manager

    def interrupted(self: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_shared_limiter.SharedLimiter, "close", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cm.close()

    assert wait_until(lambda: not fleet_threads(), seconds=5), fleet_threads()
