"""Endpoint patterns: per-endpoint settings chosen by a request's host, never by substring.

A pattern names an endpoint by its *host* (exact, or a ``*.`` wildcard over subdomains),
optionally narrowed by scheme, port and a path prefix::

    api.example.com
    *.example.com
    https://api.example.com:8443/v2
    [::1]:8080

A URL is split once with :func:`urllib.parse.urlsplit`; the pattern is compared with the
parsed host, port, scheme and path. The query, the fragment and any userinfo never take
part, so ``http://evil.test/?q=api.example.com`` and ``http://api.example.com.evil.test/``
do not match ``api.example.com``.

An :class:`EndpointTable` holds ``(pattern, value)`` entries and returns the most specific
entry that matches a URL.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, Optional, TypeVar

from ._url import DEFAULT_PORTS, Target, normalise_host, target_of

__all__ = ["EndpointPattern", "EndpointTable", "split_url"]

T = TypeVar("T")

_DEFAULT_PORTS = DEFAULT_PORTS

_ACCEPTED = (
    "expected [http:// or https://]HOST[:PORT][/PATH] where HOST is a name "
    "('api.example.com', 'localhost'), an IPv4 address ('127.0.0.1'), a bracketed IPv6 "
    "address ('[::1]') or a wildcard over subdomains ('*.example.com')"
)

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_LABEL_RE = re.compile(r"[a-z0-9_-]+")
_PORT_RE = re.compile(r"[0-9]{1,5}")


def _refuse(text: str, problem: str) -> ValueError:
    return ValueError(f"invalid endpoint pattern {text!r}: {problem}; {_ACCEPTED}")


def split_url(url: str) -> Optional[tuple[str, str, int, str]]:
    """Split ``url`` into the parts endpoint patterns are matched against.

    Args:
        url: An absolute ``http`` or ``https`` URL.

    Returns:
        ``(scheme, host, port, path)`` of the URL's one identity (:func:`._url.target_of`:
        host lower-cased, without a trailing dot, IPv6 compressed, IDNA-encoded; the
        effective port; the path with dot segments resolved). None when the URL cannot be
        parsed, has no host, has a bad port or a scheme other than ``http`` or ``https``;
        such a URL matches no pattern.

    Raises:
        TypeError: ``url`` is not a str.
    """
    target = target_of(url)
    if target is None:
        return None
    return target.scheme, target.host, target.port, target.path


def _parse_host(text: str, host_text: str) -> tuple[str, bool]:
    """Validate and normalise the host part of a pattern; return ``(host, wildcard)``."""
    if host_text.startswith("["):
        if not host_text.endswith("]"):
            raise _refuse(text, "an IPv6 address must be closed with ']'")
        inner = host_text[1:-1]
        try:
            address = ipaddress.IPv6Address(inner.replace("%25", "%", 1)).compressed
        except ValueError:
            raise _refuse(text, f"{host_text!r} is not a valid IPv6 address") from None
        return address, False
    wildcard = host_text.startswith("*.")
    name = host_text[2:] if wildcard else host_text
    if "*" in name or host_text == "*":
        raise _refuse(text, "'*' is accepted only as a whole leading label, as in '*.example.com'")
    normalised = normalise_host(name) if name else None
    if normalised is None:
        raise _refuse(
            text,
            "the pattern has no host"
            if not name.strip(".")
            else f"{host_text!r} is not a host name IDNA can encode",
        )
    name = normalised
    labels = name.split(".")
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            raise _refuse(
                text,
                f"{host_text!r} is not a host name (labels of letters, digits, '-' or '_' "
                "separated by single dots)",
            )
    if wildcard and labels[-1].isdigit():
        raise _refuse(text, "a wildcard takes a domain name, not an IP address")
    return name, wildcard


def _split_authority(text: str, authority: str) -> tuple[str, str]:
    """Split a pattern's authority into the host and what follows it (``":PORT"`` or "")."""
    if authority.startswith("["):
        end = authority.find("]")
        host_text = authority if end < 0 else authority[: end + 1]
        after = "" if end < 0 else authority[end + 1 :]
        if after and not after.startswith(":"):
            raise _refuse(text, "only ':PORT' may follow a bracketed IPv6 address")
        return host_text, after
    if "[" in authority or "]" in authority:
        raise _refuse(text, "'[...]' is accepted only around a whole IPv6 address")
    if authority.count(":") > 1:
        raise _refuse(text, "an IPv6 address must be in brackets, as in '[::1]'")
    host_text, colon, port_part = authority.partition(":")
    return host_text, colon + port_part


