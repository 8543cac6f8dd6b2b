"""The compatibility module ``utils``: redaction of nested data and safe logging helpers."""

from __future__ import annotations

import copy
import io
import json
import logging
from collections import namedtuple
from typing import Any

import pytest
import requests

from requests_connection_manager import _redaction as redaction
from requests_connection_manager import utils
from requests_connection_manager._redaction import REDACTED
from requests_connection_manager.utils import (
    is_sensitive_field,
    redact_sensitive_data,
    safe_log_error,
    safe_log_request,
    safe_log_response,
)
from tests.servers import AppServer

pytestmark = pytest.mark.timeout(20)

LOGGER = "requests_connection_manager.utils"
HIDDEN = "s3cr3t-value"


class CountingDict(dict):  # type: ignore[type-arg]
    """A dict that counts every look at its contents."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def items(self) -> Any:
        self.calls += 1
        return super().items()

    def keys(self) -> Any:
        self.calls += 1
        return super().keys()

    def __iter__(self) -> Any:
        self.calls += 1
        return super().__iter__()

    def __repr__(self) -> str:
        self.calls += 1
        return super().__repr__()

    def __str__(self) -> str:
        self.calls += 1
        return super().__str__()


class CountingText:
    """An object whose text form counts how often it is asked for."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0

    def __str__(self) -> str:
        self.calls += 1
        return self.text

    def __repr__(self) -> str:
        self.calls += 1
        return repr(self.text)


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def _one_message(caplog: pytest.LogCaptureFixture) -> str:
    messages = _messages(caplog)
    assert len(messages) == 1, messages
    return messages[0]


# ------------------------------------------------------------------ field names


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "user_password",
        "Passwd",
        "db-passwd",
        "pwd",
        "PWD_HASH",
        "privatekey",
        "PrivateKey",
        "private_key",
        "jwt",
        "id-jwt",
        "JWT_TOKEN",
        "secret",
        "client_secret",
        "token",
        "X-Access-Token",
        "api_key",
        "X-Api-Key",
        "apikey",
        "Authorization",
        "Proxy-Authorization",
        "auth",
        "x-auth-token",
        "signature",
        "sig",
        "credentials",
        "session",
        "sessionid",
        "sid",
        "cookie",
        "Set-Cookie",
        "bearer",
        "key",
        "pass",
    ],
)
def test_sensitive_field_names(name: str) -> None:
    """Every family of secret names, including passwd, pwd, privatekey and jwt, is sensitive."""
    assert is_sensitive_field(name)


@pytest.mark.parametrize(
    "name",
    ["page", "monkey", "keyboard", "user", "username", "author", "passenger", "Accept"],
)
def test_ordinary_field_names(name: str) -> None:
    """Ordinary names, even ones containing "key" or "pass" as a part, are not sensitive."""
    assert not is_sensitive_field(name)


