"""requests' ``Session.prepare_request``, step for step, with cheaper merges.

requests merges a call's headers, params and proxies with the session's through
``merge_setting``, whose ``to_key_val_list`` asks ``isinstance(value, SupportsItems)``: on
requests 2.33 and later a runtime-checkable ``typing.Protocol``, about 3.5 µs per check on
CPython 3.11, four to six checks per call. For the mapping types requests itself builds
(``dict``, ``OrderedDict``, ``CaseInsensitiveDict``) the answer is always "yes, take
``items()``": :func:`merge_setting` takes them directly and hands every other value to
requests' own function. A call without cookies of its own skips building and merging an
empty cookie jar (a no-op in requests). The ``PreparedRequest`` runs its own steps, in the
order ``PreparedRequest.prepare`` runs them, with four shortcuts, each the same answer:

- a URL without params is prepared once and remembered (``prepare_url`` is a pure function
  of the URL), with whether it carries credentials (``get_auth_from_url``, which
  ``prepare_auth`` asks when no ``auth`` is given: without any, it does nothing);
- a header name and value (both ``str``) that requests' ``check_header_validity`` passed
  once are not checked again (a pure function of the pair);
- the merged headers' case-insensitive store is built directly, not key by key;
- an empty cookie jar writes no ``Cookie`` header without asking ``http.cookiejar``.

While one of those methods, or a function they look up in ``requests.models``, is
replaced, ``PreparedRequest.prepare`` itself runs.

:func:`prepare_request` is used only when ``requests.Session.prepare_request`` is the
method the session would otherwise run (no class of the session overrides it) and the
functions it looks up in ``requests.sessions`` are requests' own (:func:`usable`).

The memo remembers a header pair only if it is one of the session's own headers (a
value the session holds anyway) and not a credential (``Authorization``,
``Proxy-Authorization``, ``Cookie``, the manager's API-key headers); per-call headers are
checked on every call, as requests checks them.
"""

from __future__ import annotations

from collections import OrderedDict
from http.cookiejar import CookieJar
from typing import Any, Callable, Optional, cast

import requests.cookies
import requests.models
import requests.sessions
from requests.cookies import RequestsCookieJar
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict

from ._originals import Originals
from ._redaction import SENSITIVE_HEADERS

__all__ = ["PrepareMemo", "case_insensitive", "merge_setting", "prepare_request", "usable"]

# Mapping types whose items requests' to_key_val_list takes as they are.
_PLAIN = frozenset({dict, OrderedDict, CaseInsensitiveDict})
# Params that add nothing to a URL (requests' Session.request turns None into {}).
_EMPTY_PARAMS = frozenset({dict, OrderedDict, str, bytes, type(None)})
# A memo holds this many URLs and header pairs; beyond, it starts over.
MEMO_SIZE = 1024
# A header pair or URL longer than this is never remembered (the memos stay small).
_MEMO_CHARS = 512
_MEMO_URL_CHARS = 2048
# requests' methods, and the functions they and Session.prepare_request look up by name,
# as imported: while one is replaced, requests' own code runs.
_PREPARED = Originals(
    (
        PreparedRequest,
        "prepare",
        "prepare_url",
        "prepare_headers",
        "prepare_cookies",
        "prepare_auth",
    ),
    (
        requests.models,
        "check_header_validity",
        "to_native_string",
        "get_auth_from_url",
        "requote_uri",
        "parse_url",
        "unicode_is_ascii",
        "urlunparse",
        "CaseInsensitiveDict",
    ),
)
_SESSIONS = Originals(
    (
        requests.sessions,
        "merge_setting",
        "merge_hooks",
        "merge_cookies",
        "cookiejar_from_dict",
        "RequestsCookieJar",
        "PreparedRequest",
        "CaseInsensitiveDict",
    )
)
# Looked up where requests' code looks them up (the stubs do not list them there).
_check_header_validity: Callable[[tuple[str, str]], None] = vars(requests.models)[
    "check_header_validity"
]
_get_auth_from_url: Callable[[str], tuple[str, str]] = vars(requests.models)["get_auth_from_url"]


def usable() -> bool:
    """Tell whether the functions ``Session.prepare_request`` looks up are requests' own."""
    return _SESSIONS.intact()


