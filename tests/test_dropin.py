"""Drop-in: where requests' own test suite found cm.session different from a Session.

Each test pins one break that ``tests/compat/run.py`` (requests' suite against
``cm.session``) found, against a loopback server, comparing with plain requests where the
point is "the same as requests".
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import re
from typing import Any
from unittest import mock

import pytest
import requests
import urllib3.exceptions as uex
from werkzeug.wrappers import Request, Response

from requests_connection_manager import ConnectionManager, ConnectionManagerError
from tests.servers import AppServer, free_port

pytestmark = pytest.mark.timeout(30)


def _neutral(**kwargs: Any) -> ConnectionManager:
    return ConnectionManager(
        max_retries=0,
        circuit_breaker_failure_threshold=None,
        retry_budget=None,
        timeout=None,
        **kwargs,
    )


def test_too_many_redirects_carries_the_last_hop(app: AppServer) -> None:
    """TooManyRedirects.request is the last request sent, as requests gives it."""
    app.route("/loop", lambda request: Response(b"", status=302, headers={"Location": "/loop?n=1"}))
    with ConnectionManager() as cm:
        cm.session.max_redirects = 3
        with pytest.raises(requests.TooManyRedirects) as info:
            cm.get(app.url("/loop"))
    assert isinstance(info.value, ConnectionManagerError)
    assert info.value.request is not None
    assert info.value.request.url == app.url("/loop?n=1")
    assert info.value.response is not None
    assert info.value.args[0] == "Exceeded 3 redirects."


def test_os_environ_replaced_by_a_plain_dict(app: AppServer) -> None:
    """mock.patch('os.environ', {...}) (common in users' tests) leaves calls working."""
    app.ok("/x")
    with ConnectionManager() as cm, mock.patch("os.environ", {"REQUESTS_CA_BUNDLE": ""}):
        assert cm.get(app.url("/x")).status_code == 200
    with ConnectionManager() as cm, mock.patch.dict(os.environ, {"NO_PROXY": "127.0.0.1"}):
        assert cm.get(app.url("/x")).status_code == 200


def test_a_pickled_session_and_adapter_work(app: AppServer) -> None:
    """A session (or its adapter) survives pickling and works on its first call."""
    app.fail_then_ok("/x", failures=1)
    with ConnectionManager(max_retries=2, backoff_factor=0, bearer_token="t0ken") as cm:
        cm.get(app.url("/x"))
        session = pickle.loads(pickle.dumps(cm.session))
        adapter = pickle.loads(pickle.dumps(cm.adapter))
    try:
        assert session.get(app.url("/x")).status_code == 200
        assert app.requests[-1].headers["Authorization"] == "Bearer t0ken"
        plain = requests.Session()
        plain.mount("http://", adapter)
        assert plain.get(app.url("/x")).status_code == 200
    finally:
        session.close()


def test_a_redirect_whose_body_cannot_be_decoded_is_followed(app: AppServer) -> None:
    """A 302 that claims gzip but is not: requests drains it and follows; so do we."""
    app.route(
        "/start",
        lambda request: Response(
            b"not gzip", status=302, headers={"Location": "/end", "Content-Encoding": "gzip"}
        ),
    )
    app.ok("/end", gzip.compress(b"done"), headers={"Content-Encoding": "gzip"})
    with _neutral() as cm:
        response = cm.get(app.url("/start"))
    assert response.content == b"done"
    assert [r.status_code for r in response.history] == [302]


def test_exceptions_keep_requests_args_request_and_response() -> None:
    """A refused connection: args[0] is urllib3's MaxRetryError, as plain requests gives it."""
    url = f"http://127.0.0.1:{free_port()}/x?page=1"
    with pytest.raises(requests.ConnectionError) as plain:
        requests.get(url, timeout=2)
    with _neutral() as cm, pytest.raises(requests.ConnectionError) as ours:
        cm.get(url, timeout=2)
    assert isinstance(ours.value, ConnectionManagerError)
    assert type(ours.value.args[0]) is type(plain.value.args[0]) is uex.MaxRetryError
    # urllib3 before 2.3 quotes the connection object's default repr (module and address):
    # that part differs between any two connections, so it is compared as "<object>".
    assert _no_object_reprs(str(ours.value)) == _no_object_reprs(str(plain.value))
    assert ours.value.request is not None
    assert ours.value.request.url == url
    assert ours.value.response is None
    assert ours.value.__cause__ is not None


def _no_object_reprs(text: str) -> str:
    return re.sub(r"<[\w.]+ object at 0x[0-9a-f]+>", "<object>", text)


def test_a_stream_read_timeout_keeps_urllib3s_error(app: AppServer) -> None:
    """A read timeout while streaming: args[0] is the urllib3 ReadTimeoutError."""
    app.slow("/slow", 2.0)
    with _neutral() as cm, pytest.raises(requests.ReadTimeout) as info:
        cm.get(app.url("/slow"), timeout=(2, 0.2), stream=True)
    assert isinstance(info.value.args[0], uex.ReadTimeoutError)


@pytest.mark.parametrize("timeout", [(3, 4, 5), "foo"])
def test_invalid_timeouts_give_requests_own_error(app: AppServer, timeout: Any) -> None:
    """An invalid timeout raises the ValueError requests raises, word for word."""
    app.ok("/x")
    with pytest.raises(ValueError) as plain:
        requests.get(app.url("/x"), timeout=timeout)
    with ConnectionManager() as cm, pytest.raises(ValueError) as ours:
        cm.get(app.url("/x"), timeout=timeout)
    assert str(ours.value) == str(plain.value)


def test_a_missing_ca_bundle_is_not_retried_nor_counted(tmp_path: Any) -> None:
    """verify='/no/such' raises requests' OSError at once; the host's breaker stays closed."""
    url = f"https://127.0.0.1:{free_port()}/x"
    missing = str(tmp_path / "no-such-ca.pem")
    with pytest.raises(OSError) as plain:
        requests.get(url, verify=missing)
    with ConnectionManager(circuit_breaker_failure_threshold=1) as cm:
        for _ in range(3):
            with pytest.raises(OSError) as ours:
                cm.get(url, verify=missing)
            assert isinstance(ours.value, ConnectionManagerError)
            assert str(ours.value) == str(plain.value)
        (host,) = cm.get_stats()["hosts"].values()
    assert (host["attempts"], host["retries"], host["failures"]) == (3, 0, 0)
    assert host["breaker_state"] == "closed"


def test_a_missing_client_certificate_is_not_retried(tmp_path: Any) -> None:
    """cert='/no/such' fails at once, as in requests, without a retry."""
    url = f"https://127.0.0.1:{free_port()}/x"
    with ConnectionManager() as cm, pytest.raises(OSError, match="certificate"):
        cm.get(url, cert=str(tmp_path / "none.pem"))
    with ConnectionManager() as cm:
        with pytest.raises(OSError):
            cm.get(url, cert=str(tmp_path / "none.pem"))
        (host,) = cm.get_stats()["hosts"].values()
    assert host["retries"] == 0


def test_session_request_is_called_with_method_and_url_keywords(app: AppServer) -> None:
    """Users' tests patch requests.Session.request and read call_args.kwargs['url']."""
    app.ok("/x")
    seen: list[dict[str, Any]] = []
    real = requests.Session.request

    def spy(self: requests.Session, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(self, *args, **kwargs)

    with ConnectionManager() as cm, mock.patch.object(requests.Session, "request", spy):
        cm.get(app.url("/x"), params={"a": 1})
    assert seen[0]["method"] == "GET"
    assert seen[0]["url"] == app.url("/x")


def test_batch_errors_keep_1_0_0_wording() -> None:
    """batch_request's errors carry 1.0.0's sentences (its users match on them)."""
    with ConnectionManager() as cm:
        with pytest.raises(ValueError, match=r"Request 0 must be a tuple/list"):
            cm.batch_request([("GET",)])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="Request 0: method and url must be strings"):
            cm.batch_request([(1, "u", {})])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="Request 0: kwargs must be a dictionary"):
            cm.batch_request([("GET", "u", [])])  # type: ignore[list-item]


