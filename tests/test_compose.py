"""The pipeline on the session a user already has.

requests-cache, requests-oauthlib, requests-toolbelt, an SDK's session, and
``cm.adapter`` mounted alone.

Each library is the real one (the ``test`` extra), each server a loopback one. What a
test observes: the server's hit counts and recorded requests, the manager's event stream
(``on_event``), ``get_stats()``. ``docs/compose.md`` states what these tests prove.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from oauthlib.oauth2 import BackendApplicationClient
from requests.adapters import HTTPAdapter
from requests_cache import CacheMixin
from requests_cache.backends import BaseCache
from requests_oauthlib import OAuth2Session
from requests_toolbelt import MultipartEncoder
from urllib3.util import Retry
from werkzeug.wrappers import Request, Response

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    ConnectionManagerError,
    ConnectionManagerMixin,
    MaxRetriesExceeded,
    RateLimitExceeded,
    ResilientAdapter,
)
from requests_connection_manager.events import (
    AttemptFinished,
    BreakerStateChanged,
    Event,
    Refused,
    RequestStarted,
    RetryScheduled,
)
from tests.faults import FaultServer, reset_after_request
from tests.servers import AppServer

pytestmark = [
    pytest.mark.timeout(30),
    # url-normalize 2.x (requests-cache's dependency; the last line for Python 3.9) passes
    # idna a "transitional" flag that recent idna releases deprecate.
    pytest.mark.filterwarnings("ignore:Transitional processing is deprecated:DeprecationWarning"),
]


class ResilientCachedSession(ConnectionManagerMixin, CacheMixin, requests.Session):
    """requests-cache's session with the pipeline: the order docs/compose.md recommends."""


class CacheFirstSession(CacheMixin, ConnectionManagerMixin, requests.Session):
    """The other order, kept to show what it loses."""


class ResilientOAuth2Session(ConnectionManagerMixin, OAuth2Session):
    """requests-oauthlib's session with the pipeline."""


class OAuthFirstSession(OAuth2Session, ConnectionManagerMixin):
    """The other order: requests.Session ends up before the mixin in the MRO."""


class Recorder:
    """Collects a manager's events; counts them by type."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        """The events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]

    def failures(self) -> int:
        """Attempts the breaker counted as failed."""
        return sum(1 for e in self.of(AttemptFinished) if e.verdict == "failure")


@pytest.fixture
def events() -> Recorder:
    """An ``on_event`` subscriber that keeps every event."""
    return Recorder()


@pytest.fixture
def second() -> Iterator[AppServer]:
    """A second origin: a server on 127.0.0.2."""
    with AppServer("127.0.0.2") as server:
        yield server


def cached_session(events: Recorder, **kwargs: Any) -> ResilientCachedSession:
    """A cached session on the in-memory backend, reporting to ``events``."""
    settings: dict[str, Any] = {"backend": "memory", "backoff_factor": 0, "on_event": events}
    settings.update(kwargs)
    return ResilientCachedSession(**settings)


# ------------------------------------------------------------------ 1. requests-cache
def test_mixin_first_each_keyword_reaches_its_class(app: AppServer, events: Recorder) -> None:
    """Mixin first: manager keywords reach the pipeline, the rest reach requests-cache."""
    app.ok("/x", status=503)
    with cached_session(events, expire_after=60, max_retries=0) as session:
        assert session.settings.expire_after == 60
        assert type(session.cache) is BaseCache  # the memory backend
        assert session.get(app.url("/x")).status_code == 503
    assert app.hits("/x") == 1  # max_retries=0 reached the pipeline
    assert len(events.of(RequestStarted)) == 1


def test_cache_first_loses_the_manager_keywords(app: AppServer, events: Recorder) -> None:
    """CacheMixin first passes on only keywords it finds by name: the manager's are lost."""
    app.fail_then_ok("/x", failures=1)
    session = CacheFirstSession(backend="memory", max_retries=0, on_event=events)
    with session:
        assert session.get(app.url("/x")).status_code == 200  # retried: defaults in force
    assert app.hits("/x") == 2
    assert events.events == []  # on_event never reached the mixin


