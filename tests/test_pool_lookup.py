"""The transport's pool lookup (speed): requests' pools, without re-deriving their keys.

``Transport.get_connection_with_tls_context`` remembers the pool key's parts per URL
beginning and TLS settings; every answer here is compared with requests' own method run on
the same adapter, which must hand back the very same pool object.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import InvalidURL

from requests_connection_manager import _transport
from requests_connection_manager._transport import Transport

pytestmark = pytest.mark.timeout(30)

_REQUESTS_WAY = HTTPAdapter.get_connection_with_tls_context


def _prepared(url: str) -> requests.PreparedRequest:
    return requests.Request("GET", url).prepare()


@pytest.fixture
def transport() -> Iterator[Transport]:
    """A transport with requests' default pool sizes, closed after the test."""
    adapter = Transport()
    try:
        yield adapter
    finally:
        adapter.close()


URLS = [
    "http://127.0.0.1:8080/a",
    "http://127.0.0.1:8080/b?x=1",
    "http://user:pw@127.0.0.1:8080/c",
    "HTTP://LOCALHOST:8080/d",
    "http://localhost/e",
    "http://[::1]:8081/f",
    "https://127.0.0.1:8443/g",
    "https://example.test/h",
    "http://xn--bcher-kva.example/i",
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("verify", [True, False, None])
@pytest.mark.parametrize("cert", [None, "client.pem", ("client.pem", "client.key")])
def test_the_pool_is_the_one_requests_finds(
    url: str, verify: Any, cert: Any, transport: Transport
) -> None:
    """Twice (the second from memory): the very pool requests' own method returns."""
    request = _prepared(url)
    first = transport.get_connection_with_tls_context(request, verify, {}, cert)
    again = transport.get_connection_with_tls_context(request, verify, None, cert)
    theirs = _REQUESTS_WAY(transport, request, verify, None, cert)
    assert first is again is theirs
    assert transport._rcm_key_parts  # remembered


def test_least_recently_used_pools_are_those_of_requests() -> None:
    """Two pools kept, three hosts in turn: each lookup gets a live pool, evicted ones closed."""
    adapter = Transport(pool_connections=2)
    try:
        hosts = [_prepared(f"http://127.0.0.{n}:8080/") for n in (1, 2, 3)]
        seen = []
        for _ in range(3):
            for request in hosts:
                pool = adapter.get_connection_with_tls_context(request, True, {}, None)
                assert pool.pool is not None  # never a pool the manager evicted and closed
                assert pool.host == request.url.split("/")[2].split(":")[0]
                seen.append(pool)
            assert len(adapter.poolmanager.pools) == 2
        # Each lookup of a host evicted since is a new pool, as with requests.
        assert len({id(pool) for pool in seen}) == 9
        request = hosts[2]
        pool = adapter.get_connection_with_tls_context(request, True, {}, None)
        assert pool is _REQUESTS_WAY(adapter, request, True, None, None)  # the LRU was touched
    finally:
        adapter.close()


def test_a_ca_path_for_https_is_asked_of_the_file_system_every_time(
    tmp_path: Any, transport: Transport
) -> None:
    """verify= a path that becomes a directory: the next pool has ca_cert_dir, as requests'."""
    path = str(tmp_path / "ca")
    request = _prepared("https://127.0.0.1:8443/")
    with open(path, "w") as file:
        file.write("not read here")
    as_file = transport.get_connection_with_tls_context(request, path, {}, None)
    assert as_file.ca_certs == path
    os.remove(path)
    os.mkdir(path)
    as_dir = transport.get_connection_with_tls_context(request, path, {}, None)
    assert as_dir.ca_cert_dir == path
    assert as_dir is _REQUESTS_WAY(transport, request, path, None, None)
    assert not transport._rcm_key_parts  # never remembered


def test_a_ca_path_for_http_is_remembered(tmp_path: Any, transport: Transport) -> None:
    """For http:// the path's kind is read once: urllib3 makes HTTP pools without TLS settings."""
    path = str(tmp_path)
    request = _prepared("http://127.0.0.1:8080/")
    pool = transport.get_connection_with_tls_context(request, path, {}, None)
    assert pool is _REQUESTS_WAY(transport, request, path, None, None)
    assert transport.get_connection_with_tls_context(request, path, {}, None) is pool
    assert len(transport._rcm_key_parts) == 1
    assert not hasattr(pool, "ca_cert_dir")  # an HTTP pool has no TLS settings


def test_proxies_are_looked_up_requests_way(transport: Transport) -> None:
    """A proxy for the URL: the proxy manager's pool, as requests gives it; nothing remembered."""
    request = _prepared("http://127.0.0.1:8080/")
    proxies = {"http": "http://127.0.0.1:3128"}
    pool = transport.get_connection_with_tls_context(request, True, proxies, None)
    assert pool is _REQUESTS_WAY(transport, request, True, proxies, None)
    assert pool.proxy is not None
    assert not transport._rcm_key_parts


def test_an_invalid_port_raises_requests_invalid_url(transport: Transport) -> None:
    """A port out of range: requests' InvalidURL, with the request, both times."""
    request = requests.PreparedRequest()
    request.prepare_method("GET")
    request.url = "http://127.0.0.1:99999/"
    for _ in range(2):
        with pytest.raises(InvalidURL) as ours:
            transport.get_connection_with_tls_context(request, True, {}, None)
        with pytest.raises(InvalidURL) as theirs:
            _REQUESTS_WAY(transport, request, True, None, None)
        assert str(ours.value) == str(theirs.value)
        assert ours.value.request is request


def test_a_patched_lookup_is_used(monkeypatch: pytest.MonkeyPatch, transport: Transport) -> None:
    """While requests' method is patched (a test double, instrumentation), it decides."""
    calls: list[str] = []

    def patched(self: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(request.url)
        return _REQUESTS_WAY(self, request, *args, **kwargs)

    monkeypatch.setattr(HTTPAdapter, "get_connection_with_tls_context", patched)
    request = _prepared("http://127.0.0.1:8080/")
    for _ in range(2):
        transport.get_connection_with_tls_context(request, True, {}, None)
    assert calls == [request.url] * 2


@pytest.mark.parametrize(
    "target", ["build_connection_pool_key_attributes", "_urllib3_request_context"]
)
def test_a_replaced_key_builder_decides_every_time(
    target: str, monkeypatch: pytest.MonkeyPatch, transport: Transport
) -> None:
    """The pool key's parts come from a replaced method or helper, memo or not."""
    import requests.adapters

    owner: Any = HTTPAdapter if target.startswith("build") else requests.adapters
    original = getattr(owner, target)
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    request = _prepared("http://127.0.0.1:8080/")
    transport.get_connection_with_tls_context(request, True, {}, None)  # remembered
    monkeypatch.setattr(owner, target, counted)
    for _ in range(2):
        transport.get_connection_with_tls_context(request, True, {}, None)
    assert len(calls) == 2


def test_the_memory_stays_bounded() -> None:
    """More URL beginnings than it keeps: it starts again, and answers stay right."""
    adapter = Transport(pool_connections=4)
    try:
        for n in range(_transport._KEY_PARTS_SIZE + 40):
            request = _prepared(f"http://127.0.0.1:{1000 + n}/")
            pool = adapter.get_connection_with_tls_context(request, True, {}, None)
            assert pool.port == 1000 + n
            assert len(adapter._rcm_key_parts) <= _transport._KEY_PARTS_SIZE
    finally:
        adapter.close()


PATH_URLS = [
    "http://127.0.0.1:8080/a/b?x=1&y=%20",
    "http://127.0.0.1:8080",
    "http://127.0.0.1:8080//double//slash",
    "http://127.0.0.1:8080///triple?q",
    "http://u:p@127.0.0.1:8080/with-user-info#fragment",
    "https://example.test/%E2%9C%93?a=%2F",
    "http://[::1]:8081/v6;params?q=1",
    "http://127.0.0.1:8080/?",
]
PROXIES = [
    pytest.param(None, id="none"),
    pytest.param({}, id="empty"),
    pytest.param({"http": "http://proxy.test:3128"}, id="http-proxy"),
    pytest.param({"all": "socks5://proxy.test:1080"}, id="socks"),
    pytest.param({"https": "http://proxy.test:3128"}, id="https-proxy"),
]
_REQUESTS_REQUEST_URL = HTTPAdapter.request_url


@pytest.mark.parametrize("proxies", PROXIES)
def test_the_request_url_is_requests_own(proxies: Any, transport: Transport) -> None:
    """Twice for every URL (the second from the memo): requests' answer, proxies or not."""
    for url in [*PATH_URLS, *PATH_URLS]:
        request = _prepared(url)
        expected = _REQUESTS_REQUEST_URL(transport, request, proxies)
        assert transport.request_url(request, proxies) == expected


def test_a_request_url_changed_on_the_request_is_followed(transport: Transport) -> None:
    request = _prepared("http://127.0.0.1:8080/first")
    assert transport.request_url(request, {}) == "/first"
    request.url = "http://127.0.0.1:8080/second?q=1"
    assert transport.request_url(request, {}) == "/second?q=1"
    request.url = b"http://127.0.0.1:8080/bytes"  # type: ignore[assignment]
    with pytest.raises(TypeError) as theirs:  # requests' own: bytes meet str
        _REQUESTS_REQUEST_URL(transport, request, {})
    with pytest.raises(TypeError, match=str(theirs.value)):
        transport.request_url(request, {})


def test_a_patched_request_url_is_run(
    monkeypatch: pytest.MonkeyPatch, transport: Transport
) -> None:
    request = _prepared("http://127.0.0.1:8080/a")
    assert transport.request_url(request, None) == "/a"  # remembered
    monkeypatch.setattr(HTTPAdapter, "request_url", lambda self, req, proxies: "/patched")
    assert transport.request_url(request, None) == "/patched"


def test_the_remembered_paths_stay_bounded_and_go_at_close_with_the_key_parts() -> None:
    transport = Transport()
    for index in range(3000):
        transport.request_url(_prepared(f"http://127.0.0.1:8080/{index}"), None)
    assert 0 < len(transport._rcm_paths) <= _transport._PATHS_SIZE
    transport.get_connection_with_tls_context(_prepared("http://u:pw@127.0.0.1:8080/"), True)
    assert transport._rcm_key_parts
    transport.close()
    assert not transport._rcm_paths
    assert not transport._rcm_key_parts  # its keys hold the URL's user-info
