"""The fault matrix: every bad day the library must survive, one table row per fault.

Each fault from :mod:`tests.faults` is run

* once, then the server is healthy: a GET is retried exactly once and succeeds; a POST
  whose bytes may have reached the server is never replayed and raises the contract error;
* persistently: a GET raises the contract error that is also the ``requests`` class plain
  ``requests`` raises for that fault, chained, after ``max_retries + 1`` attempts.

Backoff runs on a :class:`~tests.fakes.FakeClock`, so retries never sleep for real and the
sleeps are asserted exactly. Real-time bounds are proven by the call returning under the
test's own timeout with a deadline (``total_timeout`` or a read timeout) set, never by a
stopwatch. The circuit breaker is disabled unless a row is about it.

Further tables: streaming of broken bodies, ``total_timeout`` against a body that drips
forever, ``Retry-After`` values good and bad, redirect loops and cross-origin redirects,
failures where no server answers (DNS, refused port, TLS), and secrets in messages.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import partial
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Optional

import pytest
import requests
import requests.exceptions as rex
import trustme

from requests_connection_manager import (
    ConnectionManager,
    ConnectionManagerError,
    MaxRetriesExceeded,
    RateLimitExceeded,
)
from tests import faults as f
from tests.fakes import FakeClock
from tests.faults import FaultServer
from tests.servers import AppServer, free_port
from tests.tlsserver import serve_https

pytestmark = pytest.mark.timeout(10)

MAX_RETRIES = 2
BACKOFF = 1.0  # full jitter: retry n sleeps in (0, BACKOFF * 2 ** (n - 1)]


def manager(clock: Optional[FakeClock], **kwargs: Any) -> ConnectionManager:
    """A manager with the matrix defaults; ``clock=None`` means the real clock."""
    kwargs.setdefault("max_retries", MAX_RETRIES)
    kwargs.setdefault("backoff_factor", BACKOFF)
    kwargs.setdefault("circuit_breaker_failure_threshold", None)
    if clock is not None:
        kwargs["clock"] = clock
    return ConnectionManager(**kwargs)


def assert_backoff_sleeps(clock: FakeClock, retries: int) -> None:
    """The fake clock recorded one full-jitter backoff per retry, each under its ceiling."""
    assert len(clock.sleeps) == retries, clock.sleeps
    for n, slept in enumerate(clock.sleeps, start=1):
        assert 0 < slept <= BACKOFF * 2 ** (n - 1), clock.sleeps


def assert_contract(error: BaseException, requests_class: type[BaseException]) -> None:
    """The error is in the contract, is the requests class, and chains its cause."""
    assert isinstance(error, ConnectionManagerError), type(error).__mro__
    assert isinstance(error, requests_class), type(error).__mro__
    assert error.__cause__ is not None
    assert error.__cause__ is not error


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    """One fault of the matrix.

    Attributes:
        fault: Builds the fault the server performs.
        error: The requests class plain ``requests`` raises for it (checked against plain
            requests by ``test_plain_requests_raises_the_class_of_the_row``), and the one
            the library's contract error must also be.
        settings: Manager settings the row needs (timeouts).
        reads_request: The server reads (and records) the request before the fault.
        spends_deadline: The fault uses up the whole call's ``total_timeout``, so no
            retry is possible; such rows run on the real clock (the deadline is real time).
    """

    fault: Callable[[], f.Fault]
    error: type[rex.RequestException]
    settings: dict[str, Any] = field(default_factory=dict)
    reads_request: bool = True
    spends_deadline: bool = False


ROWS: dict[str, Row] = {
    # http.client RemoteDisconnected -> urllib3 ProtocolError -> requests.ConnectionError.
    "close_without_answer": Row(f.close_without_answer, rex.ConnectionError),
    # ECONNRESET while reading the status line -> ProtocolError -> requests.ConnectionError.
    "reset_after_request": Row(f.reset_after_request, rex.ConnectionError),
    # The server reads nothing, but the client has already written the request and then
    # fails reading the status line (ECONNRESET or EOF) -> requests.ConnectionError. For
    # urllib3's Retry that is a read error: the bytes may have reached the server.
    "close_before_request": Row(f.close_before_request, rex.ConnectionError, reads_request=False),
    # http.client BadStatusLine -> ProtocolError -> requests.ConnectionError.
    "garbage_status": Row(f.garbage_status, rex.ConnectionError),
    # IncompleteRead (90 of 100 bytes missing) -> requests.ChunkedEncodingError.
    "truncated_body": Row(partial(f.truncated_body, 100, 10), rex.ChunkedEncodingError),
    # Same, with total_timeout set: the library reads the body with its deadline-aware
    # read1 loop instead of Response.content; the outcome must not differ.
    "truncated_body+deadline": Row(
        partial(f.truncated_body, 100, 10), rex.ChunkedEncodingError, {"total_timeout": 5}
    ),
    # InvalidChunkLength (b"zz") -> requests.ChunkedEncodingError.
    "broken_chunked": Row(f.broken_chunked, rex.ChunkedEncodingError),
    "broken_chunked+deadline": Row(
        f.broken_chunked, rex.ChunkedEncodingError, {"total_timeout": 5}
    ),
    # No byte within the read timeout -> urllib3 ReadTimeoutError -> requests.ReadTimeout.
    "hang": Row(partial(f.hang, 5), rex.ReadTimeout, {"read_timeout": 0.3}),
    # Status line, then silence while the headers are read -> requests.ReadTimeout.
    "stall_headers": Row(partial(f.stall_headers, 5), rex.ReadTimeout, {"read_timeout": 0.3}),
    # The body stops for longer than the read timeout after its first byte: requests'
    # Response.iter_content turns that ReadTimeoutError into requests.ConnectionError.
    "drip_slower_than_read_timeout": Row(
        partial(f.drip, b"x" * 20, 1.0), rex.ConnectionError, {"read_timeout": 0.3}
    ),
    # 10 000 bytes at 20 bytes/s would take 500 s: total_timeout (0.5 s) ends the call
    # with a requests.ReadTimeout whose message names total_timeout. The deadline is for
    # the whole call, so there is no time left for a retry. (Plain requests has no
    # deadline at all: its read timeout never fires on a body that keeps dripping.)
    "drip_past_total_timeout": Row(
        partial(f.drip, b"x" * 10_000, 0.05),
        rex.ReadTimeout,
        {"total_timeout": 0.5},
        spends_deadline=True,
    ),
}

ROW_PARAMS = [pytest.param(row, id=name) for name, row in ROWS.items()]
PLAIN_PARAMS = [pytest.param(row, id=name) for name, row in ROWS.items() if not row.spends_deadline]


def clock_for(row: Row, clock: FakeClock) -> Optional[FakeClock]:
    """The fake clock, unless the row's deadline must run in real time."""
    return None if row.spends_deadline else clock