def test_a_file_body_is_rewound_for_a_retry(app: AppServer) -> None:
    """With idempotency keys, a retried POST of a file sends the whole file again."""
    app.fail_then_ok("/up", failures=1, status=503)
    with ConnectionManager(idempotency_keys=True, backoff_factor=0) as cm:
        assert cm.post(app.url("/up"), data=io.BytesIO(b"the whole body")).status_code == 200
    assert [r.body for r in app.requests] == [b"the whole body"] * 2


def test_a_generator_body_is_never_replayed(app: AppServer) -> None:
    """A generator cannot be sent twice: no retry, whatever the method's policy."""
    app.fail_then_ok("/up", failures=1, status=503)

    def chunks() -> Any:
        yield b"part-1;"
        yield b"part-2"

    cm = ConnectionManager(idempotency_keys=True, backoff_factor=0)
    with cm, pytest.raises(requests.exceptions.RetryError) as info:
        cm.post(app.url("/up"), data=chunks())
    assert getattr(info.value, "reason", None) == "the body is a stream that cannot be sent again"
    assert [r.body for r in app.requests] == [b"part-1;part-2"]


def test_a_hook_sees_requests_own_response(app: AppServer) -> None:
    """A requests response hook runs once per hop, with the final response of that hop."""

    def echo(request: Request) -> Response:
        return Response(request.headers.get("X-Hop", ""))

    app.route("/x", echo)
    seen: list[int] = []
    with ConnectionManager() as cm:
        cm.get(app.url("/x"), hooks={"response": [lambda r, *a, **k: seen.append(r.status_code)]})
    assert seen == [200]
