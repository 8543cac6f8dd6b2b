"""Credentials go only where they belong: the origin asked for, or the hosts a pattern matches."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests
from werkzeug import Request, Response

from requests_connection_manager import ConnectionManager
from tests.servers import AppServer

pytestmark = pytest.mark.timeout(30)

SECRET_HEADERS = ("X-Api-Key", "Authorization", "X-Service-Key")


@pytest.fixture
def other() -> Iterator[AppServer]:
    """A second origin: a server on 127.0.0.2."""
    with AppServer("127.0.0.2") as server:
        yield server


def _echo(server: AppServer, path: str) -> None:
    """Answer 200 on ``path``; the request's headers are recorded by the server."""
    server.ok(path, b"seen")


def _redirect(server: AppServer, path: str, location: str, status: int = 302) -> None:
    def handler(request: Request) -> Response:
        return Response(b"", status=status, headers={"Location": location})

    server.route(path, handler)


def _last_headers(server: AppServer, path: str) -> dict[str, str]:
    seen = [r for r in server.requests if r.path == path]
    assert seen, f"{path} was never requested"
    return seen[-1].headers


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ------------------------------------------------------------------- the first hop
def test_global_api_key_and_bearer_reach_the_origin_asked_for(app: AppServer) -> None:
    """Global credentials are sent on the call's own origin."""
    _echo(app, "/me")
    with ConnectionManager(api_key="k-123", bearer_token="t-456") as cm:
        assert cm.get(app.url("/me")).status_code == 200
    headers = _last_headers(app, "/me")
    assert headers["X-Api-Key"] == "k-123"
    assert headers["Authorization"] == "Bearer t-456"


def test_basic_auth_beats_oauth2_beats_bearer_as_in_1_0(app: AppServer) -> None:
    """One Authorization header; basic > oauth2 > bearer within one level."""
    _echo(app, "/me")
    with ConnectionManager(bearer_token="b", oauth2_token="o") as cm:
        cm.get(app.url("/me"))
        assert _last_headers(app, "/me")["Authorization"] == "Bearer o"
        cm.set_basic_auth("ann", "pw")
        cm.get(app.url("/me"))
        assert _last_headers(app, "/me")["Authorization"] == _basic("ann", "pw")


def test_callers_own_header_and_auth_win(app: AppServer) -> None:
    """A per-call header or auth= is not overwritten by configured credentials."""
    _echo(app, "/me")
    with ConnectionManager(api_key="configured", bearer_token="configured") as cm:
        cm.get(app.url("/me"), headers={"X-API-Key": "mine"})
        assert _last_headers(app, "/me")["X-Api-Key"] == "mine"
        cm.get(app.url("/me"), auth=("u", "p"))
        assert _last_headers(app, "/me")["Authorization"] == _basic("u", "p")


def test_endpoint_credentials_only_for_matching_hosts(app: AppServer, other: AppServer) -> None:
    """An endpoint's key goes to the host its pattern names and to no other."""
    _echo(app, "/me")
    _echo(other, "/me")
    with ConnectionManager() as cm:
        cm.set_endpoint_auth("127.0.0.2", "api_key", api_key="svc", header_name="X-Service-Key")
        cm.get(other.url("/me"))
        cm.get(app.url("/me"))
    assert _last_headers(other, "/me")["X-Service-Key"] == "svc"
    assert "X-Service-Key" not in _last_headers(app, "/me")