def test_is_sensitive_field_is_the_redaction_one() -> None:
    """The utils module re-exports the single implementation from redaction."""
    assert utils.is_sensitive_field is redaction.is_sensitive_field


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists the public helpers in sorted order."""
    assert utils.__all__ == sorted(utils.__all__)
    for name in utils.__all__:
        assert callable(getattr(utils, name))


# ---------------------------------------------------------------- nested data


def test_nested_dicts_and_lists_are_redacted_without_mutating_the_input() -> None:
    """Secrets at any depth in dicts, lists of dicts and lists of lists are replaced."""
    data = {
        "user": "bob",
        "password": "hunter2",
        "profile": {"email": "bob@example.com", "api_key": "k1", "deep": {"jwt": "j1"}},
        "items": [{"page": 1, "token": "t1"}, [{"pwd": "p1"}, "plain"]],
        "tuple": ({"secret": "x1"}, 2),
        7: "a non-string key",
    }
    before = copy.deepcopy(data)

    result = redact_sensitive_data(data)

    assert data == before
    assert result == {
        "user": "bob",
        "password": "[REDACTED]",
        "profile": {
            "email": "bob@example.com",
            "api_key": "[REDACTED]",
            "deep": {"jwt": "[REDACTED]"},
        },
        "items": [{"page": 1, "token": "[REDACTED]"}, [{"pwd": "[REDACTED]"}, "plain"]],
        "tuple": ({"secret": "[REDACTED]"}, 2),
        7: "a non-string key",
    }
    assert result is not data
    assert result["profile"] is not data["profile"]


def test_whole_containers_under_sensitive_keys_are_replaced() -> None:
    """A dict or list stored under a sensitive key is replaced as a whole."""
    result = redact_sensitive_data({"credentials": {"user": "u", "pin": "1"}, "tokens": ["a"]})
    assert result == {"credentials": "[REDACTED]", "tokens": "[REDACTED]"}


def test_top_level_sequences_keep_their_type() -> None:
    """A list stays a list, a tuple a tuple, a named tuple a named tuple."""
    pair = namedtuple("pair", ["name", "value"])

    assert redact_sensitive_data([{"token": "t"}, 1]) == [{"token": "[REDACTED]"}, 1]
    result = redact_sensitive_data(({"token": "t"}, 1))
    assert type(result) is tuple
    assert result == ({"token": "[REDACTED]"}, 1)
    named = redact_sensitive_data(pair("page", {"secret": "x"}))
    assert type(named) is pair
    assert named == pair("page", {"secret": "[REDACTED]"})


def test_name_value_pairs_in_tuples_are_redacted() -> None:
    """Form data given as (name, value) pairs has the sensitive values replaced."""
    form = [("user", "bob"), ("password", "hunter2")]
    assert redact_sensitive_data(form) == [("user", "bob"), ("password", "[REDACTED]")]
    assert redact_sensitive_data(["password", "hunter2"]) == ["password", "hunter2"]


@pytest.mark.parametrize("value", [42, 3.5, None, True, b"password=hunter2", bytearray(b"x")])
def test_other_types_come_back_unchanged(value: object) -> None:
    """Numbers, None and bytes are returned as they are."""
    assert redact_sensitive_data(value) is value


def test_custom_redaction_text() -> None:
    """redaction_text replaces secrets everywhere, URL user-info included."""
    assert redact_sensitive_data({"token": "t"}, redaction_text="***") == {"token": "***"}
    text = redact_sensitive_data("see https://u:pw@host/x?token=t&page=2", redaction_text="***")
    assert text == "see https://***@host/x?token=***&page=2"


def test_a_container_holding_itself_does_not_recurse_forever() -> None:
    """A cycle is cut with a placeholder instead of a RecursionError."""
    data: dict[str, Any] = {"token": "t", "page": 1}
    data["self"] = data
    result = redact_sensitive_data(data)
    assert result["token"] == REDACTED
    assert result["page"] == 1
    assert isinstance(result["self"], str)


# ------------------------------------------------------------------- strings


def test_json_object_string_comes_back_as_json_without_the_secret() -> None:
    """A JSON object string is parsed, redacted and dumped again."""
    text = json.dumps({"user": "bob", "auth": {"token": HIDDEN}, "list": [{"pwd": HIDDEN}]})
    result = redact_sensitive_data(text)
    assert isinstance(result, str)
    assert HIDDEN not in result
    assert json.loads(result) == {
        "user": "bob",
        "auth": "[REDACTED]",
        "list": [{"pwd": "[REDACTED]"}],
    }


def test_json_array_string_comes_back_as_json_without_the_secret() -> None:
    """A JSON array string is redacted item by item."""
    result = redact_sensitive_data(json.dumps([{"jwt": HIDDEN}, {"page": 2}]))
    assert json.loads(result) == [{"jwt": "[REDACTED]"}, {"page": 2}]


def test_json_string_without_secrets_is_returned_as_is() -> None:
    """JSON with nothing to hide keeps its original formatting."""
    text = '{"page":2,  "items":[1,2]}'
    assert redact_sensitive_data(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc123", "Authorization: [REDACTED]"),
        ("proxy-authorization: Basic dXNlcjpwYXNz\nAccept: */*", None),
        ("password=hunter2", "password=[REDACTED]"),
        ("api_key=xyz&page=2", "api_key=[REDACTED]&page=2"),
        (
            "GET https://example.com/search?api_key=abc123&page=2 failed",
            "GET https://example.com/search?api_key=[REDACTED]&page=2 failed",
        ),
        (
            "connect to https://alice:pw123@db.example.com:5432/x refused",
            "connect to https://[REDACTED]@db.example.com:5432/x refused",
        ),
        ("{'password': 'hunter2', 'user': 'bob'}", "{'password': '[REDACTED]', 'user': 'bob'}"),
        ('oops {"user": "bob", "secret": "abc123"', 'oops {"user": "bob", "secret": "[REDACTED]"'),
        ('passwd = "hunter 2" user=bob', 'passwd = "[REDACTED]" user=bob'),
        ("monkey=banana page: 2", "monkey=banana page: 2"),
        (
            "retry url: /v1?page=1 Authorization: Bearer abc123",
            "retry url: /v1?page=1 Authorization: [REDACTED]",
        ),
        ("{'auth': ('bob', 'hunter2'), 'page': 1}", "{'auth': [REDACTED], 'page': 1}"),
    ],
)
def test_free_text_pairs_and_urls_are_redacted(text: str, expected: str | None) -> None:
    """name: value, name=value, quoted pairs, query values and URL user-info are replaced."""
    result = redact_sensitive_data(text)
    if expected is not None:
        assert result == expected
    for secret in ("abc123", "hunter2", "hunter 2", "pw123", "dXNlcjpwYXNz"):
        assert secret not in result
    assert "Bearer" not in result


def test_cut_off_json_still_hides_the_value_of_a_sensitive_key() -> None:
    """A JSON text that does not parse still loses everything under a sensitive key."""
    text = '{"user": "bob", "tokens": ["t-one", "t-two"], "page": 2, "more'
    result = redact_sensitive_data(text)
    assert "t-one" not in result
    assert "t-two" not in result
    assert '"page": 2' in result


# ---------------------------------------------------------- no work when off


def test_disabled_level_does_no_work(caplog: pytest.LogCaptureFixture) -> None:
    """Below the logger's level nothing is read, formatted or redacted."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    headers = CountingDict({"Authorization": "Bearer x"})
    payload = CountingDict({"password": "x"})
    url = CountingText("https://example.com/?token=x")
    method = CountingText("GET")
    error = CountingText("boom")

    safe_log_request(method, url, headers=headers, payload=payload, level=logging.DEBUG)  # type: ignore[arg-type]
    safe_log_response(headers, level=logging.INFO)  # type: ignore[arg-type]
    safe_log_error(ValueError(error), method, url, level=logging.INFO)  # type: ignore[arg-type]

    assert (headers.calls, payload.calls, url.calls, method.calls, error.calls) == (0, 0, 0, 0, 0)
    assert caplog.records == []

    # The probes do count once the level is enabled.
    safe_log_request(method, url, headers=headers, payload=payload, level=logging.WARNING)  # type: ignore[arg-type]
    assert headers.calls > 0
    assert payload.calls > 0
    assert url.calls > 0
    assert method.calls > 0


