"""The session merges environment settings exactly as requests does (proxies, CA bundle)."""

from __future__ import annotations

from typing import Any

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


def _both(session_settings: dict[str, Any], *args: Any) -> tuple[Any, Any]:
    with ConnectionManager() as cm:
        plain = requests.Session()
        for name, value in session_settings.items():
            setattr(cm.session, name, value)
            setattr(plain, name, value)
        ours = cm.session.merge_environment_settings(URL, *[_copy(a) for a in args])
        theirs = plain.merge_environment_settings(URL, *[_copy(a) for a in args])
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
def test_same_settings_as_requests(
    clean_env: pytest.MonkeyPatch,
    env: dict[str, str],
    call: tuple[Any, ...],
    session: dict[str, Any],
) -> None:
    """For every environment, call and session setting, the merge equals requests' own."""
    for name, value in env.items():
        clean_env.setenv(name, value)
    ours, theirs = _both(session, *call)
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
