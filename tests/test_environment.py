"""The session merges the environment exactly as requests does (proxies, CA bundle, .netrc).

Every comparison is between ``cm.session`` and a plain ``requests.Session`` in the same
environment: the manager computes the environment's answers once per change
(``_environment.Environment``), and must never answer differently from requests.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
import requests

from requests_connection_manager import ConnectionManager

URL = "http://api.example.com/x"
PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy or CA bundle variables, whatever the machine has."""
    for name in (*PROXY_VARS, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _both(session_settings: dict[str, Any], *args: Any, url: str = URL) -> tuple[Any, Any]:
    with ConnectionManager() as cm:
        plain = requests.Session()
        for name, value in session_settings.items():
            setattr(cm.session, name, value)
            setattr(plain, name, value)
        for _ in range(2):  # the second answer comes from what the first remembered
            ours = cm.session.merge_environment_settings(url, *[_copy(a) for a in args])
            theirs = plain.merge_environment_settings(url, *[_copy(a) for a in args])
            assert ours == theirs
        plain.close()
    return ours, theirs


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


ENVIRONMENTS = [
    pytest.param({}, id="nothing"),
    pytest.param({"HTTP_PROXY": "http://proxy.local:3128"}, id="http_proxy"),
    pytest.param(
        {"https_proxy": "http://proxy.local:3128", "no_proxy": "example.com"}, id="no_proxy_match"
    ),
    pytest.param({"NO_PROXY": "internal.test"}, id="no_proxy_only"),
    pytest.param({"REQUESTS_CA_BUNDLE": "/etc/ssl/ca.pem"}, id="requests_ca_bundle"),
    pytest.param({"CURL_CA_BUNDLE": "/etc/ssl/curl.pem"}, id="curl_ca_bundle"),
    pytest.param(
        {"ALL_PROXY": "socks5://proxy.local:1080", "no_proxy": "*"}, id="all_proxy_no_proxy_star"
    ),
    pytest.param(
        {"HTTP_PROXY": "http://p:1", "NO_PROXY": ".example.com,10.0.0.0/8,127.0.0.1:8080"},
        id="no_proxy_suffix_cidr_port",
    ),
    pytest.param({"http_proxy": "", "HTTP_PROXY": "http://upper:1"}, id="empty_lowercase"),
]
URLS = [
    pytest.param(URL, id="name"),
    pytest.param("https://10.1.2.3:8443/x", id="ip_in_cidr"),
    pytest.param("http://127.0.0.1:8080/x", id="ip_port"),
    pytest.param("http://user:pw@sub.example.com/x", id="userinfo_subdomain"),
]
CALLS = [
    pytest.param(({}, None, None, None), id="defaults"),
    pytest.param(({"http": "http://given:1"}, True, False, "client.pem"), id="given"),
    pytest.param(({}, None, "/my/ca.pem", None), id="verify_path"),
]
SESSIONS = [
    pytest.param({}, id="plain"),
    pytest.param(
        {"proxies": {"https": "http://session:2"}, "verify": False, "stream": True}, id="configured"
    ),
    pytest.param({"trust_env": False}, id="no_trust_env"),
]


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("session", SESSIONS)
@pytest.mark.parametrize("url", URLS)
def test_same_settings_as_requests(
    clean_env: pytest.MonkeyPatch,
    env: dict[str, str],
    call: tuple[Any, ...],
    session: dict[str, Any],
    url: str,
) -> None:
    """For every environment, URL, call and session setting, the merge equals requests'."""
    for name, value in env.items():
        clean_env.setenv(name, value)
    ours, theirs = _both(session, *call, url=url)
    assert ours == theirs


def test_a_proxy_set_after_the_first_call_is_seen(clean_env: pytest.MonkeyPatch) -> None:
    """The environment is looked at again whenever os.environ changes."""
    with ConnectionManager() as cm:
        assert cm.session.merge_environment_settings(URL, {}, None, None, None)["proxies"] == {}
        clean_env.setenv("HTTP_PROXY", "http://proxy.local:3128")
        merged = cm.session.merge_environment_settings(URL, {}, None, None, None)
        assert merged["proxies"] == {"http": "http://proxy.local:3128"}
        clean_env.delenv("HTTP_PROXY")
        assert cm.session.merge_environment_settings(URL, {}, None, None, None)["proxies"] == {}


def test_os_environ_replaced_by_a_plain_dict(clean_env: pytest.MonkeyPatch) -> None:
    """mock.patch('os.environ', {...}): the answers follow the dict, as requests' do."""
    with ConnectionManager() as cm:
        cm.session.merge_environment_settings(URL, {}, None, None, None)
        for environ in ({"HTTP_PROXY": "http://a:1"}, {"HTTP_PROXY": "http://b:2"}, {}):
            with mock.patch("os.environ", dict(environ)):
                ours = cm.session.merge_environment_settings(URL, {}, None, None, None)
                theirs = requests.Session().merge_environment_settings(URL, {}, None, None, None)
            assert ours == theirs


def _prepared_auth(session: requests.Session, url: str) -> Any:
    return session.prepare_request(requests.Request("GET", url)).headers.get("Authorization")


def test_netrc_is_found_as_requests_finds_it(clean_env: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """.netrc credentials match requests' for each host, and follow the file's changes."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.example.com login alice password first\n")
    clean_env.setenv("NETRC", str(netrc))
    hosts = [
        "http://api.example.com/x",
        "http://other.example.com/x",
        "http://u:p@api.example.com/",
    ]
    with ConnectionManager() as cm:
        plain = requests.Session()
        for _ in range(2):
            for url in hosts:
                assert _prepared_auth(cm.session, url) == _netrc_reference(plain, url)
        assert _prepared_auth(cm.session, hosts[0]) is not None
        netrc.write_text("machine api.example.com login bob password a-longer-second\n")
        assert _prepared_auth(cm.session, hosts[0]) == _prepared_auth(plain, hosts[0])
        netrc.unlink()
        assert _prepared_auth(cm.session, hosts[0]) is None
        assert _prepared_auth(plain, hosts[0]) is None
        clean_env.setenv("NETRC", str(tmp_path / "elsewhere"))
        assert _prepared_auth(cm.session, hosts[2]) == _prepared_auth(plain, hosts[2])


#: requests before 2.32.4 looked .netrc up by ``netloc.split(":")[0]``, so a URL with
#: user-info found no entry (CVE-2024-47081 fixed the lookup to use the host name).
_NETLOC_NETRC = tuple(int(p) for p in requests.__version__.split(".")[:3]) < (2, 32, 4)


def _netrc_reference(plain: requests.Session, url: str) -> Any:
    """What requests answers for ``url``; with its pre-2.32.4 lookup, the fixed answer."""
    if _NETLOC_NETRC and "@" in url:
        host_only = url.split("//", 1)[0] + "//" + url.split("@", 1)[1]
        return _prepared_auth(plain, host_only)
    return _prepared_auth(plain, url)


def test_a_patched_netrc_lookup_is_used(clean_env: pytest.MonkeyPatch) -> None:
    """A test that patches requests.sessions.get_netrc_auth gets its patch (requests' own do)."""
    with ConnectionManager() as cm:
        _prepared_auth(cm.session, URL)
        with mock.patch("requests.sessions.get_netrc_auth", return_value=("u", "p")):
            assert _prepared_auth(cm.session, URL) == _prepared_auth(requests.Session(), URL)
            assert _prepared_auth(cm.session, URL) is not None