def _parse_port(text: str, port_text: str) -> int:
    """Validate the port part of a pattern."""
    if not _PORT_RE.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise _refuse(text, f"bad port {port_text!r}: a port is a number from 1 to 65535")
    return int(port_text)


@dataclass(frozen=True)
class EndpointPattern:
    """One endpoint pattern, parsed and normalised. Build it with :meth:`parse`.

    Attributes:
        text: The pattern as the user wrote it.
        scheme: ``"http"`` or ``"https"``, or None to match either.
        host: The host, lower-cased, without a trailing dot (an IPv6 address without
            brackets); for a wildcard, the domain after ``*.``.
        wildcard: True for ``*.domain``: any subdomain of ``host``, at any depth, but not
            ``host`` itself.
        port: The port a URL's effective port must equal, or None to match any port.
        path: The path prefix, matched on segment boundaries, or ``""`` for any path.
    """

    text: str
    scheme: Optional[str]
    host: str
    wildcard: bool
    port: Optional[int]
    path: str

    @classmethod
    def parse(cls, text: str) -> EndpointPattern:
        """Parse and validate a pattern.

        Args:
            text: ``[http:// or https://]HOST[:PORT][/PATH]`` where HOST is a name, an
                IPv4 address, a bracketed IPv6 address or ``*.domain``.

        Returns:
            The parsed pattern.

        Raises:
            TypeError: ``text`` is not a str.
            ValueError: ``text`` is empty, contains whitespace, has no host, has a query,
                fragment or userinfo, a bad port, a scheme other than ``http`` or
                ``https``, a ``*`` other than a leading ``*.`` label, or a ``.`` or
                ``..`` path segment. The message quotes ``text``.
        """
        if not isinstance(text, str):
            raise TypeError(f"an endpoint pattern must be a str, got {type(text).__name__}")
        if not text or text.isspace():
            raise _refuse(text, "the pattern is empty")
        if any(char.isspace() for char in text):
            raise _refuse(text, "the pattern contains whitespace")
        if "?" in text or "#" in text:
            raise _refuse(text, "a query ('?') or fragment ('#') is not accepted")

        rest = text
        scheme: Optional[str] = None
        found = _SCHEME_RE.match(rest)
        if found:
            scheme = found.group(1).lower()
            if scheme not in _DEFAULT_PORTS:
                raise _refuse(text, f"unsupported scheme {found.group(1)!r}")
            rest = rest[found.end() :]

        authority, slash, path = rest.partition("/")
        path = slash + path
        if not authority:
            raise _refuse(text, "the pattern has no host")
        if "@" in authority:
            raise _refuse(text, "userinfo ('user@') is not accepted")

        host_text, after = _split_authority(text, authority)
        host, wildcard = _parse_host(text, host_text)
        port = _parse_port(text, after[1:]) if after else None

        if "*" in path:
            raise _refuse(text, "'*' is accepted only as a whole leading label of the host")
        if any(segment in (".", "..") for segment in path.split("/")):
            raise _refuse(text, "'.' and '..' path segments are not accepted")
        if path == "/":
            path = ""
        return cls(text=text, scheme=scheme, host=host, wildcard=wildcard, port=port, path=path)

    def matches(self, url: str) -> bool:
        """Return True if ``url`` is on this endpoint.

        Args:
            url: An absolute URL. The host is taken from the parsed URL; the query,
                fragment and userinfo never take part.

        Returns:
            Whether the URL's host, scheme, effective port and path all match. False for
            a URL that cannot be parsed or has no host.

        Raises:
            TypeError: ``url`` is not a str.
        """
        target = target_of(url)
        if target is None:
            return False
        return self._host_matches(target.host) and self._rest_matches(
            target.scheme, target.port, target.path
        )

    @property
    def specificity(self) -> tuple[int, ...]:
        """A sort key: of two patterns that match a URL, the larger key is more specific.

        The order is: an exact host over a wildcard; for wildcards, the longer domain
        (more labels); the longer path prefix; a port over none; a scheme over none.
        """
        return (
            0 if self.wildcard else 1,
            self.host.count(".") + 1 if self.wildcard else 0,
            len(self.path),
            0 if self.port is None else 1,
            0 if self.scheme is None else 1,
        )

    def _host_matches(self, host: str) -> bool:
        if not self.wildcard:
            return host == self.host
        return len(host) > len(self.host) + 1 and host.endswith("." + self.host)

    def _rest_matches(self, scheme: str, port: int, path: str) -> bool:
        """Check scheme, port and path of an already split URL (the host is checked apart)."""
        if self.scheme is not None and scheme != self.scheme:
            return False
        if self.port is not None and port != self.port:
            return False
        prefix = self.path
        if not prefix:
            return True
        if prefix.endswith("/"):
            return path.startswith(prefix)
        return path == prefix or path.startswith(prefix + "/")


