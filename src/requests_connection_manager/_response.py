"""requests' ``HTTPAdapter.build_response`` and cookie extraction, step for step, cheaper.

For every response requests builds a ``CaseInsensitiveDict`` of its headers key by key and
asks ``http.cookiejar`` for cookies twice (into the response's jar, then the session's),
which looks the ``Set-Cookie`` headers up in the ``http.client`` message. Here:

- the headers' case-insensitive store is built straight from urllib3's ``HTTPHeaderDict``
  (the same pairs, in the same order, values joined with ``", "`` as its ``[]`` joins
  them);
- a response whose ``http.client`` message has no ``Set-Cookie`` or ``Set-Cookie2`` header
  is not handed to ``http.cookiejar``, which would find no cookie in it and change nothing.

Anything else (another headers type, another message type) goes through requests' own
functions. :meth:`._transport.Transport.build_response` uses :func:`build_response` while
``HTTPAdapter.build_response`` and the functions it looks up in ``requests.adapters`` are
requests' own (:func:`usable`).
"""

from __future__ import annotations

from collections import OrderedDict
from http.client import HTTPMessage
from typing import Any, Callable

import requests.adapters
from requests.adapters import HTTPAdapter
from requests.models import Response
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPHeaderDict

from ._originals import Originals
from ._prepare import case_insensitive

__all__ = ["build_response", "extract_cookies", "usable"]

_COOKIE_HEADERS = frozenset({"set-cookie", "set-cookie2"})
# HTTPAdapter.build_response and what it looks up in requests.adapters, as imported.
_BUILD_RESPONSE = Originals(
    (HTTPAdapter, "build_response"),
    (
        requests.adapters,
        "Response",
        "CaseInsensitiveDict",
        "get_encoding_from_headers",
        "extract_cookies_to_jar",
    ),
)
_extract_cookies_to_jar: Callable[..., None] = vars(requests.adapters)["extract_cookies_to_jar"]
_encoding_of: Callable[[Any], Any] = vars(requests.adapters)["get_encoding_from_headers"]


def usable() -> bool:
    """Tell whether ``HTTPAdapter.build_response`` and what it looks up are requests' own."""
    return _BUILD_RESPONSE.intact()


def extract_cookies(jar: Any, request: Any, raw: Any) -> None:
    """``requests.cookies.extract_cookies_to_jar(jar, request, raw)``, skipped when idle.

    Args:
        jar: The cookie jar to add to.
        request: The prepared request the response answers.
        raw: The urllib3 response.
    """
    original = getattr(raw, "_original_response", None)
    if not original:
        return  # requests returns here too
    message = getattr(original, "msg", None)
    if type(message) is HTTPMessage:
        for name in message.keys():  # noqa: SIM118 - a Message's keys() is a list
            if name.lower() in _COOKIE_HEADERS:
                break
        else:
            return  # http.cookiejar would find no cookie header and set nothing
    _extract_cookies_to_jar(jar, request, raw)


def _headers(raw: Any) -> Any:
    """``CaseInsensitiveDict(raw.headers)``, built from urllib3's store when it is one."""
    headers = getattr(raw, "headers", {})
    if type(headers) is not HTTPHeaderDict:
        return CaseInsensitiveDict(headers)
    store: OrderedDict[str, tuple[str, str]] = OrderedDict()
    for values in headers._container.values():
        name = values[0]  # what iterating the dict gives; its [] joins the rest
        store[name.lower()] = (name, ", ".join(values[1:]))
    return case_insensitive(store)


def build_response(adapter: Any, request: Any, raw: Any) -> Response:
    """``HTTPAdapter.build_response(adapter, request, raw)``: the same response, cheaper.

    Args:
        adapter: The adapter (the response's ``connection``).
        request: The prepared request.
        raw: The urllib3 response.

    Returns:
        The ``requests.Response``.
    """
    response = Response()
    response.status_code = getattr(raw, "status", None)  # type: ignore[assignment]
    response.headers = _headers(raw)
    response.encoding = _encoding_of(response.headers)
    response.raw = raw
    response.reason = raw.reason
    url = request.url
    response.url = url.decode("utf-8") if isinstance(url, bytes) else url
    extract_cookies(response.cookies, request, raw)
    response.request = request
    response.connection = adapter
    return response