# ---------------------------------------------------------------- 0. the table is honest


@pytest.mark.parametrize("row", PLAIN_PARAMS)
def test_plain_requests_raises_the_class_of_the_row(row: Row) -> None:
    """Plain requests (no retries) raises exactly the row's requests class for the fault.

    Note: with urllib3 2.x (enforce_content_length on by default) plain requests raises
    ChunkedEncodingError for a truncated body too; it does not return a short 200.
    """
    timeout = row.settings.get("read_timeout", 5)
    with (
        FaultServer(default=row.fault()) as server,
        requests.Session() as session,
        pytest.raises(rex.RequestException) as info,
    ):
        session.get(server.url("/x"), timeout=timeout)
    assert type(info.value) is row.error


# ------------------------------------------------------------- 1. the fault once, then ok


@pytest.mark.parametrize("row", ROW_PARAMS)
def test_get_meeting_the_fault_once_is_retried_once(
    faults: FaultServer, clock: FakeClock, row: Row
) -> None:
    """A GET that meets the fault once succeeds on its one retry, with the whole body.

    Except when the fault spent the whole call's total_timeout: then there is no time
    left for a retry and the call raises (drip_past_total_timeout).
    """
    faults.script([row.fault()])
    with manager(clock_for(row, clock), **row.settings) as cm:
        if row.spends_deadline:
            # The fault ate the call's whole deadline: the error, and no retry.
            with pytest.raises(rex.RequestException) as info:
                cm.get(faults.url("/x"))
            assert_contract(info.value, row.error)
            assert "total_timeout" in str(info.value)
            assert faults.connections == 1
            return
        response = cm.get(faults.url("/x"))
    assert response.status_code == 200
    assert response.content == b"ok"
    assert faults.connections == 2
    assert_backoff_sleeps(clock, retries=1)


