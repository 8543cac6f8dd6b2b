"""Redaction: secrets never reach a log line, a stat, a ``repr`` or an exception message.

Two complementary rules, both applied wherever the library writes text:

- **by name**: values under sensitive field names (``Authorization``, ``api_key``,
  ``password``, ``token``, ... see :func:`is_sensitive_field`), URL user-info and sensitive
  query parameters are replaced (:func:`redact_text`, :func:`redact_url`,
  :func:`redact_sensitive_data`);
- **by value**: every credential the manager knows and the values of the request's
  ``Authorization``, ``Proxy-Authorization``, ``Cookie`` and API-key headers are replaced
  wherever they appear, valid or not, quoted or escaped (:class:`Secrets`). This catches a
  secret quoted in a message that names no field, e.g. requests' "Invalid leading
  whitespace ... in header value: 'Bearer s3cr3t' followed by an escaped CR LF".

Every pattern here runs in time linear in its input: a 1 MB hostile URL or message costs
milliseconds. Scans that could backtrack (a scheme before ``://``, a name before ``=``) are
anchored on a delimiter found with ``str.find`` or on character classes that cannot
overlap between start positions.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SENSITIVE_HEADERS",
    "AllValues",
    "Secrets",
    "body_preview",
    "is_sensitive_field",
    "preview",
    "redact_sensitive_data",
    "redact_text",
    "redact_url",
]

#: The text that replaces a secret.
REDACTED = "[REDACTED]"

#: Request headers whose values are secrets whatever their content (lower-case).
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

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

# A URL scheme: what may stand before "://" (looked at backwards from it, at most this long).
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_MAX_SCHEME = 32
# User-info runs from "://" to the first of these; it is user-info only if that is "@".
_USERINFO = re.compile(r"[^/\s@?#]*")
# A query pair. The name cannot contain a separator, so the runs tried from two start
# positions never overlap and a failed match costs no more than its own run.
_QUERY_PAIR = re.compile(
    r"(?P<sep>[?&;])(?P<name>[^=&;#\s?]+)=(?P<value>\[REDACTED\]|[^&;#\s'\")\]>]*)"
)
_LINE_BREAK = re.compile(r"[\r\n]")
# Longest body text (in characters) that is shown in a log line.
_PREVIEW_LIMIT = 1000
# Bodies longer than this are cut to the preview size before redaction, so a
# huge body costs no more than a small one.
_FULL_REDACTION_LIMIT = 100_000
# Stands in for a container that contains itself.
_CYCLE = "[...]"
# Secret values shorter than this are not redacted by value (they would erase ordinary
# text); they are still redacted by name.
MIN_SECRET_LENGTH = 4

# Where a secret value may start: after a field name and its separator. Each
# pattern matches only the name and the separator, so a pair that follows a
# harmless one on the same line is still looked at.
# A quoted field name followed by ":" or "=", as in JSON, Python reprs or YAML.
_QUOTED_KEY = re.compile(r"""(?P<q>["'])(?P<name>[^"'\r\n]{1,200}?)(?P=q)[ \t]*[:=][ \t]*""")
# ``name=value``, as in query strings, form bodies and "key=value" log text.
_EQUALS_KEY = re.compile(r"(?<![\w.\[\]-])(?P<name>[A-Za-z_][\w.\[\]-]*)[ \t]*=(?!=)[ \t]*")
# ``Name: value`` as in header dumps.
_COLON_KEY = re.compile(r"(?<![\w.-])(?P<name>[A-Za-z_][\w.-]*)[ \t]*:[ \t]*(?=\S)")
# The end of an unquoted scalar value.
_BARE_VALUE = re.compile(r"""[^\s,;&'"}\])]*""")


def is_sensitive_field(name: str) -> bool:
    """Tell whether a header, query parameter or JSON key names a secret.

    Args:
        name: The field name, in any case; ``-`` and ``_`` are treated alike.

    Returns:
        True when values under this name must never be shown.
    """
    return _sensitive(name.strip().lower().replace("-", "_"))


@functools.lru_cache(maxsize=2048)
def _sensitive(norm: str) -> bool:
    """:func:`is_sensitive_field` of a normalised name (the same few names come back)."""
    return norm in _EXACT or any(part in norm for part in _PARTS)


def _redact_pair(match: re.Match[str]) -> str:
    if is_sensitive_field(match.group("name")):
        return f"{match.group('sep')}{match.group('name')}={REDACTED}"
    return match.group(0)


def _redact_userinfo(text: str) -> str:
    """Replace the user-info of every ``scheme://user:pass@`` in ``text``; linear time."""
    parts: list[str] = []
    done = 0
    found = text.find("://")
    while found >= 0:
        begin = found
        while begin > 0 and found - begin < _MAX_SCHEME and text[begin - 1] in _SCHEME_CHARS:
            begin -= 1
        while begin < found and not text[begin].isalpha():
            begin += 1  # a scheme starts with a letter
        start = found + 3
        end = _USERINFO.match(text, start).end()  # type: ignore[union-attr]  # always matches
        if begin < found and end < len(text) and text[end] == "@":
            parts.append(text[done:start])
            parts.append(f"{REDACTED}@")
            done = end + 1
            found = text.find("://", done)
        else:
            found = text.find("://", start)
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def redact_text(text: str) -> str:
    """Redact user-info and sensitive query values in URLs embedded in free text.

    Args:
        text: Any text, for example an exception message that quotes a URL.

    Returns:
        The text with ``user:password@`` and secret query values replaced.
    """
    if "@" in text:
        text = _redact_userinfo(text)
    if "=" in text:
        text = _QUERY_PAIR.sub(_redact_pair, text)
    return text


def redact_url(url: str) -> str:
    """Return ``url`` with user-info and sensitive query values redacted.

    Args:
        url: An absolute or relative URL.

    Returns:
        The URL, safe to log.
    """
    if "@" not in url and "=" not in url:
        return url  # no user-info, no name=value pair: nothing to hide (and no parsing)
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


class AllValues:
    """A source whose every value is a secret: cookies (a dict or a cookie jar).

    Args:
        source: A mapping of names to values, or a ``http.cookiejar.CookieJar``.
    """

    __slots__ = ("_source",)

    def __init__(self, source: Any) -> None:
        self._source = source

    def values(self) -> list[Any]:
        """The values (a cookie jar's cookie values, a mapping's values)."""
        source = self._source
        if source is None:
            return []
        if isinstance(source, Mapping):
            return list(source.values())
        return [getattr(cookie, "value", None) for cookie in source]


class Secrets:
    """Secret values, redacted by value wherever they appear in a text.

    Each value is also looked for as Python's ``repr`` shows it (escapes for CR, LF and
    quotes), and for an ``Authorization``-style value (``Bearer abc``) its credential part
    alone. Values shorter than :data:`MIN_SECRET_LENGTH` are ignored.

    Args:
        values: The secret values.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[object] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            if not isinstance(value, str):
                continue  # only text can be quoted in a message
            for form in _forms(value):
                if len(form) >= MIN_SECRET_LENGTH:
                    forms.add(form)
        # Longest first, so that a secret containing another is replaced whole.
        self._values = tuple(sorted(forms, key=len, reverse=True))

    @classmethod
    def of_headers(cls, headers: Optional[Mapping[Any, Any]], names: Iterable[str] = ()) -> Secrets:
        """Collect the secret header values of ``headers``.

        Args:
            headers: Request headers (any mapping, names in any spelling).
            names: More header names whose values are secrets (e.g. the API-key header).

        Returns:
            The values of ``Authorization``, ``Proxy-Authorization``, ``Cookie``, of the
            ``names`` and of every header whose name :func:`is_sensitive_field` flags.
        """
        if not headers:
            return _NONE
        extra = {n.lower() for n in names}
        found: list[str] = []
        for name, value in headers.items():
            text_name = name.decode("latin-1") if isinstance(name, bytes) else str(name)
            lowered = text_name.lower()
            if lowered in SENSITIVE_HEADERS or lowered in extra or is_sensitive_field(text_name):
                if isinstance(value, bytes):
                    value = value.decode("latin-1")
                if isinstance(value, str):
                    found.append(value)
        return cls(found) if found else _NONE

    @classmethod
    def from_sources(cls, sources: Iterable[Any], names: Iterable[str] = ()) -> Secrets:
        """Collect secrets from where a call keeps them.

        Args:
            sources: Each one of: header mappings (see :meth:`of_headers`), ``auth=``
                pairs (the password is a secret), :class:`AllValues` (cookies: every value
                is a secret), :class:`Secrets` (taken as they are), or None.
            names: More header names whose values are secrets.

        Returns:
            The secrets found.
        """
        found = _NONE
        names = tuple(names)
        for source in sources:
            if isinstance(source, Secrets):
                found = found | source
            elif isinstance(source, AllValues):
                found = found | cls(source.values())
            elif isinstance(source, Mapping):
                found = found | cls.of_headers(source, names)
            elif isinstance(source, tuple) and len(source) == 2:
                found = found | cls([source[1]])
        return found

    def __or__(self, other: Secrets) -> Secrets:
        if not other._values:
            return self
        if not self._values:
            return other
        merged = Secrets()
        merged._values = tuple(
            sorted(set(self._values) | set(other._values), key=len, reverse=True)
        )
        return merged

    def __bool__(self) -> bool:
        return bool(self._values)

    def __repr__(self) -> str:
        return f"<Secrets: {len(self._values)} values>"

    def scrub(self, text: str) -> str:
        """Return ``text`` with every secret value (and URL secrets) replaced."""
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return redact_text(text)


def _forms(value: str) -> Iterable[str]:
    """The spellings of one secret value that may appear in a message."""
    yield value
    shown = repr(value)[1:-1]
    if shown != value:
        yield shown
    scheme, space, credential = value.strip().partition(" ")
    if space and scheme.isalpha() and credential:
        yield credential
        shown = repr(credential)[1:-1]
        if shown != credential:
            yield shown


_NONE = Secrets()


# --------------------------------------------------------------------- redaction


def redact_sensitive_data(data: Any, redaction_text: str = REDACTED) -> Any:
    """Return a copy of ``data`` with every secret replaced by ``redaction_text``.

    * A mapping becomes a new plain ``dict``: values under sensitive string
      keys (see :func:`is_sensitive_field`) are replaced, other values are
      redacted recursively.
    * A list or tuple becomes a new object of the same type with its items
      redacted. A ``(name, value)`` tuple whose ``name`` is sensitive, as in a
      list of form fields, has its ``value`` replaced.
    * A string holding a JSON object or array is parsed, redacted and returned
      as ``json.dumps`` of the result (unchanged if it held no secret). Any
      other string has URL user-info, sensitive query values and sensitive
      ``name: value``, ``name=value`` and ``"name": "value"`` pairs replaced;
      a ``name: value`` value runs to the end of its line.
    * Anything else (numbers, ``None``, bytes, ...) is returned unchanged.

    The input is never modified.

    Args:
        data: The value to redact.
        redaction_text: What replaces each secret.

    Returns:
        The redacted copy (or ``data`` itself when it cannot hold a secret).
    """
    return _redact_value(data, redaction_text, set())


def _redact_value(value: Any, replacement: str, active: set[int]) -> Any:
    """Redact one value; ``active`` holds the ids of the containers being walked.

    Args:
        value: The value to redact.
        replacement: What replaces each secret.
        active: Ids of the enclosing containers, to stop at cycles.

    Returns:
        The redacted copy.
    """
    if isinstance(value, str):
        return _redact_string(value, replacement)
    if not isinstance(value, (Mapping, list, tuple)):
        return value
    if id(value) in active:
        return _CYCLE
    active.add(id(value))
    try:
        if isinstance(value, Mapping):
            return {
                key: replacement
                if isinstance(key, str) and is_sensitive_field(key)
                else _redact_value(item, replacement, active)
                for key, item in value.items()
            }
        if (
            isinstance(value, tuple)
            and len(value) == 2
            and isinstance(value[0], str)
            and is_sensitive_field(value[0])
        ):
            items = [value[0], replacement]
        else:
            items = [_redact_value(item, replacement, active) for item in value]
        return _rebuild(value, items)
    finally:
        active.discard(id(value))


def _rebuild(original: list[Any] | tuple[Any, ...], items: list[Any]) -> Any:
    """Make a list or tuple of the same type as ``original`` holding ``items``.

    Args:
        original: The list or tuple that was redacted.
        items: The redacted items.

    Returns:
        The new container; a plain list or tuple if the type cannot be rebuilt.
    """
    kind = type(original)
    if kind is list:
        return items
    if kind is tuple:
        return tuple(items)
    try:
        if isinstance(original, tuple) and hasattr(original, "_fields"):
            return kind(*items)  # a named tuple
        return kind(items)
    except (TypeError, ValueError):
        return tuple(items) if isinstance(original, tuple) else items


def _redact_string(text: str, replacement: str) -> str:
    """Redact a string that may hold JSON or free text.

    Args:
        text: The string.
        replacement: What replaces each secret.

    Returns:
        The redacted string.
    """
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            parsed = json.loads(stripped)
        except (ValueError, RecursionError):
            pass
        else:
            if isinstance(parsed, (dict, list)):
                redacted = _redact_value(parsed, replacement, set())
                return text if redacted == parsed else json.dumps(redacted)
    return _redact_free_text(text, replacement)


def _redact_free_text(text: str, replacement: str) -> str:
    """Redact URLs and sensitive name/value pairs in free text.

    Args:
        text: Any text.
        replacement: What replaces each secret.

    Returns:
        The redacted text.
    """
    redacted = redact_text(text)
    if redacted != text and replacement != REDACTED:
        redacted = redacted.replace(REDACTED, replacement)
    redacted = _redact_pairs(redacted, _QUOTED_KEY, _value_end, replacement)
    redacted = _redact_pairs(redacted, _EQUALS_KEY, _value_end, replacement)
    # A header value runs to the end of its line, so that an authorization
    # scheme and its credentials go together.
    return _redact_pairs(redacted, _COLON_KEY, _line_end, replacement)


def _redact_pairs(
    text: str,
    key: re.Pattern[str],
    value_end: Callable[[str, int], int],
    replacement: str,
) -> str:
    """Replace the values that follow sensitive field names.

    Args:
        text: Any text.
        key: Matches a field name (group ``name``) and its separator.
        value_end: Given the text and where a value starts, says where it ends.
        replacement: What replaces each secret.

    Returns:
        The redacted text. A quoted value keeps its quotes.
    """
    parts: list[str] = []
    done = 0
    match = key.search(text)
    while match is not None:
        position = match.end()
        if is_sensitive_field(match.group("name")):
            end = value_end(text, position)
            if end > position:
                quote = text[position] if text[position] in ("'", '"') else ""
                parts.append(text[done:position])
                parts.append(f"{quote}{replacement}{quote}")
                done = position = end
        match = key.search(text, position)
    parts.append(text[done:])
    return "".join(parts)


def _line_end(text: str, start: int) -> int:
    """Find the end of the line that ``start`` is on.

    Args:
        text: The text.
        start: An index into it.

    Returns:
        The index of the next line break, or ``len(text)``.
    """
    found = _LINE_BREAK.search(text, start)
    return found.start() if found is not None else len(text)


def _value_end(text: str, start: int) -> int:
    """Find where the value starting at ``start`` ends.

    A quoted string or a bracketed value (object, array, tuple) ends where it
    is closed, or at the end of the text; other values end at whitespace or
    at one of ``,;&'")]}``.

    Args:
        text: The text.
        start: Index of the value's first character.

    Returns:
        The index just past the value (``len(text)`` if it is not closed).
    """
    if start >= len(text):
        return start
    first = text[start]
    if first not in "\"'{[(":
        bare = _BARE_VALUE.match(text, start)
        return bare.end() if bare is not None else start
    depth = 0
    quote = ""
    index = start
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
                if depth == 0:
                    return index + 1
        elif char in "\"'":
            quote = char
        elif char in "{[(":
            depth += 1
        elif char in "}])":
            depth -= 1
            if depth <= 0:
                return index + 1
        index += 1
    return len(text)


def preview(text: str) -> str:
    """Cut already redacted text to the preview size.

    Args:
        text: Redacted text.

    Returns:
        The text, or its beginning and its total length.
    """
    if len(text) <= _PREVIEW_LIMIT:
        return text
    return f"{text[:_PREVIEW_LIMIT]}... <{len(text)} chars in all>"


def body_preview(body: str | bytes | bytearray | memoryview) -> str:
    """Redact a text or bytes body and cut it to a preview.

    Args:
        body: The body.

    Returns:
        The redacted preview, or the length of a body that is not UTF-8.
    """
    if isinstance(body, str):
        text = body
    else:
        raw = bytes(body)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(raw)} bytes, not UTF-8>"
    if not text:
        return "<empty>"
    if len(text) > _FULL_REDACTION_LIMIT:
        head = redact_sensitive_data(text[:_PREVIEW_LIMIT])
        return f"{head[:_PREVIEW_LIMIT]}... <{len(text)} chars in all>"
    return preview(redact_sensitive_data(text))