def test_a_miss_is_retried_by_the_pipeline_then_cached(app: AppServer, events: Recorder) -> None:
    """A miss goes through the pipeline (503 retried); the hit that follows does not."""
    app.fail_then_ok("/x", failures=1, ok_body=b"fresh")
    with cached_session(events, max_retries=2) as session:
        first = session.get(app.url("/x"))
        second = session.get(app.url("/x"))
        assert session.calls == 2  # a hit is a call made through the session
    assert (first.content, first.from_cache) == (b"fresh", False)
    assert (second.content, second.from_cache) == (b"fresh", True)
    assert app.hits("/x") == 2
    assert len(events.of(RetryScheduled)) == 1
    assert len(events.of(RequestStarted)) == 1  # the hit never reached the adapter


def test_a_hit_takes_no_rate_limit_permit(app: AppServer, events: Recorder) -> None:
    """One permit a minute, no waiting: hits are served, the next miss is refused."""
    app.ok("/x")
    app.ok("/y")
    with cached_session(events, rate_limit_requests=1, rate_limit_max_wait=0) as session:
        assert not session.get(app.url("/x")).from_cache
        for _ in range(3):
            assert session.get(app.url("/x")).from_cache
        with pytest.raises(RateLimitExceeded):
            session.get(app.url("/y"))
    assert app.hits("/x") == 1
    assert app.hits("/y") == 0
    assert [e.reason for e in events.of(Refused)] == ["rate_limit"]


def test_a_hit_does_not_count_for_the_breaker(app: AppServer, events: Recorder) -> None:
    """Two failures in a row open the breaker: a hit between them is no success."""
    app.ok("/cached")
    app.ok("/boom", status=500)
    with cached_session(events, max_retries=0, circuit_breaker_failure_threshold=2) as session:
        session.get(app.url("/cached"))
        assert session.get(app.url("/boom")).status_code == 500
        assert session.get(app.url("/cached")).from_cache
        assert session.get(app.url("/boom")).status_code == 500
    assert [(e.old, e.new) for e in events.of(BreakerStateChanged)] == [("closed", "open")]
    assert events.failures() == 2


def test_an_open_breaker_serves_a_hit_and_refuses_a_miss_without_traffic(
    app: AppServer, events: Recorder
) -> None:
    """The host is down: what the cache holds is served; a miss is refused, nothing sent."""
    app.ok("/cached", body=b"kept")
    app.ok("/boom", status=500)
    app.ok("/other")
    with cached_session(events, max_retries=0, circuit_breaker_failure_threshold=1) as session:
        session.get(app.url("/cached"))
        session.get(app.url("/boom"))
        hit = session.get(app.url("/cached"))
        assert (hit.content, hit.from_cache) == (b"kept", True)
        with pytest.raises(CircuitBreakerOpen):
            session.get(app.url("/other"))
    assert app.hits("/other") == 0
    assert [e.reason for e in events.of(Refused)] == ["breaker"]


def test_where_an_open_breaker_refuses(app: AppServer) -> None:
    """Without a cache: before the request is prepared; with one: at the adapter, after."""
    app.ok("/boom", status=500)
    prepared: list[str] = []

    def auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
        prepared.append(request.url or "")
        return request

    settings: dict[str, Any] = {"max_retries": 0, "circuit_breaker_failure_threshold": 1}
    with ConnectionManager(**settings) as cm:
        cm.get(app.url("/boom"))
        with pytest.raises(CircuitBreakerOpen):
            cm.get(app.url("/next"), auth=auth)
    assert prepared == []
    with ResilientCachedSession(backend="memory", **settings) as session:
        session.get(app.url("/boom"))
        with pytest.raises(CircuitBreakerOpen):
            session.get(app.url("/next"), auth=auth)
    assert prepared == [app.url("/next")]
    assert app.hits("/next") == 0


def _stale_route(app: AppServer) -> None:
    """200 with a validator (kept, stale at once with ``expire_after=0``), then 503s."""
    app.sequence("/x", [(200, {"ETag": '"v1"'}, b"old"), (503, None, b"down")])