@pytest.mark.parametrize("row", ROW_PARAMS)
def test_post_meeting_the_fault_once_is_never_replayed(
    faults: FaultServer, clock: FakeClock, row: Row
) -> None:
    """A POST whose bytes may have reached the server is sent once and raises the error.

    Every fault of the table happens after the client wrote the request, so urllib3's
    Retry sees a read error (or a timeout/broken body) and POST is not in allowed_methods.
    """
    payload = b"pay exactly once"
    faults.script([row.fault()])
    with (
        manager(clock_for(row, clock), **row.settings) as cm,
        pytest.raises(rex.RequestException) as info,
    ):
        cm.post(faults.url("/x"), data=payload)
    assert_contract(info.value, row.error)
    assert not isinstance(info.value, MaxRetriesExceeded)
    assert faults.connections == 1
    posts = [r for r in faults.requests if r.method == "POST"]
    if row.reads_request:
        assert [p.body for p in posts] == [payload]
    else:
        assert posts == []  # close_before_request: the server read nothing at all
    assert sum(line.startswith("POST ") for line in faults.request_lines) == len(posts)
    assert clock.sleeps == []


# ------------------------------------------------------------------ 2. the fault forever


@pytest.mark.parametrize("row", ROW_PARAMS)
def test_get_meeting_the_fault_every_time_raises_the_contract_error(
    faults: FaultServer, clock: FakeClock, row: Row
) -> None:
    """A persistent fault: the contract error, the requests class, chained, all attempts."""
    faults.default = row.fault()
    with (
        manager(clock_for(row, clock), **row.settings) as cm,
        pytest.raises(rex.RequestException) as info,
    ):
        cm.get(faults.url("/x"))
    error = info.value
    assert_contract(error, row.error)
    if row.spends_deadline:
        assert not isinstance(error, MaxRetriesExceeded)
        assert "total_timeout" in str(error)
        assert faults.connections == 1
        return
    assert isinstance(error, MaxRetriesExceeded)
    assert error.attempts == MAX_RETRIES + 1
    assert faults.connections == MAX_RETRIES + 1
    if row.reads_request:
        assert len(faults.requests) == MAX_RETRIES + 1
    assert_backoff_sleeps(clock, retries=MAX_RETRIES)


# ------------------------------------------------------ 3. broken bodies, stream or not


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(partial(f.truncated_body, 100, 0), id="headers_only"),
        pytest.param(partial(f.truncated_body, 100, 10), id="truncated_10_of_100"),
        pytest.param(partial(f.truncated_body, 100, 99), id="truncated_99_of_100"),
        pytest.param(f.broken_chunked, id="broken_chunked"),
    ],
)
@pytest.mark.parametrize("total_timeout", [None, 5], ids=["no_deadline", "deadline"])
def test_a_broken_body_is_never_a_short_200(
    faults: FaultServer,
    clock: FakeClock,
    fault: Callable[[], f.Fault],
    total_timeout: Optional[float],
) -> None:
    """However many bytes are missing, the call raises; it never returns a short body."""
    faults.default = fault()
    with (
        manager(clock, max_retries=0, total_timeout=total_timeout) as cm,
        pytest.raises(rex.RequestException) as info,
    ):
        cm.get(faults.url("/x"))
    assert_contract(info.value, rex.ChunkedEncodingError)
    assert faults.connections == 1


def _read_content(response: requests.Response) -> bytes:
    return response.content


def _read_iter_content(response: requests.Response) -> bytes:
    return b"".join(response.iter_content(8))


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(partial(f.truncated_body, 100, 10), id="truncated_body"),
        pytest.param(f.broken_chunked, id="broken_chunked"),
    ],
)
@pytest.mark.parametrize(
    "read",
    [pytest.param(_read_content, id="content"), pytest.param(_read_iter_content, id="iter")],
)
def test_streamed_broken_body_is_left_to_the_caller_and_reading_raises(
    faults: FaultServer,
    clock: FakeClock,
    fault: Callable[[], f.Fault],
    read: Callable[[requests.Response], bytes],
) -> None:
    """stream=True: the 200 is returned untouched (no retry); reading the body raises.

    The library never touches a streamed body, so the error raised while the caller reads
    it is requests' own ChunkedEncodingError, exactly as with plain requests.
    """
    faults.default = fault()
    with manager(clock) as cm:
        response = cm.get(faults.url("/x"), stream=True)
        assert response.status_code == 200
        assert response.raw.tell() == 0
        with pytest.raises(rex.ChunkedEncodingError):
            read(response)
    assert faults.connections == 1
    assert clock.sleeps == []


