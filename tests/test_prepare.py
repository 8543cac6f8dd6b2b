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
    pytest.param(
        CaseInsensitiveDict({"A": None, "b": "1"}),
        CaseInsensitiveDict({"a": "2", "B": "3", "C": None}),
        id="ci-none-removes",
    ),
    pytest.param({b"Bytes": "1"}, CaseInsensitiveDict({"bytes": "2"}), id="bytes-keys"),
    pytest.param({1: "1"}, {"b": "1"}, id="int-key"),
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
    except (ValueError, AttributeError) as exc:
        with pytest.raises(type(exc), match=str(exc)):
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


HEADER_CASES = [
    pytest.param({"X-A": "1", "x-a": "2"}, id="same-name-two-spellings"),
    pytest.param({"X-Bytes": b"v", "X-Str": "s"}, id="bytes-value"),
    pytest.param({b"X-Bytes-Name": "v"}, id="bytes-name"),
    pytest.param({"X-Bad": "a\r\nInjected: 1"}, id="crlf-value"),
    pytest.param({"X-Ok": "1", "X-Bad": " leading"}, id="leading-space-after-valid"),
    pytest.param({"Bad Name": "1"}, id="space-in-name"),
    pytest.param({"X-Int": 1}, id="int-value"),
    pytest.param({"X-None": None, "X-B": "b"}, id="none-dropped"),
    pytest.param({"X-Long": "v" * 5000}, id="long-value"),
    pytest.param({"User-Agent": "mine", "ACCEPT": "text/plain"}, id="overrides-session"),
]


class _Text(str):
    """A str subclass: not remembered as valid, checked as requests checks it."""


@pytest.mark.parametrize("headers", HEADER_CASES)
def test_headers_prepared_and_refused_as_requests_does(headers: dict[Any, Any]) -> None:
    """The same headers in the same order, or the same exception, every time (memo or not)."""
    with ConnectionManager() as cm, requests.Session() as plain:
        for _ in range(3):
            theirs = _outcome(plain, headers)
            ours = _outcome(cm.session, headers)
            assert ours == theirs


def _outcome(session: requests.Session, headers: dict[Any, Any]) -> Any:
    try:
        prepared = session.prepare_request(requests.Request("GET", URL, headers=headers))
    except Exception as exc:  # the class and message are the answer compared
        return (type(exc), str(exc))
    return list(prepared.headers.items()), type(prepared.headers)


def test_a_str_subclass_header_is_checked_as_requests_does() -> None:
    with ConnectionManager() as cm, requests.Session() as plain:
        good, bad = {"X-Sub": _Text("fine")}, {"X-Sub": _Text("bad\nvalue")}
        for _ in range(2):
            assert _outcome(cm.session, good) == _outcome(plain, good)
            assert _outcome(cm.session, bad) == _outcome(plain, bad)
        assert _outcome(cm.session, bad)[0] is requests.exceptions.InvalidHeader


def test_the_header_memo_holds_only_the_sessions_own_plain_headers() -> None:
    """Per-call headers and credentials are checked every call and never remembered."""
    from requests_connection_manager import _prepare

    with ConnectionManager(api_key="k-secret-1", api_key_header="X-Api-Key") as cm:
        session = cm.session
        session.headers["X-Team"] = "blue"
        session.headers["Authorization"] = "Bearer session-secret"
        session.headers["X-Long"] = "v" * 600
        session.headers["x-api-key"] = "k-secret-2"  # the manager's API-key header name
        for index in range(3000):
            session.prepare_request(
                requests.Request("GET", URL, headers={"X-N": str(index), "Cookie": "c=1"})
            )
        valid = session._rcm_prepare_memo.valid_headers
        assert ("X-Team", "blue") in valid
        assert ("User-Agent", session.headers["User-Agent"]) in valid
        names = {name.lower() for name, _ in valid}
        assert not names & {"x-n", "authorization", "cookie", "x-api-key", "x-long"}
        assert 0 < len(valid) <= _prepare.MEMO_SIZE


def test_the_memos_are_forgotten_when_the_session_closes() -> None:
    cm = ConnectionManager()
    cm.session.prepare_request(requests.Request("GET", "http://user:pw@api.example.com/"))
    memo = cm.session._rcm_prepare_memo
    assert memo.urls
    assert memo.valid_headers
    cm.close()
    assert not memo.urls
    assert not memo.valid_headers


@pytest.mark.parametrize(
    "url",
    [
        "http://@api.example.com/",
        "http://:@api.example.com/",
        "http://u@api.example.com/",
        "http://:p@api.example.com/",
        "http://u%40x:p%3A@api.example.com/",
        "http://api.example.com/@not-userinfo",
    ],
)
@pytest.mark.parametrize("params", [None, {"q": "1"}])
def test_credentials_in_the_url_are_used_as_requests_uses_them(url: str, params: Any) -> None:
    """Without ``auth=``, credentials in the URL make the Authorization header requests makes."""
    with ConnectionManager() as cm, requests.Session() as plain:
        cm.session.trust_env = plain.trust_env = False  # no .netrc in the comparison
        for _ in range(2):
            ours = cm.session.prepare_request(requests.Request("GET", url, params=params))
            theirs = plain.prepare_request(requests.Request("GET", url, params=params))
            assert ours.headers.get("Authorization") == theirs.headers.get("Authorization")
            assert ours.url == theirs.url


@pytest.mark.parametrize("step", ["prepare_headers", "prepare_auth"])
def test_a_patched_header_or_auth_step_is_run(step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    original = getattr(requests.PreparedRequest, step)
    seen: list[str] = []

    def patched(self: requests.PreparedRequest, *args: Any) -> None:
        seen.append(step)
        original(self, *args)

    with ConnectionManager() as cm:
        cm.session.prepare_request(requests.Request("GET", URL))  # remembered
        monkeypatch.setattr(requests.PreparedRequest, step, patched)
        prepared = cm.session.prepare_request(requests.Request("GET", URL))
    assert seen == [step]
    assert prepared.url == URL


def test_originals_tell_a_replaced_or_deleted_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests.models

    from requests_connection_manager._originals import Originals

    several = Originals(
        (requests.models, "check_header_validity", "to_native_string"),
        (requests.PreparedRequest, "prepare_url"),
    )
    one = Originals((requests.PreparedRequest, "path_url"))
    assert several.intact()
    assert one.intact()
    with monkeypatch.context() as patch:
        patch.setattr(requests.models, "to_native_string", lambda *args: "x")
        assert not several.intact()
    assert several.intact()  # put back
    with monkeypatch.context() as patch:
        patch.delattr(requests.models, "check_header_validity")
        assert not several.intact()
    with monkeypatch.context() as patch:
        patch.setattr(requests.PreparedRequest, "path_url", property(lambda self: "/x"))
        assert not one.intact()
    assert one.intact()