def test_log_calls_use_lazy_arguments(caplog: pytest.LogCaptureFixture) -> None:
    """The message is a %-template with separate args, formatted only by logging."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    safe_log_request("GET", "https://example.com/", headers={"Accept": "*/*"})
    (record,) = caplog.records
    assert "%s" in record.msg
    assert isinstance(record.args, tuple)
    assert record.args


# ---------------------------------------------------------------- requests


def test_request_headers_url_and_dict_payload_are_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sensitive headers, URL user-info, query values and payload fields are hidden."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    safe_log_request(
        "POST",
        f"https://user:{HIDDEN}@api.example.com/v1?api_key={HIDDEN}&page=2",
        headers={
            "Authorization": f"Bearer {HIDDEN}",
            "X-Api-Key": HIDDEN,
            "Cookie": f"sid={HIDDEN}",
            "Referer": f"https://example.com/?token={HIDDEN}",
            "Accept": "application/json",
        },
        payload={"user": "bob", "password": HIDDEN, "nested": [{"jwt": HIDDEN}]},
    )
    message = _one_message(caplog)
    assert HIDDEN not in message
    assert "Bearer" not in message
    assert "POST" in message
    assert "api.example.com/v1" in message
    assert "page=2" in message
    assert "application/json" in message
    assert '"user": "bob"' in message
    assert caplog.records[0].levelno == logging.DEBUG


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps({"user": "bob", "client_secret": HIDDEN}),
        json.dumps({"user": "bob", "client_secret": HIDDEN}).encode(),
        f"user=bob&password={HIDDEN}",
        f"user=bob&password={HIDDEN}".encode(),
        bytearray(f"user=bob&privatekey={HIDDEN}".encode()),
        [("user", "bob"), ("password", HIDDEN)],
    ],
    ids=["json-str", "json-bytes", "form-str", "form-bytes", "bytearray", "pairs"],
)
def test_request_text_and_bytes_payloads_are_redacted(
    caplog: pytest.LogCaptureFixture, payload: object
) -> None:
    """JSON and free-text bodies, as str or UTF-8 bytes, lose their secrets."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    safe_log_request("POST", "https://example.com/", payload=payload)
    message = _one_message(caplog)
    assert HIDDEN not in message
    assert "bob" in message
    assert "[REDACTED]" in message