# ----------------------------------------------------- 4. a body that drips for ever


@pytest.mark.parametrize("via", ["manager", "session"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_total_timeout_bounds_a_body_that_drips_forever(
    faults: FaultServer, via: str, method: str
) -> None:
    """total_timeout=0.5 ends a 500-second drip; the test's own 10 s timeout is the proof.

    Retries are allowed (max_retries=2) but cannot extend the call past its deadline.
    """
    faults.default = f.drip(b"x" * 10_000, interval=0.05)
    data = b"p" if method == "POST" else None
    with manager(None, total_timeout=0.5) as cm:
        send = cm.request if via == "manager" else cm.session.request
        with pytest.raises(rex.Timeout) as info:
            send(method, faults.url("/x"), data=data)
    assert_contract(info.value, rex.ReadTimeout)
    assert "total_timeout" in str(info.value)
    assert faults.connections == 1


# ------------------------------------------------------------------------ 5. Retry-After


def _http_date(offset: float) -> str:
    # urllib3 reads an HTTP-date against the real wall clock, not the fake one.
    return formatdate(time.time() + offset, usegmt=True)


IGNORED_RETRY_AFTER = [
    pytest.param(lambda: "soon", id="garbage"),
    pytest.param(lambda: "-5", id="negative"),
    pytest.param(
        lambda: _http_date(-3600),
        id="past_date",
    ),
]


@pytest.mark.parametrize("value", IGNORED_RETRY_AFTER)
@pytest.mark.parametrize("status", [429, 503])
def test_unusable_retry_after_falls_back_to_backoff(
    faults: FaultServer, clock: FakeClock, status: int, value: Callable[[], str]
) -> None:
    """Garbage, negative or past Retry-After: ignored, one normal backoff, then success."""
    faults.script([f.retry_after(status, value())])
    with manager(clock) as cm:
        response = cm.get(faults.url("/x"))
    assert response.status_code == 200
    assert faults.connections == 2
    assert_backoff_sleeps(clock, retries=1)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_the_past_is_never_waited_for(
    faults: FaultServer, clock: FakeClock, status: int
) -> None:
    """A past HTTP-date never makes the call wait longer than a backoff (what works today)."""
    faults.script([f.retry_after(status, _http_date(-3600))])
    with manager(clock) as cm:
        assert cm.get(faults.url("/x")).status_code == 200
    assert faults.connections == 2
    assert all(s <= BACKOFF for s in clock.sleeps), clock.sleeps


@pytest.mark.parametrize("status", [429, 503])
def test_future_retry_after_date_within_the_cap_is_waited_out(
    faults: FaultServer, clock: FakeClock, status: int
) -> None:
    """An HTTP-date 30 s ahead (cap 60 s): the call waits that long once, then succeeds."""
    faults.script([f.retry_after(status, _http_date(30))])
    with manager(clock, retry_after_max=60) as cm:
        assert cm.get(faults.url("/x")).status_code == 200
    assert faults.connections == 2
    (slept,) = clock.sleeps
    assert 28 < slept <= 31  # an HTTP-date has whole seconds; waiters are spread up to 1 s


@pytest.mark.parametrize("status", [429, 503])
def test_huge_retry_after_raises_at_once(
    faults: FaultServer, clock: FakeClock, status: int
) -> None:
    """Retry-After 999999 s: RateLimitExceeded at once, no sleep, a single connection."""
    faults.default = f.retry_after(status, "999999")
    with manager(clock) as cm, pytest.raises(RateLimitExceeded) as info:
        cm.get(faults.url("/x"))
    assert isinstance(info.value, ConnectionManagerError)
    assert info.value.retry_after is not None
    assert info.value.retry_after > 120  # longer than retry_after_max, which is why
    assert clock.sleeps == []
    assert faults.connections == 1


@pytest.mark.parametrize("status", [429, 503])
def test_huge_retry_after_is_reported_as_the_server_sent_it(
    faults: FaultServer, clock: FakeClock, status: int
) -> None:
    """RateLimitExceeded.retry_after is the server's 999999 s, not a clamped value."""
    faults.default = f.retry_after(status, "999999")
    with manager(clock) as cm, pytest.raises(RateLimitExceeded) as info:
        cm.get(faults.url("/x"))
    assert info.value.retry_after == pytest.approx(999999)


# -------------------------------------------------------------------------- 6. redirects


@pytest.mark.parametrize("max_redirects", [5, None], ids=["max_redirects_5", "default_30"])
def test_redirect_loop_is_bounded_too_many_redirects(
    faults: FaultServer, clock: FakeClock, max_redirects: Optional[int]
) -> None:
    """A server redirecting to itself: TooManyRedirects after max_redirects + 1 requests."""
    faults.default = f.redirect("/loop")
    with manager(clock) as cm:
        if max_redirects is not None:
            cm.session.max_redirects = max_redirects
        limit = cm.session.max_redirects
        with pytest.raises(rex.TooManyRedirects) as info:
            cm.get(faults.url("/loop"))
    assert_contract(info.value, rex.TooManyRedirects)
    assert faults.connections == limit + 1
    assert clock.sleeps == []


def test_redirect_to_another_origin_is_followed(faults: FaultServer, clock: FakeClock) -> None:
    """A 302 to a second origin (127.0.0.2) is followed; each origin is its own host."""
    with AppServer("127.0.0.2") as other:
        other.ok("/landing", body=b"landed")
        faults.script([f.redirect(other.url("/landing"))])
        with manager(clock) as cm:
            response = cm.get(faults.url("/start"))
            hosts = cm.get_stats()["hosts"]
        assert other.hits("/landing") == 1
    assert response.status_code == 200
    assert response.text == "landed"
    assert [r.status_code for r in response.history] == [302]
    assert faults.connections == 1
    assert any(key.startswith(f"http://127.0.0.2:{other.port}") for key in hosts), hosts


# ------------------------------------------- 7. nobody answers: DNS, refused port, TLS


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        """Silence request logging."""


@dataclass(frozen=True)
class TLS:
    """Two HTTPS servers with certificates from one throwaway CA."""

    ca_path: str
    right_name_url: str  # certificate for 127.0.0.1
    wrong_name_url: str  # certificate for example.org, served on 127.0.0.1


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLS]:
    """HTTPS on 127.0.0.1 with a certificate for 127.0.0.1 and one for example.org."""
    ca = trustme.CA()
    ca_path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    urls = []
    with ExitStack() as stack:
        for name in ("127.0.0.1", "example.org"):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ca.issue_cert(name).configure_cert(context)
            urls.append(stack.enter_context(serve_https(_Hello, context)))
        yield TLS(str(ca_path), urls[0], urls[1])


_PERMANENT_DNS = {
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
}


def _resolver_says(host: str) -> int:
    """Return the errno the resolver gives for ``host`` (resolving it is a failure)."""
    try:
        socket.getaddrinfo(host, 80, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return int(exc.errno or 0)
    pytest.fail(
        f"the resolver returned an address for {host!r}; RFC 6761 says .invalid never resolves"
    )


@dataclass(frozen=True)
class Target:
    """Where a call goes, how, and what the library must make of it."""

    url: str
    kwargs: dict[str, Any]
    error: type[rex.RequestException]
    retried: bool  # retrying may help: a connection error; not: NXDOMAIN, bad certificate


def dns_nxdomain(request: pytest.FixtureRequest) -> Target:
    # A name that does not exist will not exist on the next attempt either. If this
    # sandbox's resolver cannot answer at all (EAI_AGAIN: no DNS), that failure is
    # transient and must be retried: the test checks whichever the resolver says.
    permanent = _resolver_says("nonexistent.invalid") in _PERMANENT_DNS
    return Target("http://nonexistent.invalid/x", {}, rex.ConnectionError, not permanent)


def refused_port(request: pytest.FixtureRequest) -> Target:
    # Connection refused: nothing was sent, and a restarting server may accept next time.
    return Target(f"http://127.0.0.1:{free_port()}/x", {}, rex.ConnectionError, True)


def tls_unknown_ca(request: pytest.FixtureRequest) -> Target:
    servers: TLS = request.getfixturevalue("tls")
    _Hello.hits = 0
    return Target(servers.right_name_url, {}, rex.SSLError, False)


def tls_wrong_host(request: pytest.FixtureRequest) -> Target:
    servers: TLS = request.getfixturevalue("tls")
    _Hello.hits = 0
    return Target(servers.wrong_name_url, {"verify": servers.ca_path}, rex.SSLError, False)


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("target", [dns_nxdomain, refused_port, tls_unknown_ca, tls_wrong_host])
def test_unreachable_origin_is_translated_and_retried_only_if_it_can_help(
    request: pytest.FixtureRequest,
    clock: FakeClock,
    target: Callable[[pytest.FixtureRequest], Target],
    method: str,
) -> None:
    """DNS NXDOMAIN and bad certificates fail at once; a refused port is retried (any method)."""
    where = target(request)
    data = b"x" if method == "POST" else None
    with manager(clock, max_retries=3) as cm:
        with pytest.raises(rex.RequestException) as info:
            cm.request(method, where.url, data=data, **where.kwargs)
        attempts = sum(h["attempts"] for h in cm.get_stats()["hosts"].values())
    assert_contract(info.value, where.error)
    if where.retried:
        assert isinstance(info.value, MaxRetriesExceeded)
        assert info.value.attempts == attempts == 4
        assert len(clock.sleeps) == 3
    else:
        assert not isinstance(info.value, MaxRetriesExceeded)
        assert attempts == 1
        assert clock.sleeps == []  # quick: not one backoff
    if where.error is rex.SSLError:
        assert _Hello.hits == 0  # the handshake failed: no request reached the handler


def test_tls_with_the_right_name_and_ca_works(tls: TLS, clock: FakeClock) -> None:
    """Control for the TLS rows: the same server, trusted CA and right name, answers."""
    with manager(clock) as cm:
        assert cm.get(tls.right_name_url, verify=tls.ca_path).text == "ok"


# --------------------------------------------------------------------------- 8. secrets

SECRET_URL = "http://user:pw@{host}/x?api_key=SECRET&page=2"


def _messages(error: BaseException) -> Iterator[str]:
    """Yield str and repr of the error and everything chained to it (causes, contexts, reasons)."""
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += [a for a in current.args if isinstance(a, BaseException)]
        pending.extend(e for e in linked if isinstance(e, BaseException))


def _secret_refused(server: FaultServer) -> str:
    return SECRET_URL.format(host=f"127.0.0.1:{free_port()}")


def _secret_dns(server: FaultServer) -> str:
    return SECRET_URL.format(host="nonexistent.invalid")


def _secret_fault(fault: f.Fault, server: FaultServer) -> str:
    server.default = fault
    return SECRET_URL.format(host=f"127.0.0.1:{server.port}")


@pytest.mark.parametrize(
    "aim",
    [
        pytest.param(_secret_refused, id="refused_port"),
        pytest.param(_secret_dns, id="dns_nxdomain"),
        pytest.param(partial(_secret_fault, f.reset_after_request()), id="reset"),
        pytest.param(partial(_secret_fault, f.garbage_status()), id="garbage_status"),
        pytest.param(partial(_secret_fault, f.truncated_body()), id="truncated_body"),
        pytest.param(partial(_secret_fault, f.hang(5)), id="hang"),
        pytest.param(partial(_secret_fault, f.respond(503)), id="status_503"),
        pytest.param(partial(_secret_fault, f.redirect("/x?api_key=SECRET")), id="redirect_loop"),
    ],
)
def test_no_secret_in_any_error_message(
    faults: FaultServer, clock: FakeClock, aim: Callable[[FaultServer], str]
) -> None:
    """Credentials in the URL (userinfo, api_key) appear in no message of the error chain."""
    url = aim(faults)
    with manager(clock, read_timeout=0.2) as cm:
        cm.session.max_redirects = 3
        with pytest.raises(rex.RequestException) as info:
            cm.get(url)
    assert isinstance(info.value, ConnectionManagerError)
    assert info.value.__cause__ is not None
    for text in _messages(info.value):
        assert "SECRET" not in text, text
        assert "pw@" not in text, text
