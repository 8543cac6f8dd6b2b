"""Redaction and safe logging helpers, kept as a public module for compatibility.

The helpers here never put a secret into a log line: header values under
sensitive names, URL user-info, sensitive query values and sensitive fields in
JSON or free-text bodies are replaced before anything is logged. The logging
helpers cost nothing unless their logger is enabled for the requested level,
never read a response body that ``requests`` has not already loaded, and never
raise into the caller.

Example::

    from requests_connection_manager.utils import redact_sensitive_data

    redact_sensitive_data({"user": "bob", "password": "hunter2"})
    # {'user': 'bob', 'password': '[REDACTED]'}
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._redaction import REDACTED, is_sensitive_field, redact_text, redact_url

if TYPE_CHECKING:
    from requests import Response

__all__ = [
    "is_sensitive_field",
    "redact_sensitive_data",
    "safe_log_error",
    "safe_log_request",
    "safe_log_response",
]

logger = logging.getLogger(__name__)

# Longest body text (in characters) that is shown in a log line.
_PREVIEW_LIMIT = 1000
# Bodies longer than this are cut to the preview size before redaction, so a
# huge body costs no more than a small one.
_FULL_REDACTION_LIMIT = 100_000
# Stands in for a container that contains itself.
_CYCLE = "[...]"

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
    ends = [i for i in (text.find("\r", start), text.find("\n", start)) if i >= 0]
    return min(ends, default=len(text))


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


# ----------------------------------------------------------------------- logging


def safe_log_request(
    method: str,
    url: str,
    headers: Optional[Mapping[str, Any]] = None,
    payload: Any = None,
    level: int = logging.DEBUG,
) -> None:
    """Log an outgoing request with its secrets redacted.

    Nothing is computed unless the ``requests_connection_manager.utils``
    logger is enabled for ``level``. Header values under sensitive names,
    URL user-info and sensitive query values are redacted. A mapping, list or
    tuple payload is shown as redacted JSON, a text (or UTF-8 bytes) payload
    is redacted with :func:`redact_sensitive_data`; other bytes are shown by
    length and other objects (files, iterators, ...) by type only, so a
    streaming upload is never read. Bodies are cut to a short preview.

    Args:
        method: The HTTP method.
        url: The request URL.
        headers: The request headers, or None.
        payload: The request body (``data`` or ``json``), or None.
        level: The logging level to use.
    """
    try:
        if not logger.isEnabledFor(level):
            return
        logger.log(
            level,
            "HTTP request %s %s headers=%s body=%s",
            _text(method),
            _url(url),
            _headers(headers),
            _payload(payload),
        )
    except Exception as exc:  # noqa: BLE001 - a log helper must never break the caller
        _dropped("safe_log_request", exc)


def safe_log_response(response: Response, level: int = logging.DEBUG) -> None:
    """Log a received response with its secrets redacted.

    Nothing is computed unless the ``requests_connection_manager.utils``
    logger is enabled for ``level``. The body is shown (redacted, as a short
    preview) only if ``requests`` has already loaded it, as it does when
    ``stream=False``; a streamed body that has not been read is left unread
    and logged as such.

    Args:
        response: The response.
        level: The logging level to use.
    """
    try:
        if not logger.isEnabledFor(level):
            return
        request = getattr(response, "request", None)
        method = getattr(request, "method", None)
        logger.log(
            level,
            "HTTP response %s %s -> %s %s headers=%s body=%s",
            _text(method) if method is not None else "-",
            _url(response.url),
            response.status_code,
            response.reason,
            _headers(response.headers),
            _response_body(response),
        )
    except Exception as exc:  # noqa: BLE001 - a log helper must never break the caller
        _dropped("safe_log_response", exc)


def safe_log_error(
    exception: BaseException,
    method: str,
    url: str,
    level: int = logging.ERROR,
) -> None:
    """Log a failed request with its secrets redacted.

    Nothing is computed unless the ``requests_connection_manager.utils``
    logger is enabled for ``level``. The line holds the method, the redacted
    URL, the exception's type name and its redacted message; no traceback is
    logged, since tracebacks can quote secrets.

    Args:
        exception: The exception the request raised.
        method: The HTTP method.
        url: The request URL.
        level: The logging level to use.
    """
    try:
        if not logger.isEnabledFor(level):
            return
        message = redact_sensitive_data(redact_text(str(exception)))
        logger.log(
            level,
            "HTTP request failed %s %s: %s: %s",
            _text(method),
            _url(url),
            type(exception).__name__,
            _preview(message),
        )
    except Exception as exc:  # noqa: BLE001 - a log helper must never break the caller
        _dropped("safe_log_error", exc)


def _dropped(helper: str, exc: Exception) -> None:
    """Report that a helper could not write its line (without a traceback).

    Args:
        helper: The helper's name.
        exc: What went wrong; only its type is shown, as its text may hold secrets.
    """
    logger.warning("%s could not log: %s; the line was dropped", helper, type(exc).__name__)


def _text(value: Any) -> str:
    """Turn a method, header name or header value into text.

    Args:
        value: A string, bytes or other object.

    Returns:
        The text.
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return str(value)


