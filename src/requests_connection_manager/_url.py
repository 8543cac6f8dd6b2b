"""One URL identity per request: parsed and normalised once, used everywhere.

The host table (limiter, breaker, pause, stats), endpoint matching and the credential
origin checks all ask the same question — *which host is this?* — and must get the same
answer for every spelling of one host. :func:`target_of` answers it once per request hop:

- scheme lower-cased; only ``http`` and ``https`` have a target;
- host lower-cased, one trailing dot removed (``api.example.com.`` is ``api.example.com``);
- an IPv6 address in its compressed form (``[0:0:0:0:0:0:0:1]`` and ``[0::1]`` are ``[::1]``),
  its zone kept;
- an IPv4 address in dotted-quad form (``127.1`` and ``0x7f.0.0.1`` are ``127.0.0.1``, as
  the system resolver reads them);
- an international name in its IDNA form (``bücher.example`` is ``xn--bcher-kva.example``,
  encoded as requests encodes it: IDNA 2008 with UTS 46 mapping);
- the effective port (80 or 443 filled in from the scheme);
- the path with ``.`` and ``..`` segments resolved, ``"/"`` when empty.

The origin part of the work is cached per ``(scheme, netloc)``, so a host called again
costs a dictionary lookup; the cache is bounded.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import NamedTuple, Optional
from urllib.parse import urlsplit

__all__ = ["DEFAULT_PORTS", "Target", "normalise_host", "target_of"]

#: The default port of each scheme a request can have.
DEFAULT_PORTS = {"http": 80, "https": 443}

# Origins remembered; beyond this the cache is emptied and refilled (hosts are few).
_CACHE_SIZE = 4096
# Netlocs longer than this are not cached (a hostile URL must not fill memory).
_CACHEABLE = 300
_IPV4_CHARS = frozenset("0123456789abcdefx.")


class Target(NamedTuple):
    """The identity of one request URL.

    Attributes:
        scheme: ``"http"`` or ``"https"``.
        host: The normalised host (an IPv6 address without brackets).
        port: The effective port.
        path: The path, dot segments resolved, ``"/"`` when empty.
        key: ``scheme://host:port`` (IPv6 in brackets): the host key of the host table.
    """

    scheme: str
    host: str
    port: int
    path: str
    key: str


class _Origin(NamedTuple):
    scheme: str
    host: str
    port: int
    key: str


_origins: dict[tuple[str, str], Optional[_Origin]] = {}
_MISSING = _Origin("", "", 0, "")
_lock = threading.Lock()


def normalise_host(host: str) -> Optional[str]:
    """Return the one spelling of ``host`` the library uses, or None if it is not a host.

    Args:
        host: A host as it appears in a URL (IPv6 without brackets), in any case.

    Returns:
        The normalised host (see the module docstring); None for an empty host or a name
        that IDNA cannot encode.
    """
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        return None
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.replace("%25", "%", 1)).compressed
        except ValueError:
            return host
    if not host.isascii():
        return _idna(host)
    if _IPV4_CHARS.issuperset(host) and host[-1].isdigit():
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return host
    return host


def _idna(host: str) -> Optional[str]:
    try:
        import idna  # requests' own dependency: the same encoding it sends

        return idna.encode(host, uts46=True).decode("ascii")
    except (ImportError, UnicodeError, ValueError):  # idna.IDNAError is a UnicodeError
        try:
            return host.encode("idna").decode("ascii")
        except UnicodeError:
            return None


def _origin(scheme: str, hostname: Optional[str], port: Optional[int]) -> Optional[_Origin]:
    default_port = DEFAULT_PORTS.get(scheme)
    if default_port is None or not hostname:
        return None
    host = normalise_host(hostname)
    if host is None:
        return None
    effective = default_port if port is None else port
    shown = f"[{host}]" if ":" in host else host
    return _Origin(scheme, host, effective, f"{scheme}://{shown}:{effective}")


def _resolve_dots(path: str) -> str:
    """Resolve ``.`` and ``..`` segments the way a server would (RFC 3986, 5.2.4)."""
    segments = path.split("/")
    out: list[str] = []
    for segment in segments[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/" + "/".join(out)


def target_of(url: str) -> Optional[Target]:
    """Return the identity of ``url``.

    Args:
        url: An absolute URL.

    Returns:
        The target; None when the URL cannot be parsed, has no host, has a bad port or a
        scheme other than ``http`` or ``https``.

    Raises:
        TypeError: ``url`` is not a str.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    cache_key = (scheme, parts.netloc)
    origin = _origins.get(cache_key, _MISSING)
    if origin is _MISSING:
        try:
            port = parts.port
        except ValueError:
            return None
        origin = _origin(scheme, parts.hostname, port)
        if len(parts.netloc) <= _CACHEABLE:
            with _lock:
                if len(_origins) >= _CACHE_SIZE:
                    _origins.clear()
                _origins[cache_key] = origin
    if origin is None:
        return None
    path = parts.path or "/"
    if "." in path:
        path = _resolve_dots(path)
    return Target(origin.scheme, origin.host, origin.port, path, origin.key)