def test_endpoint_authorization_replaces_global_authorization(
    app: AppServer, other: AppServer
) -> None:
    """An endpoint's bearer token replaces a global basic auth for its hosts only."""
    _echo(app, "/me")
    _echo(other, "/me")
    with ConnectionManager(basic_auth=("ann", "pw"), api_key="global") as cm:
        cm.set_endpoint_auth("127.0.0.2", "bearer", token="svc-token")
        cm.get(other.url("/me"))
        cm.get(app.url("/me"))
    assert _last_headers(other, "/me")["Authorization"] == "Bearer svc-token"
    assert _last_headers(other, "/me")["X-Api-Key"] == "global"  # other kinds still inherit
    assert _last_headers(app, "/me")["Authorization"] == _basic("ann", "pw")


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.test/?q=api.example.com",
        "http://api.example.com.evil.test/",
        "http://evil.test/api.example.com/v2",
        "http://api.example.com@evil.test/",
        "http://xapi.example.com/",
        "http://evil.test/#api.example.com",
    ],
)
def test_look_alike_urls_get_no_endpoint_credentials(url: str) -> None:
    """A pattern matches the host, never a substring of the URL (1.0.0 leaked here)."""
    with ConnectionManager() as cm:
        cm.set_endpoint_auth("api.example.com", "api_key", api_key="secret")
        cm.set_endpoint_auth("api.example.com", "bearer", token="secret")
        prepared = cm.session.prepare_request(requests.Request("GET", url))
        assert "X-API-Key" not in prepared.headers
        assert "Authorization" not in prepared.headers
        real = cm.session.prepare_request(requests.Request("GET", "https://api.example.com/x"))
        assert real.headers["X-API-Key"] == "secret"
        assert real.headers["Authorization"] == "Bearer secret"


# -------------------------------------------------------------------- redirects
@pytest.mark.parametrize(
    "settings",
    [
        {"api_key": "k-123"},
        {"api_key": "k-123", "api_key_header": "X-Service-Key"},
        {"bearer_token": "t-456"},
        {"oauth2_token": "t-789"},
        {"basic_auth": ("ann", "pw")},
    ],
)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_no_global_credential_follows_a_redirect_to_another_origin(
    app: AppServer, other: AppServer, settings: dict[str, object], status: int
) -> None:
    """Requests strips only Authorization; an API key header must not travel either."""
    _echo(other, "/landing")
    _redirect(app, "/go", other.url("/landing"), status)
    with ConnectionManager(**settings) as cm:  # type: ignore[arg-type]
        response = cm.get(app.url("/go"))
    assert response.status_code == 200
    assert response.history[0].status_code == status
    first = _last_headers(app, "/go")
    assert any(h in first for h in SECRET_HEADERS), "the origin must get the credential"
    landed = _last_headers(other, "/landing")
    assert not [h for h in SECRET_HEADERS if h in landed], landed


def test_credentials_stay_on_a_same_origin_redirect(app: AppServer) -> None:
    """A redirect within the origin keeps the credentials."""
    _echo(app, "/landing")
    _redirect(app, "/go", "/landing")
    with ConnectionManager(api_key="k-123", bearer_token="t") as cm:
        cm.get(app.url("/go"))
    landed = _last_headers(app, "/landing")
    assert landed["X-Api-Key"] == "k-123"
    assert landed["Authorization"] == "Bearer t"


def test_credentials_come_back_when_a_redirect_returns_to_the_origin(
    app: AppServer, other: AppServer
) -> None:
    """Origin -> other -> origin: none on the other host, all again at home."""
    _echo(app, "/home")
    _redirect(app, "/go", other.url("/bounce"))
    _redirect(other, "/bounce", app.url("/home"))
    with ConnectionManager(api_key="k-123") as cm:
        cm.get(app.url("/go"))
    assert "X-Api-Key" not in _last_headers(other, "/bounce")
    assert _last_headers(app, "/home")["X-Api-Key"] == "k-123"


def test_endpoint_credentials_are_sent_to_a_matching_redirect_target(
    app: AppServer, other: AppServer
) -> None:
    """A redirect into an endpoint's hosts gets that endpoint's credentials, not the global ones."""
    _echo(other, "/landing")
    _redirect(app, "/go", other.url("/landing"))
    with ConnectionManager(api_key="global-key") as cm:
        cm.set_endpoint_auth("127.0.0.2", "bearer", token="svc-token")
        cm.get(app.url("/go"))
    landed = _last_headers(other, "/landing")
    assert landed["Authorization"] == "Bearer svc-token"
    assert "X-Api-Key" not in landed


