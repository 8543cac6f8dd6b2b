"""The session prepares a request exactly as requests does (``_prepare``: cheaper merges).

Each case prepares the same ``requests.Request`` with ``cm.session`` and with a plain
``requests.Session`` carrying the same settings, and compares everything the prepared
request carries. ``merge_setting`` is compared with requests' own on every kind of value.
"""

from __future__ import annotations

from collections import OrderedDict
from http.cookiejar import CookieJar
from typing import Any

import pytest
import requests
import requests.sessions
from requests.cookies import cookiejar_from_dict
from requests.structures import CaseInsensitiveDict

from requests_connection_manager import ConnectionManager, ConnectionManagerMixin
from requests_connection_manager._prepare import merge_setting

pytestmark = pytest.mark.timeout(30)

URL = "http://api.example.com/path?a=1"
#: requests before 2.32.4 looked .netrc up by ``netloc.split(":")[0]`` (CVE-2024-47081).
_NETLOC_NETRC = tuple(int(p) for p in requests.__version__.split(".")[:3]) < (2, 32, 4)


class _ItemsDict(dict):  # type: ignore[type-arg]
    """A dict subclass whose items() differ from its contents: requests' merge is used."""

    def items(self) -> Any:
        return [("from-items", "yes")]


SETTINGS = [
    pytest.param(None, None, id="none-none"),
    pytest.param({"a": "1"}, None, id="call-only"),
    pytest.param(None, {"a": "1"}, id="session-only"),
    pytest.param({"a": "1", "b": None}, {"b": "2", "c": "3"}, id="none-removes"),
    pytest.param(OrderedDict(x="1"), {"x": "2"}, id="ordered"),
    pytest.param(CaseInsensitiveDict({"X": "1"}), CaseInsensitiveDict({"x": "2"}), id="ci"),
    pytest.param([("a", "1"), ("a", "2")], {"b": "1"}, id="list-call"),
    pytest.param({"a": "1"}, [("b", "1")], id="list-session"),
    pytest.param("raw=string", {"b": "1"}, id="string"),
    pytest.param(b"raw=bytes", {"b": "1"}, id="bytes"),
    pytest.param(_ItemsDict(k="v"), {"b": "1"}, id="items-subclass"),
    pytest.param({}, {}, id="empty"),
    pytest.param(True, False, id="not-mappings"),
]


@pytest.mark.parametrize(("call", "session"), SETTINGS)
@pytest.mark.parametrize("dict_class", [OrderedDict, CaseInsensitiveDict])
def test_merge_setting_equals_requests(call: Any, session: Any, dict_class: type) -> None:
    try:
        theirs = requests.sessions.merge_setting(  # type: ignore[no-untyped-call]
            call, session, dict_class=dict_class
        )
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc)):
            merge_setting(call, session, dict_class=dict_class)
        return
    ours = merge_setting(call, session, dict_class=dict_class)
    assert type(ours) is type(theirs)
    if isinstance(theirs, (dict, CaseInsensitiveDict)):
        assert list(ours.items()) == list(theirs.items())
    else:
        assert ours == theirs


REQUESTS = [
    pytest.param({}, id="plain"),
    pytest.param({"headers": {"X-A": "1", "Accept": None}}, id="headers-none-removes"),
    pytest.param({"headers": CaseInsensitiveDict({"user-agent": "me"})}, id="headers-ci"),
    pytest.param({"params": {"b": ["1", "2"], "c": None}}, id="params"),
    pytest.param({"params": [("z", "1"), ("z", "2")]}, id="params-list"),
    pytest.param({"params": "q=raw"}, id="params-string"),
    pytest.param({"data": {"f": "v"}}, id="form"),
    pytest.param({"json": {"k": [1, 2]}}, id="json"),
    pytest.param({"cookies": {"c1": "v1"}}, id="cookies-dict"),
    pytest.param(
        {"cookies": cookiejar_from_dict({"c2": "v2"})},  # type: ignore[no-untyped-call]
        id="cookies-jar",
    ),
    pytest.param({"cookies": CookieJar()}, id="cookies-empty-jar"),
    pytest.param({"auth": ("user", "pass")}, id="auth"),
    pytest.param({"url": "http://u:p@api.example.com/"}, id="url-credentials"),
    pytest.param({"hooks": {"response": [lambda r, **kw: r]}}, id="hooks"),
    pytest.param({"method": "post", "files": {"f": ("a.txt", b"x")}}, id="files"),
]
SESSIONS = [
    pytest.param({}, id="default-session"),
    pytest.param(
        {
            "headers": {"X-Session": "s", "Accept": "text/plain"},
            "params": {"s": "1"},
            "cookies": {"sc": "1"},
            "auth": ("su", "sp"),
        },
        id="session-settings",
    ),
    pytest.param({"trust_env": False}, id="no-trust-env"),
]


