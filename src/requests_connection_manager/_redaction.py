"""Redaction of secrets in URLs, headers, free text and nested data.

Everything the library writes into a log line, a stats value, a ``repr`` or an
exception message passes through one of these functions first.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "is_sensitive_field",
    "redact_text",
    "redact_url",
]

#: The text that replaces a secret.
REDACTED = "[REDACTED]"

# Field names that are secrets wherever they appear (compared after lower-casing
# and turning "-" into "_").
_EXACT = frozenset(
    {
        "key",
        "sig",
        "auth",
        "pass",
        "pwd",
        "passwd",
        "cookie",
        "set_cookie",
        "sessionid",
        "sid",
    }
)
# Parts that make a field name sensitive when they occur anywhere in it.
_PARTS = (
    "password",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "authentication",
    "auth_",
    "_auth",
    "signature",
    "credential",
    "private_key",
    "privatekey",
    "passwd",
    "pwd",
    "jwt",
    "session",
    "bearer",
)

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@?#]*@")
# A value ends at a separator, whitespace, a quote, or a closing bracket that wraps the URL.
_QUERY_PAIR = re.compile(
    r"(?P<sep>[?&;])(?P<name>[^=&;#\s]+)=(?P<value>\[REDACTED\]|[^&;#\s'\")\]>]*)"
)


def is_sensitive_field(name: str) -> bool:
    """Tell whether a header, query parameter or JSON key names a secret.

    Args:
        name: The field name, in any case; ``-`` and ``_`` are treated alike.

    Returns:
        True when values under this name must never be shown.
    """
    norm = name.strip().lower().replace("-", "_")
    if norm in _EXACT:
        return True
    return any(part in norm for part in _PARTS)


def _redact_pair(match: re.Match[str]) -> str:
    if is_sensitive_field(match.group("name")):
        return f"{match.group('sep')}{match.group('name')}={REDACTED}"
    return match.group(0)


def redact_text(text: str) -> str:
    """Redact user-info and sensitive query values in URLs embedded in free text.

    Args:
        text: Any text, for example an exception message that quotes a URL.

    Returns:
        The text with ``user:password@`` and secret query values replaced.
    """
    if "@" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    return _QUERY_PAIR.sub(_redact_pair, text)


def redact_url(url: str) -> str:
    """Return ``url`` with user-info and sensitive query values redacted.

    Args:
        url: An absolute or relative URL.

    Returns:
        The URL, safe to log.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_sensitive_field(name) for name, _ in pairs):
            query = urlencode(
                [(n, REDACTED if is_sensitive_field(n) else v) for n, v in pairs],
                safe="[]",
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