def test_undecodable_bytes_payload_is_logged_by_length(caplog: pytest.LogCaptureFixture) -> None:
    """Bytes that are not UTF-8 are shown only by their length."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    safe_log_request("PUT", "https://example.com/", payload=b"\xff\xfe" + b"\x00" * 98)
    message = _one_message(caplog)
    assert "100 bytes" in message
    assert "\\xff" not in message


def test_file_payload_is_not_read(caplog: pytest.LogCaptureFixture) -> None:
    """A file-like (streaming) payload is described by type, never read."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    body = io.BytesIO(f"password={HIDDEN}".encode())
    safe_log_request("PUT", "https://example.com/", payload=body)
    message = _one_message(caplog)
    assert body.tell() == 0
    assert "BytesIO" in message
    assert HIDDEN not in message


def test_long_payload_is_cut_to_a_preview(caplog: pytest.LogCaptureFixture) -> None:
    """A big body shows a bounded preview and its total size."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    safe_log_request("POST", "https://example.com/", payload="x" * 50_000)
    message = _one_message(caplog)
    assert len(message) < 1200
    assert "50000" in message


def test_huge_payload_is_redacted_before_it_is_cut(caplog: pytest.LogCaptureFixture) -> None:
    """In a body too big to redact whole, a secret near the start is still hidden."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    safe_log_request("POST", "https://example.com/", payload=f"token={HIDDEN}&" + "y" * 200_000)
    message = _one_message(caplog)
    assert HIDDEN not in message
    assert len(message) < 1200


# --------------------------------------------------------------- responses


