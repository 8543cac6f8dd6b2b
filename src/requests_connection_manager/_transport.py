"""The transport under the pipeline: requests' ``HTTPAdapter`` with pools that keep deadlines.

:class:`Transport` is the base of the pipeline's adapter. It adds to ``HTTPAdapter``, all
through urllib3's and requests' documented extension points:

- connection classes that attach themselves to the current attempt's
  :class:`~._watchdog.Watch` (so the watchdog can cut them at the deadline) and pools that
  detach them when they come back;
- with ``pool_block=True``, a wait for a free pooled connection that ends at the call's
  deadline or when the manager closes (urllib3 would wait forever);
- the attempt's ``ssl.SSLContext`` in the pool key (``build_connection_pool_key_attributes``),
  so a new context gets new connections;
- ``close()`` that closes every pooled connection (urllib3 2's ``PoolManager.clear()`` only
  forgets its pools);
- the pool key's parts (``build_connection_pool_key_attributes``) remembered per URL
  beginning and TLS settings, where they cannot change: requests parses the URL, looks for
  a proxy and asks the file system whether ``verify`` is a directory on every call;
- ``build_response`` as requests builds it, cheaper (:mod:`._response`);
- ``request_url`` without proxies remembered per URL (a pure function of the URL there:
  requests parses it twice to find no proxy in an empty mapping);
- after ``os.fork()``, fresh pools in the child: the parent's sockets are left alone (not
  closed, not shared: two processes never write to one TCP stream).
"""

from __future__ import annotations

import ssl
import threading
from typing import Any, Optional, Union

import requests.adapters
from requests.adapters import HTTPAdapter
from requests.models import PreparedRequest
from urllib3 import connection, connectionpool
from urllib3.exceptions import ClosedPoolError, EmptyPoolError
from urllib3.util.retry import Retry

from . import _forksafe
from ._environment import host_key
from ._originals import Originals
from ._response import build_response
from ._response import usable as response_usable
from ._watchdog import CURRENT, Watchdog

__all__ = ["Transport"]

# How long one look for a free pooled connection lasts before the deadline and the
# manager's close are checked again.
_POOL_SLICE = 0.05


class _Watched:
    """Connection mixin: attach to the current attempt's watch."""

    _rcm_watch: Any = None
    _rcm_sock: Any = None

    def _new_conn(self) -> Any:
        sock = super()._new_conn()  # type: ignore[misc]
        self._rcm_sock = sock  # before TLS: the handshake can be cut too
        watch = CURRENT.get()
        if watch is not None:
            watch.attach(self)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> Any:
        watch = CURRENT.get()
        if watch is not None:
            watch.attach(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]


# The classes keep urllib3's names: they appear in error messages ("HTTPConnectionPool(
# host=..., port=...): Max retries exceeded ..."), which must read as requests' do.


class HTTPConnection(_Watched, connection.HTTPConnection):
    """``urllib3.HTTPConnection`` that the watchdog can cut at the deadline."""


class HTTPSConnection(_Watched, connection.HTTPSConnection):
    """``urllib3.HTTPSConnection`` that the watchdog can cut at the deadline."""


class _Pool:
    """Pool mixin: deadline-aware waits for a connection; detach on return."""

    block: bool

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        watch = CURRENT.get()
        if not self.block or watch is None:
            return super()._get_conn(timeout)  # type: ignore[misc]
        clock = watch.clock
        end = None if timeout is None else clock() + timeout
        while True:
            try:
                return super()._get_conn(timeout=_POOL_SLICE)  # type: ignore[misc]
            except EmptyPoolError:
                if watch.closed.is_set():
                    raise ClosedPoolError(self, "Pool is closed.") from None  # type: ignore[arg-type]
                now = clock()
                if watch.deadline is not None and now >= watch.deadline:
                    watch.fired = True
                    raise
                if end is not None and now >= end:
                    raise

    def _put_conn(self, conn: Any) -> None:
        watch = getattr(conn, "_rcm_watch", None)
        if watch is not None:
            watch.detach(conn)
        super()._put_conn(conn)  # type: ignore[misc]


class HTTPConnectionPool(_Pool, connectionpool.HTTPConnectionPool):
    """``urllib3.HTTPConnectionPool`` of watched connections."""

    ConnectionCls = HTTPConnection


