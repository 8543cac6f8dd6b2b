"""Credentials: an API key header, a bearer or OAuth2 token, HTTP basic auth.

:class:`Credentials` is a frozen value: setters on the manager replace it, so a request
sees one consistent set. It turns into headers only when a request is prepared, and
only for the origin the caller asked for (or the hosts an endpoint pattern matches);
see ``ManagedSession`` for how redirects are handled.

Only one ``Authorization`` credential is sent. Within one level (global, or one endpoint),
basic auth takes precedence over an OAuth2 token, which takes precedence over a bearer
token (the order requests-connection-manager 1.0.0 applied them in); an endpoint that sets
any ``Authorization`` credential replaces every global one for its hosts.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Optional

from ._redaction import REDACTED

__all__ = ["AUTH_FIELDS", "DEFAULT_API_KEY_HEADER", "Credentials", "check_credentials"]

#: The header an API key goes in unless another is named.
DEFAULT_API_KEY_HEADER = "X-API-Key"

#: The credential keywords (of the constructor, and of an endpoint config).
AUTH_FIELDS = ("api_key", "api_key_header", "bearer_token", "oauth2_token", "basic_auth")

_AUTHORIZATION_FIELDS = ("bearer_token", "oauth2_token", "basic_auth")
# RFC 9110 token characters: what a header name may contain.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _check_secret(name: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
    if not value or "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError(f"{name} must be a non-empty str without CR, LF or NUL")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"{name} must be sendable in an HTTP header (latin-1 characters only)"
        ) from None
    return value


def check_credentials(values: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Validate credential keywords; return them normalised (``basic_auth`` as a tuple).

    Args:
        values: Some of :data:`AUTH_FIELDS` and their values.
        where: A prefix for error messages, e.g. ``"endpoint_configs['api.example.com']: "``.

    Raises:
        TypeError: A value has the wrong type; the message names the keyword.
        ValueError: A value is empty or contains CR/LF; the message names the keyword.
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name == "api_key_header":
            if not isinstance(value, str):
                raise TypeError(f"{where}api_key_header must be a str, got {type(value).__name__}")
            if not _HEADER_NAME.match(value):
                raise ValueError(
                    f"{where}api_key_header must be a valid header name, got {value!r}"
                )
            out[name] = value
        elif name == "basic_auth":
            if value is None:
                out[name] = None
                continue
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise TypeError(f"{where}basic_auth must be a (username, password) pair or None")
            user, password = value
            if not isinstance(user, str) or not isinstance(password, str):
                raise TypeError(f"{where}basic_auth must hold two str")
            if ":" in user or any(c in user + password for c in "\r\n\x00"):
                raise ValueError(
                    f"{where}basic_auth: the username may not contain ':' and neither part "
                    "CR, LF or NUL"
                )
            try:
                f"{user}:{password}".encode()
            except UnicodeEncodeError:
                raise ValueError(
                    f"{where}basic_auth: the username and password must be text UTF-8 can "
                    "encode (no lone surrogates)"
                ) from None
            out[name] = (user, password)
        else:
            out[name] = _check_secret(f"{where}{name}", value)
    return out


def _basic(user: str, password: str) -> str:
    raw = f"{user}:{password}"
    try:
        encoded = raw.encode("latin-1")  # what requests' HTTPBasicAuth sends
    except UnicodeEncodeError:
        encoded = raw.encode("utf-8")
    return "Basic " + base64.b64encode(encoded).decode("ascii")


@dataclass(frozen=True)
class Credentials:
    """One level of credentials (global, or one endpoint's).

    Attributes:
        api_key: Sent in the ``api_key_header`` header.
        api_key_header: The API key's header name.
        bearer_token: Sent as ``Authorization: Bearer <token>``.
        oauth2_token: Sent as ``Authorization: Bearer <token>``.
        basic_auth: ``(username, password)`` sent as ``Authorization: Basic ...``.
    """

    api_key: Optional[str] = None
    api_key_header: str = DEFAULT_API_KEY_HEADER
    bearer_token: Optional[str] = None
    oauth2_token: Optional[str] = None
    basic_auth: Optional[tuple[str, str]] = None

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={REDACTED!r}"
            if f.name != "api_key_header"
            else f"{f.name}={self.api_key_header!r}"
            for f in fields(self)
            if getattr(self, f.name) is not None
        )
        return f"Credentials({shown})"

    def __bool__(self) -> bool:
        return bool(self.api_key or self.bearer_token or self.oauth2_token or self.basic_auth)

    def updated(self, **changes: Any) -> Credentials:
        """Return a copy with ``changes`` (validated credential keywords) applied."""
        return replace(self, **changes)

    def under(self, endpoint: dict[str, Any]) -> Credentials:
        """Return these credentials with an endpoint's credential keywords laid over them.

        The endpoint's keys replace the same keys here; if it sets any ``Authorization``
        credential, every ``Authorization`` credential of this level is dropped.
        """
        if not endpoint:
            return self
        base = self
        if any(endpoint.get(name) is not None for name in _AUTHORIZATION_FIELDS):
            base = replace(self, bearer_token=None, oauth2_token=None, basic_auth=None)
        return replace(base, **endpoint)

    def headers(self) -> dict[str, str]:
        """Return the headers these credentials put on a request."""
        out: dict[str, str] = {}
        if self.api_key:
            out[self.api_key_header] = self.api_key
        if self.basic_auth is not None:
            out["Authorization"] = _basic(*self.basic_auth)
        elif self.oauth2_token:
            out["Authorization"] = f"Bearer {self.oauth2_token}"
        elif self.bearer_token:
            out["Authorization"] = f"Bearer {self.bearer_token}"
        return out