def test_streamed_response_body_is_not_read(
    app: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Logging a stream=True response leaves its body unread and fully readable."""
    body = json.dumps({"token": HIDDEN, "data": "d" * 5000}).encode()
    app.ok("/stream", body=body, headers={"Content-Type": "application/json"})
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    with requests.get(app.url("/stream"), stream=True, timeout=5) as response:
        safe_log_response(response)
        assert response._content_consumed is False  # type: ignore[attr-defined]
        message = _one_message(caplog)
        assert "not read (streamed)" in message
        assert HIDDEN not in message
        assert response.content == body


def test_consumed_stream_is_not_shown(app: AppServer, caplog: pytest.LogCaptureFixture) -> None:
    """A stream the caller iterated itself is reported as consumed, not re-read."""
    app.ok("/stream", body=b"abc" * 100)
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    with requests.get(app.url("/stream"), stream=True, timeout=5) as response:
        chunks = b"".join(response.iter_content(64))
        safe_log_response(response)
    assert chunks == b"abc" * 100
    message = _one_message(caplog)
    assert "consumed" in message
    assert "abcabc" not in message


def test_loaded_json_response_is_logged_redacted(
    app: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream=False JSON response shows its body with sensitive fields hidden."""
    body = json.dumps({"user": "bob", "access_token": HIDDEN, "items": [{"api_key": HIDDEN}]})
    app.ok(
        "/json",
        body=body.encode(),
        headers={"Content-Type": "application/json", "Set-Cookie": f"sessionid={HIDDEN}"},
    )
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    with requests.get(app.url(f"/json?token={HIDDEN}&page=2"), timeout=5) as response:
        safe_log_response(response)

    message = _one_message(caplog)
    assert HIDDEN not in message
    assert "GET" in message
    assert "200" in message
    assert "bob" in message
    assert "page=2" in message
    assert "application/json" in message
    assert "[REDACTED]" in message


def test_loaded_response_with_userinfo_url_is_redacted(
    app: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Credentials in the response URL are hidden, and a long body is cut short."""
    app.ok("/big", body=b"z" * 20_000)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    url = f"http://alice:{HIDDEN}@{app.host}:{app.port}/big"

    with requests.get(url, timeout=5) as response:
        safe_log_response(response)

    message = _one_message(caplog)
    assert HIDDEN not in message
    assert "alice" not in message
    assert "20000" in message
    assert len(message) < 1600


def test_non_utf8_response_body_is_logged_by_length(
    app: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A loaded binary body is shown only by its length."""
    app.ok("/bin", body=bytes(range(256)), headers={"Content-Type": "application/octet-stream"})
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    with requests.get(app.url("/bin"), timeout=5) as response:
        safe_log_response(response)

    assert "256 bytes" in _one_message(caplog)


# ------------------------------------------------------------------ errors


def test_error_url_and_message_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """safe_log_error hides secrets in the URL and in the exception's message."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    error = requests.ConnectionError(
        f"Max retries exceeded with url: /v1?api_key={HIDDEN}&page=2 "
        f"(proxy https://bob:{HIDDEN}@proxy.local) Authorization: Bearer {HIDDEN}"
    )
    safe_log_error(error, "GET", f"https://bob:{HIDDEN}@api.example.com/v1?token={HIDDEN}")

    (record,) = caplog.records
    message = record.getMessage()
    assert HIDDEN not in message
    assert "ConnectionError" in message
    assert "GET" in message
    assert "api.example.com/v1" in message
    assert "page=2" in message
    assert record.levelno == logging.ERROR
    assert record.exc_info is None


def test_error_with_json_message_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """An exception whose message is a JSON document loses its sensitive fields."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    safe_log_error(ValueError(json.dumps({"jwt": HIDDEN, "code": 7})), "POST", "/x")
    message = _one_message(caplog)
    assert HIDDEN not in message
    assert "ValueError" in message
    assert '"code": 7' in message


# ---------------------------------------------------------- never raising


class Unprintable(Exception):
    """An exception whose message cannot be built."""

    def __str__(self) -> str:
        raise RuntimeError(f"cannot print {HIDDEN}")


class ExplodingHeaders(dict):  # type: ignore[type-arg]
    """Headers that fail when read."""

    def items(self) -> Any:
        raise RuntimeError(f"broken headers {HIDDEN}")


def test_response_missing_attributes_gives_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A response-like object without the expected attributes is a warning, not an error."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    safe_log_response(object())  # type: ignore[arg-type]
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "safe_log_response" in record.getMessage()
    assert "AttributeError" in record.getMessage()
    assert record.exc_info is None


def test_failures_inside_helpers_never_reach_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    """Broken inputs produce one warning each, without exceptions or leaked secrets."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    safe_log_request("GET", "https://example.com/", headers=ExplodingHeaders())
    safe_log_error(Unprintable(), "GET", "https://example.com/")
    safe_log_request("GET", "https://example.com/", level="LOUD")  # type: ignore[arg-type]

    assert [r.levelno for r in caplog.records] == [logging.WARNING] * 3
    for record in caplog.records:
        assert record.exc_info is None
        assert HIDDEN not in record.getMessage()


def test_base_exceptions_are_not_swallowed() -> None:
    """KeyboardInterrupt and friends still propagate out of a helper."""

    class Interrupting(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            raise KeyboardInterrupt

    logger = logging.getLogger(LOGGER)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with pytest.raises(KeyboardInterrupt):
            safe_log_request("GET", "https://example.com/", headers=Interrupting())
    finally:
        logger.setLevel(old_level)


def test_log_helpers_accept_bytes_none_and_unserialisable_payloads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bytes method and URL, a None URL and a payload JSON cannot encode are all logged."""
    with caplog.at_level(logging.DEBUG, logger="requests_connection_manager.utils"):
        safe_log_request(b"POST", b"http://h/?token=s3cr3t", None, {"when": object()})  # type: ignore[arg-type]
        safe_log_error(ValueError("boom"), "GET", None)  # type: ignore[arg-type]
    text = caplog.text
    assert "POST http://h/?token=[REDACTED]" in text
    assert "<object>" in text
    assert "GET -" in text
    assert "s3cr3t" not in text
