"""The transport builds each ``requests.Response`` exactly as requests does (``_response``).

Every case is a response written byte for byte by the socket-level fault server: the same
urllib3 response is handed to requests' ``HTTPAdapter.build_response`` and to ours, and
everything the two ``Response`` objects carry is compared; then whole calls through a plain
``requests.Session`` and through a manager are compared, cookies in the session's jar
included.
"""

from __future__ import annotations

import http.client
import warnings
from typing import Any

import pytest
import requests
import urllib3
from requests.adapters import HTTPAdapter

from requests_connection_manager import ConnectionManager
from requests_connection_manager._response import extract_cookies
from tests import faults as f
from tests.faults import FaultServer

pytestmark = pytest.mark.timeout(30)

_REQUESTS_WAY = HTTPAdapter.build_response


def _answer(*headers: str, body: bytes = b"ok", status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


HEADS = [
    pytest.param(_answer(), id="bare"),
    pytest.param(_answer("Server: t", "X-MiXeD-Case: v", "content-type: text/plain"), id="cases"),
    pytest.param(_answer("X-Dup: 1", "x-dup: 2", "X-DUP: 3"), id="repeated-in-three-spellings"),
    pytest.param(
        _answer("Set-Cookie: a=1; Path=/", "set-cookie: b=2; Max-Age=60", "X-After: 1"),
        id="cookies",
    ),
    pytest.param(_answer("SET-COOKIE: c=3"), id="cookie-upper-case"),
    pytest.param(_answer('Set-Cookie2: d=4; Version="1"'), id="set-cookie2"),
    pytest.param(_answer("Set-Cookie: e=5; Domain=other.example"), id="cookie-another-domain"),
    pytest.param(_answer("Set-Cookie: "), id="empty-cookie"),
    pytest.param(_answer("Content-Type: text/html"), id="html-no-charset"),
    pytest.param(_answer("Content-Type: application/json"), id="json"),
    pytest.param(_answer("Content-Type: text/plain; charset=UTF-16"), id="charset"),
    pytest.param(_answer("X-Empty:", "X-Fold: a", " b"), id="empty-and-folded"),
    pytest.param(_answer("X-Latin: caf\u00e9"), id="latin-1-value"),
    pytest.param(_answer("Location: /next", status="302 Found"), id="redirect-head"),
    pytest.param(_answer(status="599 Whatever"), id="odd-status"),
]


def _fields(response: requests.Response) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "headers": list(response.headers.items()),
        "headers_type": type(response.headers),
        "lowered": sorted(response.headers.lower_items()),
        "encoding": response.encoding,
        "reason": response.reason,
        "url": response.url,
        "cookies": _cookies(response.cookies),
        "request": response.request,
        "raw": response.raw,
        "connection": response.connection,  # type: ignore[attr-defined]
        "history": response.history,
    }


def _cookies(jar: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (c.name, c.value, c.domain, c.path, c.secure, c.expires is None, c.version) for c in jar
    )


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("url_type", [str, bytes])
def test_the_same_response_as_requests_builds(
    head: bytes, url_type: type, faults: FaultServer
) -> None:
    faults.script([f.raw(head)])
    url = faults.url("/path")
    with ConnectionManager() as cm, urllib3.PoolManager() as pool:
        raw = pool.request("GET", url, preload_content=False, retries=False, redirect=False)
        request = requests.Request("GET", url).prepare()
        if url_type is bytes:
            request.url = url.encode()  # type: ignore[assignment]
        # What makes the shortcuts apply (the cases test them, not requests' fallback).
        assert type(raw.headers) is urllib3.HTTPHeaderDict
        assert type(raw._original_response.msg) is http.client.HTTPMessage
        ours = _built(cm.adapter.build_response, request, raw)
        theirs = _built(lambda *a: _REQUESTS_WAY(cm.adapter, *a), request, raw)
        assert ours == theirs
        assert raw.read() == b"ok"


def _built(build: Any, request: Any, raw: Any) -> Any:
    """The response's fields and the warnings, or the exception (a bytes URL's cookies)."""
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")  # http.cookiejar warns of a bytes URL's cookies
        try:
            fields = _fields(build(request, raw))
        except Exception as exc:  # the class and message are the answer compared
            fields = {"error": (type(exc), str(exc))}
    return fields, [w.category for w in warned]


@pytest.mark.parametrize("head", HEADS)
def test_a_call_returns_what_a_plain_session_returns(head: bytes, faults: FaultServer) -> None:
    """Whole calls: the response and the cookies the session keeps, as plain requests."""
    faults.script([f.raw(head), f.raw(head)])
    url = faults.url("/path")
    with requests.Session() as plain, ConnectionManager(max_retries=0) as cm:
        theirs = plain.get(url, allow_redirects=False)
        ours = cm.get(url, allow_redirects=False)
        skip = {"request", "raw", "connection"}
        assert {k: v for k, v in _fields(ours).items() if k not in skip} == {
            k: v for k, v in _fields(theirs).items() if k not in skip
        }
        assert _cookies(cm.session.cookies) == _cookies(plain.cookies)
        assert ours.content == theirs.content


def test_a_patched_build_response_is_run(
    faults: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    def patched(self: HTTPAdapter, req: Any, resp: Any) -> requests.Response:
        response = _REQUESTS_WAY(self, req, resp)
        seen.append(response.status_code)
        return response

    monkeypatch.setattr(HTTPAdapter, "build_response", patched)
    with ConnectionManager() as cm:
        assert cm.get(faults.url("/")).status_code == 200
    assert seen == [200]


class _Headers(dict):  # type: ignore[type-arg]
    """Not urllib3's HTTPHeaderDict: requests' way builds the headers."""


class _Raw:
    """A urllib3 look-alike, as mocking libraries hand to build_response."""

    status = 201
    reason = "Created"
    headers = _Headers({"X-A": "1", "Content-Type": "text/plain"})


def test_a_look_alike_response_is_built_as_requests_builds_it() -> None:
    with ConnectionManager() as cm:
        request = requests.Request("GET", "http://127.0.0.1:9/x").prepare()
        raw = _Raw()
        ours = cm.adapter.build_response(request, raw)
        theirs = _REQUESTS_WAY(cm.adapter, request, raw)
        assert _fields(ours) == _fields(theirs)


class _Message:
    """An ``_original_response.msg`` that is not http.client's: handed to http.cookiejar."""

    def __init__(self, cookie: str) -> None:
        self._cookie = cookie

    def get_all(self, name: str, default: Any = None) -> Any:
        return [self._cookie] if name == "Set-Cookie" else default


class _Original:
    def __init__(self, msg: Any) -> None:
        self.msg = msg


class _RawWithMessage:
    def __init__(self, msg: Any) -> None:
        self._original_response = _Original(msg)


def test_cookies_of_a_message_of_another_type_are_extracted() -> None:
    jar = requests.cookies.RequestsCookieJar()
    request = requests.Request("GET", "http://127.0.0.1/").prepare()
    extract_cookies(jar, request, _RawWithMessage(_Message("k=v")))
    assert jar.get("k") == "v"
    for function in (extract_cookies, requests.cookies.extract_cookies_to_jar):
        with pytest.raises(AttributeError):  # no message at all: requests fails alike
            function(jar, request, _RawWithMessage(None))
    assert jar.get("k") == "v"