# requests' functions (untyped in the stubs).
_requests_merge_setting = cast("Callable[..., Any]", requests.sessions.merge_setting)
_merge_hooks = cast("Callable[..., Any]", requests.sessions.merge_hooks)
_merge_cookies = cast("Callable[..., Any]", requests.cookies.merge_cookies)
_cookiejar_from_dict = cast("Callable[..., Any]", requests.cookies.cookiejar_from_dict)


class PrepareMemo:
    """What one session remembers between calls (it dies with the session).

    Attributes:
        urls: Per URL without params, the prepared URL and whether it carries
            credentials.
        valid_headers: ``str`` header pairs requests' ``check_header_validity`` passed.
    """

    __slots__ = ("urls", "valid_headers")

    def __init__(self) -> None:
        self.urls: dict[str, tuple[str, bool]] = {}
        self.valid_headers: set[tuple[str, str]] = set()

    def clear(self) -> None:
        """Forget everything (the session closed)."""
        self.urls.clear()
        self.valid_headers.clear()


def merge_setting(
    request_setting: Any, session_setting: Any, dict_class: type = OrderedDict
) -> Any:
    """``requests.sessions.merge_setting``, the same result for every input.

    Args:
        request_setting: The call's value.
        session_setting: The session's value.
        dict_class: The mapping type of a merged result.

    Returns:
        The call's value, the session's, or both merged (keys set to None dropped).
    """
    if session_setting is None:
        return request_setting
    if request_setting is None:
        return session_setting
    if type(request_setting) not in _PLAIN or type(session_setting) not in _PLAIN:
        return _requests_merge_setting(request_setting, session_setting, dict_class=dict_class)
    if dict_class is CaseInsensitiveDict:
        # Its store, as its __setitem__ and __delitem__ would leave it.
        store: OrderedDict[Any, tuple[Any, Any]] = OrderedDict()
        for key, value in _pairs(session_setting):
            store[key.lower()] = (key, value)
        for key, value in _pairs(request_setting):
            store[key.lower()] = (key, value)
        for lowered in [lowered for lowered, pair in store.items() if pair[1] is None]:
            del store[lowered]
        return case_insensitive(store)
    if dict_class not in _PLAIN:
        merged = dict_class(session_setting.items())
        merged.update(request_setting.items())
    else:  # what their constructor and update() do with pairs, without the ABC dispatch
        merged = dict_class()
        for key, value in _pairs(session_setting):
            merged[key] = value
        for key, value in _pairs(request_setting):
            merged[key] = value
    for key in [key for key, value in merged.items() if value is None]:
        del merged[key]
    return merged


def case_insensitive(store: OrderedDict[Any, tuple[Any, Any]]) -> Any:
    """A ``CaseInsensitiveDict`` holding ``store`` (lower-cased key to (key, value)).

    What setting each pair on an empty one would leave, without a call per pair.
    """
    headers: Any = CaseInsensitiveDict()
    headers._store = store
    return headers


def _pairs(mapping: Any) -> Any:
    """``mapping.items()``; a ``CaseInsensitiveDict``'s straight from its store (the same)."""
    if type(mapping) is CaseInsensitiveDict:
        return mapping._store.values()  # type: ignore[attr-defined]
    return mapping.items()


def prepare_request(
    session: Any,
    request: Any,
    netrc_auth: Callable[[str], Optional[tuple[str, str]]],
    memo: PrepareMemo,
    secret_names: frozenset[str] = frozenset(),
) -> PreparedRequest:
    """``requests.Session.prepare_request(session, request)``, with cheaper merges.

    Args:
        session: The ``requests.Session``.
        request: The ``requests.Request``.
        netrc_auth: ``get_netrc_auth`` for the request's URL (a remembered answer).
        memo: The session's memo.
        secret_names: Header names (lower-case) whose values are never remembered, beside
            ``Authorization``, ``Proxy-Authorization`` and ``Cookie``.

    Returns:
        The prepared request, as requests would prepare it.
    """
    url = request.url
    merged_cookies = _merge_cookies(RequestsCookieJar(), session.cookies)
    if request.cookies:
        cookies = request.cookies
        if not isinstance(cookies, CookieJar):
            cookies = _cookiejar_from_dict(cookies)
        merged_cookies = _merge_cookies(merged_cookies, cookies)
    auth = request.auth
    if session.trust_env and not auth and not session.auth:
        auth = netrc_auth(url)
    headers = merge_setting(request.headers, session.headers, dict_class=CaseInsensitiveDict)
    params = merge_setting(request.params, session.params)
    auth = merge_setting(auth, session.auth)
    hooks = _merge_hooks(request.hooks, session.hooks)
    prepared = PreparedRequest()
    if not _unpatched():
        prepared.prepare(
            method=request.method.upper(),
            url=url,
            files=request.files,
            data=request.data,
            json=request.json,
            headers=headers,
            params=params,
            auth=auth,
            cookies=merged_cookies,
            hooks=hooks,
        )
        return prepared
    # PreparedRequest.prepare's steps, in its order.
    prepared.prepare_method(request.method.upper())
    url_has_auth = _prepare_url(prepared, url, params, memo.urls)
    _prepare_headers(prepared, headers, memo.valid_headers, session.headers, secret_names)
    _prepare_cookies(prepared, merged_cookies)
    prepared.prepare_body(request.data, request.files, request.json)
    if auth is not None or url_has_auth:
        prepared.prepare_auth(auth, url)
    prepared.prepare_hooks(hooks)
    return prepared