def test_stale_if_error_serves_the_stale_answer_after_the_pipeline_gives_up(
    app: AppServer, events: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """The revalidation fails after our retries: requests-cache serves what it kept."""
    caplog.set_level(logging.WARNING, logger="requests_cache")
    _stale_route(app)
    options: dict[str, Any] = {"expire_after": 0, "stale_if_error": True, "max_retries": 2}
    with cached_session(events, **options) as session:
        assert not session.get(app.url("/x")).from_cache
        stale = session.get(app.url("/x"))
    assert (stale.status_code, stale.content, stale.from_cache) == (200, b"old", True)
    assert stale.is_expired
    assert app.hits("/x") == 4  # the first answer, then one attempt and two retries
    assert len(events.of(RetryScheduled)) == 2
    (warning,) = [r for r in caplog.records if r.name.startswith("requests_cache")]
    assert warning.levelno == logging.WARNING
    assert "using cached response" in warning.getMessage()
    assert warning.exc_info is not None
    assert isinstance(warning.exc_info[1], MaxRetriesExceeded)


def test_without_stale_if_error_the_pipeline_error_is_raised(
    app: AppServer, events: Recorder
) -> None:
    """The same, stale_if_error off: the caller gets the pipeline's MaxRetriesExceeded."""
    _stale_route(app)
    with cached_session(events, expire_after=0, max_retries=2) as session:
        session.get(app.url("/x"))
        with pytest.raises(MaxRetriesExceeded) as info:
            session.get(app.url("/x"))
    assert isinstance(info.value, requests.exceptions.RetryError)
    assert info.value.attempts == 3


def test_stale_if_error_serves_the_stale_answer_while_the_breaker_is_open(
    app: AppServer, events: Recorder
) -> None:
    """The failure opens the breaker; stale answers are served, the host is left alone."""
    _stale_route(app)
    options: dict[str, Any] = {
        "expire_after": 0,
        "stale_if_error": True,
        "max_retries": 2,
        "circuit_breaker_failure_threshold": 1,
    }
    with cached_session(events, **options) as session:
        session.get(app.url("/x"))
        for _ in range(3):
            stale = session.get(app.url("/x"))
            assert (stale.content, stale.from_cache) == (b"old", True)
    assert app.hits("/x") == 2  # the 503 opened the breaker: no retry, nothing after it
    assert [e.reason for e in events.of(Refused)] == ["breaker", "breaker"]


def test_closing_the_cached_session_closes_its_engine(app: AppServer, events: Recorder) -> None:
    """close() runs requests-cache's close and closes the mixin's engine: hits refused too."""
    app.ok("/x")
    session = cached_session(events)
    session.get(app.url("/x"))
    session.close()
    with pytest.raises(ConnectionManagerError, match="closed"):
        session.get(app.url("/x"))
    assert app.hits("/x") == 1


# -------------------------------------------------------------- 2. requests-oauthlib
@pytest.fixture
def insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let oauthlib accept http:// (it refuses it by default): the servers are loopback."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def _token(access: str, expires_in: int = 3600) -> bytes:
    return json.dumps(
        {"access_token": access, "token_type": "Bearer", "expires_in": expires_in}
    ).encode()


def _bearer_only(token: str) -> Callable[[Request], Response]:
    """A protected resource: 200 for ``Bearer <token>``, 401 for anything else."""

    def handler(request: Request) -> Response:
        if request.headers.get("Authorization") == f"Bearer {token}":
            return Response(b"secret data", status=200)
        return Response(b"unauthorized", status=401)

    return handler


@pytest.mark.usefixtures("insecure_transport")
def test_an_expired_token_is_refreshed_once_and_counts_no_failure(
    app: AppServer, events: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """Token past expiry: one refresh, token_updater once, the call succeeds, no failure."""
    caplog.set_level(logging.DEBUG, logger="requests_connection_manager")
    app.ok("/token", body=_token("fresh-access-token"))
    app.route("/api", _bearer_only("fresh-access-token"))
    updates: list[dict[str, Any]] = []
    expired = {
        "access_token": "stale-access-token",
        "refresh_token": "the-refresh-token",
        "token_type": "Bearer",
        "expires_in": -30,  # oauthlib sets expires_at in the past
    }
    session = ResilientOAuth2Session(
        client_id="cid",
        token=expired,
        auto_refresh_url=app.url("/token"),
        token_updater=updates.append,
        on_event=events,
        circuit_breaker_failure_threshold=1,
    )
    with session:
        assert session.get(app.url("/api")).content == b"secret data"
        assert session.calls == 2  # the refresh, then the call
    assert [u["access_token"] for u in updates] == ["fresh-access-token"]
    assert app.hits("/token") == 1
    assert app.hits("/api") == 1
    assert [e.status for e in events.of(AttemptFinished)] == [200, 200]
    assert events.failures() == 0
    assert events.of(BreakerStateChanged) == []
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("requests_conn"))
    assert "access-token" not in ours
    assert "the-refresh-token" not in ours


def test_a_session_class_first_hides_the_mixin() -> None:
    """OAuth2Session first: requests.Session precedes the mixin, which is never reached."""
    mro = OAuthFirstSession.__mro__
    assert mro.index(requests.Session) < mro.index(ConnectionManagerMixin)
    with pytest.raises(TypeError, match="total_timeout"):
        OAuthFirstSession(client_id="cid", total_timeout=5)
    with OAuthFirstSession(client_id="cid") as session:
        assert not isinstance(session.get_adapter("https://api.example/"), ResilientAdapter)
    with ResilientOAuth2Session(client_id="cid") as session:
        assert isinstance(session.get_adapter("https://api.example/"), ResilientAdapter)


@pytest.mark.usefixtures("insecure_transport")
def test_the_refresh_counts_against_the_calls_deadline(app: AppServer) -> None:
    """Mixin first: total_timeout=1.3 runs from before the refresh; 0.8 s + 0.8 s is late."""

    def slow(body: bytes) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            app.wait(0.8)
            return Response(body, status=200)

        return handler

    app.route("/token", slow(_token("fresh")))
    app.route("/api", slow(b"data"))
    expired = {"access_token": "old", "refresh_token": "r", "token_type": "Bearer"}
    session = ResilientOAuth2Session(
        client_id="cid",
        token={**expired, "expires_in": -30},
        auto_refresh_url=app.url("/token"),
        token_updater=lambda token: None,
        total_timeout=1.3,
        max_retries=0,
    )
    with session, pytest.raises(requests.Timeout):
        session.get(app.url("/api"))
    assert app.hits("/token") == 1


@pytest.mark.usefixtures("insecure_transport")
def test_a_401_is_the_callers_answer_not_retried_not_a_failure(
    app: AppServer, events: Recorder
) -> None:
    """The server revoked a token the client thinks valid: one 401, returned as it is."""
    app.route("/api", _bearer_only("another-token"))
    app.ok("/token", body=_token("unused"))
    token = {"access_token": "revoked", "token_type": "Bearer", "expires_in": 3600}
    session = ResilientOAuth2Session(
        client_id="cid",
        token=token,
        auto_refresh_url=app.url("/token"),
        token_updater=lambda token: None,
        on_event=events,
        circuit_breaker_failure_threshold=1,
    )
    with session:
        assert session.get(app.url("/api")).status_code == 401
    assert app.hits("/api") == 1
    assert app.hits("/token") == 0  # requests-oauthlib refreshes on expiry, not on a 401
    assert events.failures() == 0
    assert events.of(BreakerStateChanged) == []


@pytest.mark.usefixtures("insecure_transport")
def test_the_token_never_follows_a_redirect_to_another_origin(
    app: AppServer, second: AppServer
) -> None:
    """Same origin: the token goes along; another origin (127.0.0.2): it does not."""
    app.ok("/away", status=302, headers={"Location": second.url("/landing")})
    app.ok("/here", status=302, headers={"Location": app.url("/api")})
    app.route("/api", _bearer_only("the-token"))
    second.ok("/landing", body=b"landed")
    token = {"access_token": "the-token", "token_type": "Bearer", "expires_in": 3600}
    with ResilientOAuth2Session(client_id="cid", token=token) as session:
        assert session.get(app.url("/here")).content == b"secret data"
        assert session.get(app.url("/away")).content == b"landed"
    sent = {r.path: r.headers.get("Authorization") for r in app.requests + second.requests}
    assert sent == {
        "/here": "Bearer the-token",
        "/api": "Bearer the-token",
        "/away": "Bearer the-token",
        "/landing": None,
    }


@pytest.mark.usefixtures("insecure_transport")
def test_the_client_credentials_fetch_is_retried_by_the_pipeline(
    app: AppServer, events: Recorder
) -> None:
    """fetch_token: the token endpoint answers 503, then a token; one retry gets it."""
    app.sequence("/token", [(503, None, b"busy"), (200, None, _token("machine-token"))])
    app.route("/api", _bearer_only("machine-token"))
    token_post = Retry(total=2, backoff_factor=0, status_forcelist=[503], allowed_methods=["POST"])
    session = ResilientOAuth2Session(
        client=BackendApplicationClient(client_id="cid"),
        endpoint_configs={app.url("/token"): {"retry": token_post}},
        on_event=events,
    )
    with session:
        token = session.fetch_token(app.url("/token"), client_id="cid", client_secret="s3cret")
        assert token["access_token"] == "machine-token"
        assert session.get(app.url("/api")).content == b"secret data"
    grants = [r.body for r in app.requests if r.path == "/token"]
    assert len(grants) == 2
    assert grants[0] == grants[1]
    assert b"grant_type=client_credentials" in grants[0]
    assert [e.outcome for e in events.of(RetryScheduled)] == ["status 503"]


# -------------------------------------------------------------- 3. requests-toolbelt
SessionFactory = Callable[..., Any]


class MixinSession(ConnectionManagerMixin, requests.Session):
    """The mixin on a plain session, as a user's own subclass would have it."""


def _manager_session(**kwargs: Any) -> Any:
    """``cm.session``; the manager lives as long as the session (closing one closes both)."""
    return ConnectionManager(**kwargs)


SESSIONS = [
    pytest.param(_manager_session, id="cm.session"),
    pytest.param(MixinSession, id="mixin"),
]


def _upload() -> MultipartEncoder:
    """A multipart stream (no recorded start: it cannot be sent twice)."""
    return MultipartEncoder(
        fields={
            "name": "report",
            "file": ("report.bin", io.BytesIO(b"\x00\x01" * 50_000), "application/octet-stream"),
        }
    )


@pytest.mark.parametrize("make", SESSIONS)
def test_a_multipart_stream_is_sent_once_after_a_503(
    app: AppServer, make: SessionFactory, events: Recorder
) -> None:
    """Idempotency keys make POST retryable, but a stream is never sent a second time."""
    app.ok("/upload", status=503)
    upload = _upload()
    session = make(idempotency_keys=True, backoff_factor=0, on_event=events)
    with session, pytest.raises(MaxRetriesExceeded) as info:
        session.post(app.url("/upload"), data=upload, headers={"Content-Type": upload.content_type})
    assert info.value.reason == "the body is a stream that cannot be sent again"
    assert info.value.last_response is not None
    assert info.value.last_response.status_code == 503
    (sent,) = app.requests
    assert len(sent.body) == upload.len
    assert sent.body.endswith(b"--\r\n")  # the closing boundary: the whole body arrived
    assert "Idempotency-Key" in sent.headers
    assert events.of(RetryScheduled) == []


@pytest.mark.parametrize("make", SESSIONS)
def test_a_multipart_stream_is_sent_once_after_a_connection_reset(
    faults: FaultServer, make: SessionFactory
) -> None:
    """The connection is reset after the upload: the error is raised, nothing is resent."""
    faults.script([reset_after_request()])
    upload = _upload()
    session = make(idempotency_keys=True, backoff_factor=0)
    with session, pytest.raises(requests.ConnectionError) as info:
        session.post(
            faults.url("/upload"), data=upload, headers={"Content-Type": upload.content_type}
        )
    assert isinstance(info.value, ConnectionManagerError)
    assert faults.connections == 1
    assert len(faults.requests[0].body) == upload.len


@pytest.mark.parametrize("make", SESSIONS)
@pytest.mark.parametrize("kind", ["file", "bytesio"])
def test_a_rewindable_body_is_replayed_whole(
    app: AppServer, make: SessionFactory, kind: str, tmp_path: Path
) -> None:
    """An open file or a BytesIO starts again: the retry carries the same full body and key."""
    payload = bytes(range(256)) * 400
    app.fail_then_ok("/upload", failures=1)
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    with make(idempotency_keys=True, backoff_factor=0) as session:
        if kind == "file":
            with path.open("rb") as body:
                response = session.post(app.url("/upload"), data=body)
        else:
            response = session.post(app.url("/upload"), data=io.BytesIO(payload))
    assert response.status_code == 200
    first, second = app.requests
    assert first.body == second.body == payload
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


# ----------------------------------------------------------- 4. the adapter mounted alone
Mounted = Callable[..., "tuple[ConnectionManager, requests.Session]"]


@pytest.fixture
def mounted() -> Iterator[Mounted]:
    """A manager, and a plain session of the user's own with only ``cm.adapter`` mounted."""
    made: list[tuple[ConnectionManager, requests.Session]] = []

    def make(**kwargs: Any) -> tuple[ConnectionManager, requests.Session]:
        cm = ConnectionManager(**kwargs)
        session = requests.Session()
        session.mount("http://", cm.adapter)
        made.append((cm, session))
        return cm, session

    yield make
    for cm, session in made:
        session.close()
        cm.close()


def test_the_adapter_alone_retries_and_rate_limits(app: AppServer, mounted: Mounted) -> None:
    """A session of one's own with cm.adapter: retries and the limiter apply per request."""
    app.fail_then_ok("/x", failures=1)
    cm, session = mounted(backoff_factor=0, rate_limit_requests=2, rate_limit_max_wait=0)
    assert session.get(app.url("/x")).status_code == 200
    with pytest.raises(RateLimitExceeded):
        session.get(app.url("/x"))  # the retry took the second permit
    assert app.hits("/x") == 2
    host = cm.get_stats()["hosts"][f"http://127.0.0.1:{app.port}"]
    assert (host["requests"], host["attempts"], host["retries"]) == (2, 2, 1)


def test_the_adapter_alone_breaks_the_circuit_after_preparing(
    app: AppServer, mounted: Mounted
) -> None:
    """The breaker opens and refuses with no traffic, but only once requests has prepared."""
    app.ok("/boom", status=500)
    prepared: list[str] = []

    def auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
        prepared.append(request.url or "")
        return request

    cm, session = mounted(max_retries=0, circuit_breaker_failure_threshold=1)
    assert session.get(app.url("/boom")).status_code == 500
    with pytest.raises(CircuitBreakerOpen):
        session.get(app.url("/next"), auth=auth)
    assert prepared == [app.url("/next")]  # cm.session refuses before this (see above)
    assert app.hits("/next") == 0
    assert cm.get_stats()["hosts"][f"http://127.0.0.1:{app.port}"]["rejected_open"] == 1


def test_the_adapter_alone_sends_no_credentials_and_runs_no_hooks(
    app: AppServer, mounted: Mounted
) -> None:
    """Credentials and hooks belong to the manager's session, not to its adapter."""
    app.ok("/x")
    called: list[str] = []
    cm, session = mounted(api_key="the-key")
    cm.register_pre_request_hook(lambda context: called.append(context.url))
    session.get(app.url("/x"))
    cm.get(app.url("/x"))
    own, managers = app.requests
    assert "X-Api-Key" not in own.headers
    assert managers.headers["X-Api-Key"] == "the-key"
    assert called == [app.url("/x")]  # the manager's call only


def test_the_adapter_alone_gives_each_redirect_hop_its_own_deadline(
    app: AppServer, mounted: Mounted
) -> None:
    """total_timeout=1.3 and two hops of 0.8 s: too long for one call, fine hop by hop."""

    def slow_redirect(request: Request) -> Response:
        app.wait(0.8)
        return Response(b"", status=302, headers={"Location": app.url("/end")})

    def slow_end(request: Request) -> Response:
        app.wait(0.8)
        return Response(b"done", status=200)

    app.route("/start", slow_redirect)
    app.route("/end", slow_end)
    cm, session = mounted(total_timeout=1.3, max_retries=0)
    assert session.get(app.url("/start")).content == b"done"
    with pytest.raises(requests.Timeout):
        cm.get(app.url("/start"))


# ------------------------------------------------------- 5. two libraries that both retry
class SDKSession(requests.Session):
    """An SDK's session: mounts its own retrying adapter when it is built."""

    def __init__(self) -> None:
        super().__init__()
        retry = Retry(total=3, backoff_factor=0, status_forcelist=[503])
        self.mount("http://", HTTPAdapter(max_retries=retry))


class ResilientSDKSession(ConnectionManagerMixin, SDKSession):
    """The SDK's session with the pipeline."""


def test_our_adapter_replaces_an_sdk_adapter_mounted_when_built(
    app: AppServer, events: Recorder
) -> None:
    """The mixin mounts after the SDK's __init__: one retry layer, ours (max_retries=0: none)."""
    app.ok("/x", status=503)
    with SDKSession() as plain, pytest.raises(requests.exceptions.RetryError):
        plain.get(app.url("/x"))
    assert app.hits("/x") == 4  # the SDK's own layer, alone
    with ResilientSDKSession(max_retries=0, on_event=events) as session:
        assert session.get(app.url("/x")).status_code == 503
    assert app.hits("/x") == 5
    assert len(events.of(AttemptFinished)) == 1


def test_a_more_specific_mount_bypasses_the_pipeline(app: AppServer, events: Recorder) -> None:
    """An adapter mounted for one origin wins over ours (longest prefix): no pipeline there."""
    app.fail_then_ok("/x", failures=2)
    with MixinSession(on_event=events) as session:
        retry = Retry(total=3, backoff_factor=0, status_forcelist=[503])
        session.mount(app.url("/"), HTTPAdapter(max_retries=retry))
        assert session.get(app.url("/x")).status_code == 200
    assert app.hits("/x") == 3
    assert events.events == []