def test_manual_resolve_redirects_strips_too(app: AppServer, other: AppServer) -> None:
    """Requests' own resolve_redirects, driven by hand, strips the key on another origin."""
    _echo(other, "/landing")
    _redirect(app, "/go", other.url("/landing"))
    with ConnectionManager(api_key="k-123") as cm:
        session = cm.session
        prepared = session.prepare_request(requests.Request("GET", app.url("/go")))
        first = session.send(prepared, allow_redirects=False)
        hops = list(session.resolve_redirects(first, prepared))
    assert hops[-1].status_code == 200
    assert "X-Api-Key" not in _last_headers(other, "/landing")


# ------------------------------------------------------------------------ setters
def test_setters_and_clear_auth_change_what_is_sent(app: AppServer) -> None:
    """set_* take effect on the next request; clear_auth removes global and endpoint ones."""
    _echo(app, "/me")
    with ConnectionManager() as cm:
        cm.get(app.url("/me"))
        assert "Authorization" not in _last_headers(app, "/me")
        cm.set_api_key("new-key", "X-Other-Key")
        cm.set_oauth2_token("oa")
        cm.get(app.url("/me"))
        headers = _last_headers(app, "/me")
        assert headers["X-Other-Key"] == "new-key"
        assert headers["Authorization"] == "Bearer oa"
        cm.set_endpoint_auth("127.0.0.1", "basic", username="ep", password="pw")
        cm.get(app.url("/me"))
        assert _last_headers(app, "/me")["Authorization"] == _basic("ep", "pw")
        cm.clear_auth("127.0.0.1")
        cm.get(app.url("/me"))
        assert _last_headers(app, "/me")["Authorization"] == "Bearer oa"
        cm.clear_auth()
        cm.get(app.url("/me"))
        headers = _last_headers(app, "/me")
        assert "Authorization" not in headers
        assert "X-Other-Key" not in headers
        assert cm.get_endpoint_configs() == {"127.0.0.1": {}}


def test_set_endpoint_auth_refuses_unknown_types_and_missing_values() -> None:
    """An unknown auth_type is a ValueError; a missing keyword a TypeError naming it."""
    with ConnectionManager() as cm:
        with pytest.raises(ValueError, match="auth_type"):
            cm.set_endpoint_auth("api.example.com", "digest", token="x")
        with pytest.raises(TypeError, match="token="):
            cm.set_endpoint_auth("api.example.com", "bearer")
        with pytest.raises(TypeError, match="username="):
            cm.set_endpoint_auth("api.example.com", "basic", password="x")
        assert cm.get_endpoint_configs() == {}


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"api_key": ""}, "api_key"),
        ({"api_key": "a\r\nInjected: 1"}, "api_key"),
        ({"bearer_token": 123}, "bearer_token"),
        ({"api_key_header": "Bad Header"}, "api_key_header"),
        ({"basic_auth": ("only-one",)}, "basic_auth"),
        ({"basic_auth": ("a:b", "pw")}, "basic_auth"),
    ],
)
def test_bad_credentials_are_refused_naming_the_parameter(
    kwargs: dict[str, object], name: str
) -> None:
    """Header injection and malformed credentials fail at construction."""
    with pytest.raises((TypeError, ValueError), match=name):
        ConnectionManager(**kwargs)  # type: ignore[arg-type]


def test_secrets_stay_out_of_repr_and_stats() -> None:
    """Neither repr(manager), get_stats() nor the credentials' repr shows a secret."""
    with ConnectionManager(api_key="s3cr3t-key", basic_auth=("ann", "s3cr3t-pw")) as cm:
        cm.set_endpoint_auth("api.example.com", "bearer", token="s3cr3t-token")
        text = repr(cm) + repr(cm.get_stats()) + repr(cm._engine.settings.credentials)
    assert "s3cr3t" not in text