def _unpatched() -> bool:
    return _PREPARED.intact()


def _prepare_url(
    prepared: PreparedRequest, url: Any, params: Any, urls: dict[str, tuple[str, bool]]
) -> bool:
    """``prepared.prepare_url(url, params)``; without params, a URL seen before is not parsed.

    ``prepare_url`` is a pure function of its arguments (parse, IDNA-encode the host,
    re-quote); its result for a URL without params is remembered, per URL string, with
    whether requests' ``get_auth_from_url`` finds credentials in it.

    Returns:
        False when the prepared URL is known to carry no credentials.
    """
    if type(url) is not str or params or type(params) not in _EMPTY_PARAMS:
        prepared.prepare_url(url, params)  # a str subclass may say otherwise through str()
        return True
    found = urls.get(url)
    if found is not None:
        prepared.url, has_auth = found
        return has_auth
    prepared.prepare_url(url, params)
    prepared_url = cast(str, prepared.url)
    has_auth = any(_get_auth_from_url(prepared_url))
    if len(url) <= _MEMO_URL_CHARS:
        if len(urls) >= MEMO_SIZE:
            urls.clear()
        urls[url] = (prepared_url, has_auth)
    return has_auth


def _prepare_headers(
    prepared: PreparedRequest,
    headers: Any,
    valid: set[tuple[str, str]],
    session_headers: Any,
    secret_names: frozenset[str],
) -> None:
    """``prepared.prepare_headers(headers)``, checking a ``str`` pair seen valid only once.

    The result is requests' (a ``CaseInsensitiveDict`` of the same pairs in the same
    order); anything but ``str`` names and values goes through requests' method, which
    also raises requests' ``InvalidHeader`` for the first invalid pair, as it would. A
    pair is remembered only if the session's own headers hold it and it is no credential.
    """
    if type(headers) is CaseInsensitiveDict:
        store: OrderedDict[str, tuple[str, str]] = OrderedDict()
        for pair in headers._store.values():  # type: ignore[attr-defined]
            name, value = pair
            if type(name) is not str or type(value) is not str:
                break
            lowered = name.lower()
            if pair not in valid:
                _check_header_validity(pair)
                if _rememberable(pair, lowered, session_headers, secret_names):
                    if len(valid) >= MEMO_SIZE:
                        valid.clear()
                    valid.add(pair)
            store[lowered] = pair
        else:
            prepared.headers = case_insensitive(store)
            return
    prepared.prepare_headers(headers)


def _rememberable(
    pair: tuple[str, str], lowered: str, session_headers: Any, secret_names: frozenset[str]
) -> bool:
    """A short pair of the session's own headers, and no credential."""
    if len(pair[0]) + len(pair[1]) > _MEMO_CHARS:
        return False
    if lowered in SENSITIVE_HEADERS or lowered in secret_names:
        return False
    if type(session_headers) is not CaseInsensitiveDict:
        return False
    return bool(session_headers._store.get(lowered) == pair)  # type: ignore[attr-defined]


def _prepare_cookies(prepared: PreparedRequest, jar: RequestsCookieJar) -> None:
    """``prepared.prepare_cookies(jar)``; an empty jar makes no ``Cookie`` header (not asked)."""
    if len(jar):
        prepared.prepare_cookies(jar)
    else:
        prepared._cookies = jar  # type: ignore[attr-defined]