class HTTPSConnectionPool(_Pool, connectionpool.HTTPSConnectionPool):
    """``urllib3.HTTPSConnectionPool`` of watched connections."""

    ConnectionCls = HTTPSConnection


_POOL_CLASSES = {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}

# requests' own methods and the helpers they look up, as imported: while one is
# replaced, requests' method runs.
_POOL_LOOKUP = Originals(
    (HTTPAdapter, "get_connection_with_tls_context", "build_connection_pool_key_attributes"),
    (requests.adapters, "_urllib3_request_context"),
)
_REQUEST_URL = Originals(
    (HTTPAdapter, "request_url"),
    (requests.adapters, "select_proxy", "urlparse", "urldefragauth"),
    (PreparedRequest, "path_url"),
)
# Pool key parts and request paths remembered per transport (each cleared when full).
_KEY_PARTS_SIZE = 256
_PATHS_SIZE = 1024
_PATH_URL_CHARS = 2048


def _strings(value: Any) -> bool:
    """A tuple of str (a client certificate and its key)."""
    return isinstance(value, tuple) and all(isinstance(part, str) for part in value)


def _close_pools(manager: Any) -> None:
    """Close every pool of a urllib3 pool manager (anything else is left to its clear())."""
    keys = getattr(getattr(manager, "pools", None), "keys", None)
    try:
        listed = list(keys()) if callable(keys) else []
    except TypeError:  # not a pool container (a test double): nothing of ours to close
        return
    for key in listed:
        try:
            pool = manager.pools[key]
        except KeyError:
            continue
        pool.close()


