"""An HTTPS server on 127.0.0.1 for tests, with any handler and server-side TLS context."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serve_https(handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext) -> Iterator[str]:
    """Serve ``handler`` over TLS on an ephemeral loopback port; yield its base URL.

    Args:
        handler: The request handler class.
        context: A server-side context with its certificate configured.

    Yields:
        ``https://127.0.0.1:<port>/``.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