def _url(url: Any) -> str:
    """Return a URL safe to log.

    Args:
        url: A URL as text or bytes, or None.

    Returns:
        The URL with user-info and sensitive query values redacted.
    """
    if url is None:
        return "-"
    if isinstance(url, (bytes, bytearray)):
        url = bytes(url).decode("utf-8", "replace")
    return redact_url(str(url))


def _headers(headers: Optional[Mapping[str, Any]]) -> dict[str, str]:
    """Return headers safe to log.

    Args:
        headers: A mapping (or an iterable of name/value pairs), or None.

    Returns:
        A new dict: values under sensitive names replaced, URLs in the other
        values redacted.
    """
    if headers is None:
        return {}
    items = getattr(headers, "items", None)
    pairs: Iterable[Any] = items() if callable(items) else headers
    shown: dict[str, str] = {}
    for name, value in pairs:
        key = _text(name)
        shown[key] = REDACTED if is_sensitive_field(key) else redact_text(_text(value))
    return shown


def _payload(payload: Any) -> str:
    """Describe a request body safely.

    Args:
        payload: The body as given to ``requests``.

    Returns:
        A redacted preview, or a description of what the body is.
    """
    if payload is None:
        return "-"
    if isinstance(payload, (str, bytes, bytearray, memoryview)):
        return _body_text(payload)
    if isinstance(payload, (Mapping, list, tuple)):
        redacted = redact_sensitive_data(payload)
        try:
            text = json.dumps(redacted, default=_placeholder)
        except (TypeError, ValueError):
            text = repr(redacted)
        return _preview(text)
    return f"<{type(payload).__name__}, not shown>"


def _placeholder(value: Any) -> str:
    """Stand in for a value that JSON cannot show, without calling its repr.

    Args:
        value: The value.

    Returns:
        Its type name in angle brackets.
    """
    return f"<{type(value).__name__}>"


def _response_body(response: Response) -> str:
    """Describe a response body without ever reading it from the network.

    Args:
        response: The response.

    Returns:
        A redacted preview if ``requests`` has loaded the body, otherwise a note.
    """
    consumed = getattr(response, "_content_consumed", False)
    content = getattr(response, "_content", None)
    if consumed is True and isinstance(content, bytes):
        return _body_text(content)
    if consumed:
        return "<body consumed by the caller, not shown>"
    return "<body not read (streamed)>"


def _body_text(body: str | bytes | bytearray | memoryview) -> str:
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
    return _preview(redact_sensitive_data(text))


def _preview(text: str) -> str:
    """Cut already redacted text to the preview size.

    Args:
        text: Redacted text.

    Returns:
        The text, or its beginning and its total length.
    """
    if len(text) <= _PREVIEW_LIMIT:
        return text
    return f"{text[:_PREVIEW_LIMIT]}... <{len(text)} chars in all>"
