"""TLS: verification is on by default; failures are SSLError in the contract, not retried."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
import trustme

from requests_connection_manager import ConnectionManager, ConnectionManagerError
from tests.tlsserver import serve_https

pytestmark = pytest.mark.timeout(30)


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = b"secure"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence request logging."""


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An HTTPS server on 127.0.0.1 with a certificate from a throwaway CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    _Hello.hits = 0
    with serve_https(_Hello, context) as url:
        yield url, str(ca_path)


def test_unknown_ca_is_an_ssl_error_and_not_retried(tls_server: tuple[str, str]) -> None:
    """With the default verification an untrusted CA fails once, as requests.SSLError."""
    url, _ = tls_server
    with ConnectionManager(max_retries=3) as cm:
        with pytest.raises(requests.exceptions.SSLError) as info:
            cm.get(url)
        host = next(iter(cm.get_stats()["hosts"].values()))
    assert isinstance(info.value, ConnectionManagerError)
    assert info.value.__cause__ is not None
    assert host["attempts"] == 1
    assert _Hello.hits == 0


def test_trusted_ca_via_verify_path(tls_server: tuple[str, str]) -> None:
    """verify=<CA bundle> on the call makes the request succeed.

    (Session.verify would be overridden by REQUESTS_CA_BUNDLE when it is set, as in plain
    requests, so the call-level form is the one tested here.)
    """
    url, ca_path = tls_server
    with ConnectionManager() as cm:
        assert cm.get(url, verify=ca_path).text == "secure"
        assert cm.get(url, verify=ca_path).text == "secure"