def _prepared_fields(prepared: requests.PreparedRequest) -> dict[str, Any]:
    body: Any = prepared.body
    if isinstance(body, bytes) and b"--" in body[:4]:  # multipart: the boundary is random
        body = len(body)
    headers = dict(prepared.headers)
    if "Content-Type" in headers and "boundary=" in headers["Content-Type"]:
        headers["Content-Type"] = headers["Content-Type"].split("boundary=")[0]
    return {
        "method": prepared.method,
        "url": prepared.url,
        "headers": headers,
        "body": body,
        "cookies": sorted((c.name, c.value) for c in prepared._cookies),  # type: ignore[attr-defined]
        "hooks": {k: len(v) for k, v in prepared.hooks.items()},
    }


def _session_with(settings: dict[str, Any], session: requests.Session) -> requests.Session:
    for name, value in settings.items():
        if name == "cookies":
            session.cookies.update(value)
        elif name == "headers":
            session.headers.update(value)
        else:
            setattr(session, name, value)
    return session


@pytest.mark.parametrize("call", REQUESTS)
@pytest.mark.parametrize("settings", SESSIONS)
def test_prepared_as_requests_prepares(
    call: dict[str, Any], settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.example.com login nuser password npass\n")
    monkeypatch.setenv("NETRC", str(netrc))
    arguments = {"method": "get", "url": URL, **call}
    with ConnectionManager() as cm, requests.Session() as plain:
        ours_session = _session_with(settings, cm.session)
        theirs_session = _session_with(settings, plain)
        for _ in range(2):  # the second from what the environment remembered
            ours = _prepared_fields(ours_session.prepare_request(requests.Request(**arguments)))
            theirs = _prepared_fields(theirs_session.prepare_request(requests.Request(**arguments)))
            if _NETLOC_NETRC and "@" in arguments["url"] and theirs_session.trust_env:
                # requests < 2.32.4 looked .netrc up by the user-info (CVE-2024-47081); the
                # manager asks for the host's entry, as requests does since
                fixed = {**arguments, "url": "http://" + arguments["url"].split("@", 1)[1]}
                reference = theirs_session.prepare_request(requests.Request(**fixed))
                if "Authorization" in reference.headers:
                    theirs["headers"]["Authorization"] = reference.headers["Authorization"]
            assert ours == theirs


def test_a_session_class_that_prepares_its_own_way_is_run() -> None:
    """A class after the mixin overriding prepare_request runs (not the copy of requests')."""

    class Marking(requests.Session):
        def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
            prepared = super().prepare_request(request)
            prepared.headers["X-Marked"] = "1"
            return prepared

    class Managed(ConnectionManagerMixin, Marking):
        pass

    with Managed() as session:
        prepared = session.prepare_request(requests.Request("GET", URL))
    assert prepared.headers["X-Marked"] == "1"


def test_prepare_request_patched_on_requests_is_run(monkeypatch: pytest.MonkeyPatch) -> None:
    original = requests.Session.prepare_request

    def patched(self: requests.Session, request: requests.Request) -> requests.PreparedRequest:
        prepared = original(self, request)
        prepared.headers["X-Patched"] = "1"
        return prepared

    monkeypatch.setattr(requests.Session, "prepare_request", patched)
    with ConnectionManager() as cm:
        prepared = cm.session.prepare_request(requests.Request("GET", URL))
    assert prepared.headers["X-Patched"] == "1"


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com/a b?x=1 2",
        "http://bücher.example/ä",
        "HTTP://API.example.com:80/%7euser",
        "http://[::1]:8080/x",
        "mailto:someone@example.com",
    ],
)
def test_a_url_prepared_again_and_with_params(url: str) -> None:
    """The remembered URL is requests' answer; params still change it; each time equal."""
    with ConnectionManager() as cm, requests.Session() as plain:
        for params in (None, {}, {"p": "1"}, None, "", {"p": "2"}):
            ours = cm.session.prepare_request(requests.Request("GET", url, params=params))
            theirs = plain.prepare_request(requests.Request("GET", url, params=params))
            assert ours.url == theirs.url


@pytest.mark.parametrize(
    "url", ["api.example.com/no-scheme", "http://", "http://exa mple.com:port/"]
)
def test_an_invalid_url_fails_as_in_requests_every_time(url: str) -> None:
    with requests.Session() as plain, pytest.raises(Exception) as theirs:
        plain.prepare_request(requests.Request("GET", url))
    with ConnectionManager() as cm:
        for _ in range(2):
            with pytest.raises(type(theirs.value)):
                cm.session.prepare_request(requests.Request("GET", url))


def test_a_patched_prepare_step_is_run(monkeypatch: pytest.MonkeyPatch) -> None:
    original = requests.PreparedRequest.prepare_url
    seen: list[str] = []

    def patched(self: requests.PreparedRequest, url: Any, params: Any) -> None:
        seen.append(url)
        original(self, url, params)

    with ConnectionManager() as cm:
        cm.session.prepare_request(requests.Request("GET", URL))  # remembered
        monkeypatch.setattr(requests.PreparedRequest, "prepare_url", patched)
        prepared = cm.session.prepare_request(requests.Request("GET", URL))
    assert seen == [URL]
    assert prepared.url == URL