class EndpointTable(Generic[T]):
    """``(pattern, value)`` entries; :meth:`match` finds the most specific one for a URL.

    Immutable; safe to share between threads; replaced (not mutated) when configs change.
    Entries are indexed by host, so a lookup costs one dict probe for the exact host plus
    one per label of the host for wildcards, then a scan of the (few) patterns for that
    host. Of entries equally specific, the one given first wins.
    """

    __slots__ = ("_entries", "_exact", "_wildcards")

    def __init__(self, entries: Iterable[tuple[EndpointPattern, T]] = ()) -> None:
        """Build the table.

        Args:
            entries: ``(pattern, value)`` pairs, in order of preference for ties.

        Raises:
            TypeError: A pattern is not an :class:`EndpointPattern`.
        """
        listed: list[tuple[EndpointPattern, T]] = []
        for pattern, value in entries:
            if not isinstance(pattern, EndpointPattern):
                raise TypeError(
                    "EndpointTable entries must be (EndpointPattern, value) pairs, got a "
                    f"{type(pattern).__name__} pattern; use EndpointPattern.parse()"
                )
            listed.append((pattern, value))
        exact: dict[str, list[tuple[EndpointPattern, T]]] = {}
        wildcards: dict[str, list[tuple[EndpointPattern, T]]] = {}
        # A stable sort keeps the order given among equally specific entries.
        for entry in sorted(listed, key=lambda item: item[0].specificity, reverse=True):
            index = wildcards if entry[0].wildcard else exact
            index.setdefault(entry[0].host, []).append(entry)
        self._entries: tuple[tuple[EndpointPattern, T], ...] = tuple(listed)
        self._exact = {host: tuple(found) for host, found in exact.items()}
        self._wildcards = {host: tuple(found) for host, found in wildcards.items()}

    def match(self, url: str) -> Optional[tuple[EndpointPattern, T]]:
        """Return the most specific entry whose pattern matches ``url``.

        Args:
            url: An absolute URL.

        Returns:
            The ``(pattern, value)`` entry, or None when no pattern matches, the table is
            empty, or the URL cannot be parsed or has no host.

        Raises:
            TypeError: ``url`` is not a str (checked only when the table is not empty).
        """
        if not self._entries:
            return None
        return self.match_target(target_of(url))

    def match_target(self, target: Optional[Target]) -> Optional[tuple[EndpointPattern, T]]:
        """Return the most specific entry whose pattern matches an already parsed URL.

        Args:
            target: The URL's identity (:func:`._url.target_of`), or None.

        Returns:
            The ``(pattern, value)`` entry, or None.
        """
        if not self._entries or target is None:
            return None
        scheme, host, port, path = target.scheme, target.host, target.port, target.path
        for pattern, value in self._exact.get(host, ()):
            if pattern._rest_matches(scheme, port, path):
                return pattern, value
        if self._wildcards:
            # Longest domain first: drop one leading label at a time. The host itself is
            # never tried, as a wildcard does not match its own domain, and neither is what
            # follows a leading dot, as a subdomain label is never empty.
            dot = host.find(".", 1)
            while dot >= 0:
                for pattern, value in self._wildcards.get(host[dot + 1 :], ()):
                    if pattern._rest_matches(scheme, port, path):
                        return pattern, value
                dot = host.find(".", dot + 1)
        return None

    def __iter__(self) -> Iterator[tuple[EndpointPattern, T]]:
        """Iterate over the entries in the order they were given."""
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __repr__(self) -> str:
        texts = ", ".join(repr(pattern.text) for pattern, _ in self._entries)
        return f"EndpointTable([{texts}])"
