"""Safe logging helpers and redaction, kept as a public module for compatibility.

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
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional

from ._redaction import (
    REDACTED,
    Secrets,
    body_preview,
    is_sensitive_field,
    preview,
    redact_sensitive_data,
    redact_text,
    redact_url,
)

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

# ----------------------------------------------------------------------- logging


def safe_log_request(
    method: str,
    url: str,
    headers: Optional[Mapping[str, Any]] = None,
    payload: Any = None,
    level: int = logging.DEBUG,
    *,
    secrets: Optional[Secrets] = None,
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
        secrets: Secret values to redact wherever they appear (the manager passes its
            credentials and the request's secret header values).
    """
    try:
        if not logger.isEnabledFor(level):
            return
        logger.log(
            level,
            "HTTP request %s %s headers=%s body=%s",
            *_scrubbed(secrets, _text(method), _url(url), _headers(headers), _payload(payload)),
        )
    except Exception as exc:  # noqa: BLE001 - a log helper must never break the caller
        _dropped("safe_log_request", exc)


def safe_log_response(
    response: Response, level: int = logging.DEBUG, *, secrets: Optional[Secrets] = None
) -> None:
    """Log a received response with its secrets redacted.

    Nothing is computed unless the ``requests_connection_manager.utils``
    logger is enabled for ``level``. The body is shown (redacted, as a short
    preview) only if ``requests`` has already loaded it, as it does when
    ``stream=False``; a streamed body that has not been read is left unread
    and logged as such.

    Args:
        response: The response.
        level: The logging level to use.
        secrets: Secret values to redact wherever they appear.
    """
    try:
        if not logger.isEnabledFor(level):
            return
        request = getattr(response, "request", None)
        method = getattr(request, "method", None)
        logger.log(
            level,
            "HTTP response %s %s -> %s %s headers=%s body=%s",
            *_scrubbed(
                secrets,
                _text(method) if method is not None else "-",
                _url(response.url),
                response.status_code,
                response.reason,
                _headers(response.headers),
                _response_body(response),
            ),
        )
    except Exception as exc:  # noqa: BLE001 - a log helper must never break the caller
        _dropped("safe_log_response", exc)


def safe_log_error(
    exception: BaseException,
    method: str,
    url: str,
    level: int = logging.ERROR,
    *,
    secrets: Optional[Secrets] = None,
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
        secrets: Secret values to redact wherever they appear.
    """
    try:
        if not logger.isEnabledFor(level):
            return
        message = redact_sensitive_data(redact_text(str(exception)))
        logger.log(
            level,
            "HTTP request failed %s %s: %s: %s",
            *_scrubbed(
                secrets, _text(method), _url(url), type(exception).__name__, preview(message)
            ),
        )
    except Exception as exc:  # noqa: BLE001 - a log helper must never break the caller
        _dropped("safe_log_error", exc)


def _scrubbed(secrets: Optional[Secrets], *parts: Any) -> tuple[Any, ...]:
    """Redact the secret values in each part of a log line (text, or a dict of headers)."""
    if not secrets:
        return parts
    out: list[Any] = []
    for part in parts:
        if isinstance(part, str):
            part = secrets.scrub(part)
        elif isinstance(part, dict):
            part = {secrets.scrub(k): secrets.scrub(v) for k, v in part.items()}
        out.append(part)
    return tuple(out)


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
        return body_preview(payload)
    if isinstance(payload, (Mapping, list, tuple)):
        redacted = redact_sensitive_data(payload)
        try:
            text = json.dumps(redacted, default=_placeholder)
        except (TypeError, ValueError):
            text = repr(redacted)
        return preview(text)
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
        return body_preview(content)
    if consumed:
        return "<body consumed by the caller, not shown>"
    return "<body not read (streamed)>"
