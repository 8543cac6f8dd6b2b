"""Redaction of secrets in URLs and free text (the functions every log line and message uses)."""

from __future__ import annotations

import logging

import pytest

import requests_connection_manager
from requests_connection_manager._redaction import REDACTED, redact_text, redact_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(see /x?token=abc)", f"(see /x?token={REDACTED})"),
        ("[http://h/?api_key=s3]", f"[http://h/?api_key={REDACTED}]"),
        ("<http://h/?api_key=s3>", f"<http://h/?api_key={REDACTED}>"),
        # A colon may be part of a secret, so it goes with it (better than a partial leak).
        ("GET http://h/?page=2&token=s3:cr3t boom", f"GET http://h/?page=2&token={REDACTED} boom"),
        ("http://ann:pw@h/x", f"http://{REDACTED}@h/x"),
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_redact_text_keeps_what_surrounds_a_secret(text: str, expected: str) -> None:
    """The secret goes; the bracket, colon or text after it stays."""
    assert redact_text(text) == expected


def test_redact_url_keeps_other_query_values() -> None:
    """Only sensitive query values and user-info are replaced."""
    url = redact_url("https://u:p@api.example.com/v1?page=2&api_key=s3&sig=x#top")
    assert (
        url == f"https://{REDACTED}@api.example.com/v1?page=2&api_key={REDACTED}&sig={REDACTED}#top"
    )


def test_the_library_logger_has_a_null_handler() -> None:
    """Without logging configured, library warnings do not fall through to stderr."""
    handlers = logging.getLogger(requests_connection_manager.__name__).handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_redacting_twice_changes_nothing_more() -> None:
    """Redaction is idempotent: a message redacted twice (e.g. re-raised) stays the same."""
    once = redact_text("GET http://h/?api_key=s3 failed [http://h/?token=x]")
    assert once == f"GET http://h/?api_key={REDACTED} failed [http://h/?token={REDACTED}]"
    assert redact_text(once) == once