class Transport(HTTPAdapter):
    """``HTTPAdapter`` with watched pools; one attempt per ``send`` (no urllib3 retries).

    Args:
        pool_connections: Host pools to cache.
        pool_maxsize: Connections kept per host pool.
        pool_block: Wait for a free pooled connection instead of opening an extra one.
        clock: Monotonic seconds for the watchdog (the manager's clock).
    """

    def __init__(
        self,
        pool_connections: int = 10,
        pool_maxsize: int = 10,
        pool_block: bool = False,
        clock: Any = None,
    ) -> None:
        self._rcm_clock = clock
        _forksafe.register(self)
        self._rcm_closed = False  # closed, and not used since
        self._rcm_watchdog: Optional[Watchdog] = None
        self._rcm_watchdog_lock = threading.Lock()
        # One attempt per inner send, as plain requests does by default: retries are
        # decided by the pipeline, not inside urllib3.
        super().__init__(
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            max_retries=Retry(0, read=False, redirect=False, raise_on_status=False),
            pool_block=pool_block,
        )

    def send(self, *args: Any, **kwargs: Any) -> Any:
        """One attempt, as ``HTTPAdapter.send`` (the pipeline calls it once per attempt)."""
        self._rcm_closed = False
        return super().send(*args, **kwargs)

    @property
    def watchdog(self) -> Watchdog:
        """The watchdog of this transport's attempts (started on first use)."""
        watchdog = self._rcm_watchdog
        if watchdog is None:
            with self._rcm_watchdog_lock:
                watchdog = self._rcm_watchdog
                if watchdog is None:
                    watchdog = self._rcm_watchdog = Watchdog(self._rcm_clock)
        return watchdog

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Create the pool manager as requests does, with watched pools."""
        # Made here: requests' __setstate__ (unpickling) restores only its own attributes.
        self._rcm_key_parts: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}
        self._rcm_paths: dict[str, str] = {}
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Create a proxy manager as requests does, with watched pools (not for SOCKS)."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager

    def get_connection_with_tls_context(
        self,
        request: Any,
        verify: Any,
        proxies: Any = None,
        cert: Any = None,
    ) -> Any:
        """Return the pool for ``request``, as requests does.

        Without proxies, the pool key's parts of a URL beginning (``scheme://authority``) and
        TLS settings seen before are used again, for ``https://`` with ``verify`` True, False
        or None and for ``http://``. An ``https://`` URL with a CA path is looked up
        requests' way every time: requests asks the file system whether the path is a
        directory. For ``http://`` that answer is read once (if the path later turns into a
        directory, requests would key a new pool; urllib3 makes HTTP pools without TLS
        settings, so both pools behave alike). The pool manager still finds (or makes) the
        pool, so its least-recently-used order and its pools are those of plain requests.
        """
        key = self._key_parts_key(request, verify, proxies, cert)
        parts = None if key is None else self._rcm_key_parts.get(key)
        if parts is None:
            if key is None:
                return super().get_connection_with_tls_context(request, verify, proxies, cert)
            try:
                parts = self.build_connection_pool_key_attributes(request, verify, cert)
            except ValueError:  # requests' way words the InvalidURL
                return super().get_connection_with_tls_context(request, verify, proxies, cert)
            if len(self._rcm_key_parts) >= _KEY_PARTS_SIZE:
                self._rcm_key_parts.clear()
            self._rcm_key_parts[key] = parts
        host_params, pool_kwargs = parts
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=dict(pool_kwargs))

    def _key_parts_key(
        self, request: Any, verify: Any, proxies: Any, cert: Any
    ) -> Optional[tuple[Any, ...]]:
        """What the pool key's parts depend on, or None: look them up requests' way."""
        url = request.url
        if proxies or not _POOL_LOOKUP.intact() or not isinstance(url, str):
            return None
        if not isinstance(verify, (bool, type(None))) and url[:5].lower() != "http:":
            return None  # a CA path for https: requests asks the file system each time
        prefix = host_key(url)
        if not isinstance(prefix, str):
            return None
        if not (cert is None or isinstance(cert, str) or _strings(cert)):
            return None
        watch = CURRENT.get()
        context = None if watch is None else watch.ssl_context
        return (prefix, verify, cert, context)

    def request_url(self, request: Any, proxies: Any) -> str:
        """The URL urllib3 is asked for, as requests makes it; remembered without proxies.

        Without proxies it depends on the request's URL alone (the path and query, as
        requests' version of this method writes them), so the answer of requests' method
        is kept per URL string. With proxies, or while the method is patched, requests'
        runs every time.
        """
        url = request.url
        if proxies or type(url) is not str or not _REQUEST_URL.intact():
            return super().request_url(request, proxies)
        paths = self._rcm_paths
        found = paths.get(url)
        if found is None:
            found = super().request_url(request, proxies)
            if len(url) <= _PATH_URL_CHARS:
                if len(paths) >= _PATHS_SIZE:
                    paths.clear()
                paths[url] = found
        return found

    def build_response(self, req: Any, resp: Any) -> Any:
        """Build the ``requests.Response`` as requests does (:mod:`._response`: cheaper).

        While ``HTTPAdapter.build_response``, or a function it looks up in
        ``requests.adapters``, is replaced, requests' method builds it.
        """
        if not response_usable():
            return super().build_response(req, resp)
        return build_response(self, req, resp)

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Union[bool, str], cert: Any = None
    ) -> tuple[Any, Any]:
        """Add the attempt's ``ssl_context`` (if any) to requests' pool key for HTTPS.

        The context is part of urllib3's pool key, so a new context (``set_ssl_context``,
        or an endpoint's own) gets new connections from the next request on.
        """
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        watch = CURRENT.get()
        context: Optional[ssl.SSLContext] = None if watch is None else watch.ssl_context
        if context is not None and host_params.get("scheme") == "https":
            extended: dict[str, Any] = dict(pool_kwargs)
            extended["ssl_context"] = context
            return host_params, extended
        return host_params, pool_kwargs

    def close(self) -> None:
        """Close every pooled connection, then drop the pools; stop the watchdog.

        urllib3 2's ``PoolManager.clear()`` forgets its pools without closing them (they
        close when garbage-collected, which a held response delays), so they are closed
        here first. Connections still checked out close when they are released.
        """
        if self._rcm_closed:
            return  # mounted for two prefixes: the session closes it twice
        self._rcm_closed = True
        try:
            for manager in (self.poolmanager, *self.proxy_manager.values()):
                _close_pools(manager)
        finally:
            super().close()
            # URLs and URL beginnings (user-info and all) do not outlive the manager.
            self._rcm_paths.clear()
            self._rcm_key_parts.clear()
            watchdog = self._rcm_watchdog
            if watchdog is not None:
                watchdog.close()

    def reinit_after_fork(self) -> None:
        """In a forked child: fresh pools and watchdog; the parent's sockets untouched."""
        self._rcm_closed = False
        self._rcm_watchdog_lock = threading.Lock()
        self._rcm_watchdog = None
        self.proxy_manager = {}
        sizes = (getattr(self, name) for name in ("_pool_connections", "_pool_maxsize"))
        self.init_poolmanager(*sizes, block=getattr(self, "_pool_block", False))
