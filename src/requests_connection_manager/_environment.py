"""The environment's part of a call's settings, exactly as requests computes it, once per change.

requests merges the environment into every call: proxies (``getproxies()`` and the
``no_proxy`` rules, a pure-Python scan of ``os.environ``), the CA bundle
(``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``) and ``.netrc`` credentials (looked up on
disk). Each answer depends only on the environment, the request's host and (for
``.netrc``) the file; :class:`Environment` computes it with requests' own functions and
keeps it until what it depends on changes:

- the environment: compared with the copy taken when the answers were computed, on every
  call (CPython's ``os.environ`` keeps its data in a dict, compared in C in about a
  microsecond; anything else — a test that replaces ``os.environ`` with a plain dict,
  ``mock.patch("os.environ", {...})`` — is compared through the mapping interface);
- the proxies of a host: per ``(host, port, no_proxy argument)``, for that environment;
- ``.netrc``: per host, for the file's path, inode, size and modification time (one
  ``stat`` per candidate file per call, as requests itself does).

Only where ``urllib.request.getproxies`` reads the environment alone (not macOS or Windows,
which also read system settings); elsewhere :attr:`Environment.usable` is False and the
session runs requests' own code. requests' functions are looked up where requests looks
them up, at every call: a test that patches one of them (``requests.sessions.
get_netrc_auth``, ``requests.utils.proxy_bypass``, ...) gets its patch, and nothing is
remembered while a patch is in place.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.request
from typing import Any, Callable, Optional, TypeVar, cast
from urllib.parse import urlsplit

import requests.sessions
import requests.utils
from requests.utils import NETRC_FILES

from ._originals import Originals
from ._prepare import merge_setting

__all__ = ["Environment", "host_key"]

# Hosts (and .netrc answers) remembered per environment; beyond this the cache starts over.
_CACHE_SIZE = 1024
_T = TypeVar("_T")
_MISSING: Any = object()
# A URL's beginning up to the end of its authority, as written.
_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


# requests' own functions, as imported: while one is patched, nothing is remembered.
_LOOKED_UP = Originals(
    (requests.sessions, "get_environ_proxies", "get_netrc_auth"),
    (requests.utils, "should_bypass_proxies", "proxy_bypass", "getproxies"),
)


def host_key(url: Any) -> Any:
    """What decides ``url``'s host and port for requests' lookups, or None (let requests say).

    The URL as written up to the end of its authority (``scheme://user@host:port``):
    requests' functions read the host and port from that part alone, so two URLs with the
    same beginning get the same answers; no parsing on the way. A URL that does not begin
    that way is parsed: its host and port.
    """
    if isinstance(url, str):
        match = _AUTHORITY.match(url)
        if match is not None:
            return match.group()
    try:
        parts = urlsplit(url)
        return (parts.hostname, parts.port)
    except (ValueError, TypeError):
        return None


def _without_userinfo(url: str) -> str:
    """``url`` up to the end of its authority, without ``user:password@`` (as urlsplit reads it)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class Environment:
    """requests' environment lookups, remembered until what they depend on changes."""

    def __init__(self) -> None:
        self.usable = urllib.request.getproxies is urllib.request.getproxies_environment
        self._lock = threading.Lock()
        self._environ: Any = None
        self._seen: Optional[dict[Any, Any]] = None
        self._proxies: dict[tuple[Any, ...], dict[str, str]] = {}
        self._netrc: dict[tuple[Any, ...], Optional[tuple[str, str]]] = {}
        self._netrc_paths: tuple[str, ...] = ()
        self.ca_bundle: Optional[str] = None

    def refresh(self) -> None:
        """Start over if ``os.environ`` changed since the answers were computed."""
        environ = os.environ
        data = getattr(environ, "_data", None)
        current = data if isinstance(data, dict) else environ
        if self._seen is not None and environ is self._environ and self._seen == current:
            return
        snapshot = dict(current)
        netrc_file = environ.get("NETRC")
        paths = (netrc_file,) if netrc_file is not None else tuple(f"~/{f}" for f in NETRC_FILES)
        with self._lock:
            self._proxies = {}
            self._netrc = {}
            self._netrc_paths = tuple(os.path.expanduser(path) for path in paths)
            self.ca_bundle = environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE")
            self._seen, self._environ = snapshot, environ

    def merge_settings(
        self, session: Any, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        """``session.merge_environment_settings(...)``: requests' steps, with these answers.

        Args:
            session: The ``requests.Session`` whose settings the call's are merged with.
            url: The request's URL.
            proxies: The call's proxies (the environment's are added to it).
            stream: The call's ``stream``.
            verify: The call's ``verify``.
            cert: The call's ``cert``.

        Returns:
            ``proxies``, ``stream``, ``verify`` and ``cert`` for the call.
        """
        if session.trust_env:
            self.refresh()
            no_proxy = proxies.get("no_proxy") if proxies is not None else None
            env_proxies = self.proxies(url, no_proxy)
            if proxies is not None:
                for key, value in env_proxies.items():
                    proxies.setdefault(key, value)
            if verify is True or verify is None:
                verify = self.ca_bundle or verify
        return {
            "proxies": merge_setting(proxies, session.proxies),
            "stream": merge_setting(stream, session.stream),
            "verify": merge_setting(verify, session.verify),
            "cert": merge_setting(cert, session.cert),
        }

    def proxies(self, url: str, no_proxy: Optional[str]) -> dict[str, str]:
        """``get_environ_proxies(url, no_proxy)``, once per host and environment."""
        lookup = requests.sessions.get_environ_proxies
        if not _LOOKED_UP.intact():
            return lookup(url, no_proxy=no_proxy)
        host = host_key(url)
        if host is None:
            return lookup(url, no_proxy=no_proxy)
        key = (host, no_proxy)
        return self._remember(self._proxies, key, lambda: lookup(url, no_proxy=no_proxy))

    def netrc_auth(self, url: str) -> Optional[tuple[str, str]]:
        """``get_netrc_auth(url)``, once per host and state of the file.

        Asked for the URL without its user-info: requests before 2.32.4 looked the entry up
        by ``netloc.split(":")[0]``, so ``http://example.com:@evil.com/`` got
        ``example.com``'s credentials (CVE-2024-47081); later versions use the host name,
        which is what this asks for on every version.
        """
        lookup = requests.sessions.get_netrc_auth
        if not _LOOKED_UP.intact():
            return lookup(url)
        state = None
        for path in self._netrc_paths:
            try:
                stat = os.stat(path)
            except (OSError, ValueError):
                continue
            state = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns)
            break
        if state is None:
            return None  # no file: requests returns None too
        host = host_key(url)
        if host is None:
            return lookup(url)
        return self._remember(self._netrc, (*state, host), lambda: lookup(_without_userinfo(url)))

    def _remember(
        self, cache: dict[tuple[Any, ...], _T], key: tuple[Any, ...], compute: Callable[[], _T]
    ) -> _T:
        found = cache.get(key, _MISSING)
        if found is not _MISSING:
            return cast("_T", found)  # not the sentinel: a value stored here
        value = compute()
        with self._lock:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[key] = value
        return value
