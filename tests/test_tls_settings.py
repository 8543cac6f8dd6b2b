"""TLS settings: verify, cert and ssl_context, globally, per endpoint and through setters."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
import trustme

from requests_connection_manager import ConnectionManager
from tests.servers import AppServer
from tests.tlsserver import serve_https

pytestmark = pytest.mark.timeout(30)


class _WhoAmI(BaseHTTPRequestHandler):
    """Answers with the client certificate's common name (or null)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        peer = self.connection.getpeercert()  # type: ignore[attr-defined]
        name = None
        if peer:
            name = dict(item[0] for item in peer["subject"]).get("commonName")
        body = json.dumps({"client": name}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence request logging."""


@dataclass
class TLSServer:
    url: str
    ca_path: str
    client_cert: str
    ca: trustme.CA


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[TLSServer]:
    """HTTPS on 127.0.0.1, certificate from a throwaway CA, client certificates optional."""
    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    server_context.verify_mode = ssl.CERT_OPTIONAL
    ca.configure_trust(server_context)
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    client_path = tmp_path / "client.pem"
    ca.issue_cert(
        "client-one", common_name="client-one"
    ).private_key_and_cert_chain_pem.write_to_path(str(client_path))
    with serve_https(_WhoAmI, server_context) as url:
        yield TLSServer(url, str(ca_path), str(client_path), ca)


def _manager(**kwargs: object) -> ConnectionManager:
    kwargs.setdefault("max_retries", 0)
    return ConnectionManager(**kwargs)  # type: ignore[arg-type]


def test_verify_path_in_the_constructor(tls: TLSServer) -> None:
    """verify=<CA path> trusts the server; the default refuses it."""
    with _manager(verify=tls.ca_path) as cm:
        assert cm.get(tls.url).json() == {"client": None}
    with _manager() as cm, pytest.raises(requests.exceptions.SSLError):
        cm.get(tls.url, verify=True)


def test_set_ssl_verification_takes_effect_on_the_next_request(
    tls: TLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """set_ssl_verification changes behaviour, even when REQUESTS_CA_BUNDLE is set."""
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", requests.certs.where())
    with _manager() as cm:
        with pytest.raises(requests.exceptions.SSLError):
            cm.get(tls.url)
        cm.set_ssl_verification(tls.ca_path)
        assert cm.get(tls.url).status_code == 200
        assert cm.get_stats()["ssl_verification"] == tls.ca_path
        cm.set_ssl_verification(True)
        with pytest.raises(requests.exceptions.SSLError):
            cm.get(tls.url)
        cm.set_ssl_verification(False)
        with pytest.warns(Warning, match="Unverified HTTPS"):
            assert cm.get(tls.url).status_code == 200


def test_client_certificate_global_and_through_the_setter(tls: TLSServer) -> None:
    """cert= presents a client certificate; set_client_certificate adds or removes it."""
    with _manager(verify=tls.ca_path, cert=tls.client_cert) as cm:
        assert cm.get(tls.url).json() == {"client": "client-one"}
        assert cm.get_stats()["client_certificate_configured"] is True
        cm.set_client_certificate(None)
        assert cm.get(tls.url).json() == {"client": None}
        cm.set_client_certificate(tls.client_cert)
        assert cm.get(tls.url).json() == {"client": "client-one"}


def test_endpoint_verify_and_cert_apply_to_their_host(tls: TLSServer) -> None:
    """An endpoint's verify and cert are used for its host unless the call passes its own."""
    configs = {"127.0.0.1": {"verify": tls.ca_path, "cert": tls.client_cert}}
    with _manager(endpoint_configs=configs) as cm:
        assert cm.get(tls.url).json() == {"client": "client-one"}
        with pytest.raises(requests.exceptions.SSLError):
            cm.get(tls.url, verify=requests.certs.where())  # the call's own verify wins


def test_ssl_context_global_setter_and_endpoint(tls: TLSServer) -> None:
    """ssl_context= trusts what the context trusts; set_ssl_context switches from the next call."""
    trusting = ssl.create_default_context()
    tls.ca.configure_trust(trusting)
    with _manager(ssl_context=trusting) as cm:
        assert cm.get(tls.url).status_code == 200
        assert cm.get_stats()["ssl_context_configured"] is True
        cm.set_ssl_context(ssl.create_default_context())  # knows nothing of the test CA
        with pytest.raises(requests.exceptions.SSLError):
            cm.get(tls.url)
        cm.set_ssl_context(None)
        assert cm.get_stats()["ssl_context_configured"] is False
    with _manager(endpoint_configs={"127.0.0.1": {"ssl_context": trusting}}) as cm:
        assert cm.get(tls.url).status_code == 200


def test_an_endpoint_verify_false_does_not_follow_a_redirect(
    tls: TLSServer, app: AppServer
) -> None:
    """verify=False for one host does not switch verification off for a redirect target."""
    app.ok("/go", b"", status=302, headers={"Location": tls.url})
    # Both servers are on 127.0.0.1; the pattern names the plain-HTTP one by its port.
    configs = {f"127.0.0.1:{app.port}": {"verify": False}}
    with _manager(endpoint_configs=configs) as cm, pytest.raises(requests.exceptions.SSLError):
        cm.get(app.url("/go"))
    assert app.hits("/go") == 1
