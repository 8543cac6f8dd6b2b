"""The exception contract: the tree, the one mapping point, and its completeness."""

from __future__ import annotations

import inspect
import pickle
import traceback

import pytest
import requests
import requests.exceptions as rex
import urllib3.exceptions as uex

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    ConnectionManagerError,
    MaxRetriesExceeded,
    RateLimitExceeded,
)
from requests_connection_manager._boundary import ERROR_TABLE, contract_error
from requests_connection_manager.exceptions import flavoured
from tests.servers import free_port

pytestmark = pytest.mark.timeout(20)


def _classes(module: object) -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException)
        and not issubclass(cls, Warning)
        and cls.__module__ == module.__name__  # type: ignore[attr-defined]
    ]


@pytest.mark.parametrize("cls", _classes(uex) + _classes(rex), ids=lambda c: c.__qualname__)
def test_every_requests_and_urllib3_exception_is_mapped_explicitly(
    cls: type[BaseException],
) -> None:
    """A new requests/urllib3 exception class fails here until it is given a mapping."""
    assert cls in ERROR_TABLE, f"{cls.__module__}.{cls.__qualname__} has no mapping"


def test_tree() -> None:
    """The four contract classes form the documented tree under RequestException."""
    assert issubclass(ConnectionManagerError, rex.RequestException)
    for cls in (RateLimitExceeded, CircuitBreakerOpen, MaxRetriesExceeded):
        assert issubclass(cls, ConnectionManagerError)
    assert issubclass(CircuitBreakerOpen, rex.ConnectionError)


@pytest.mark.parametrize(
    ("low", "expected"),
    [
        (uex.ReadTimeoutError(None, "/", "read timed out"), rex.ReadTimeout),  # type: ignore[arg-type]
        (uex.ConnectTimeoutError("connect timed out"), rex.ConnectTimeout),
        (uex.NewConnectionError(None, "refused"), rex.ConnectionError),  # type: ignore[arg-type]
        (uex.SSLError("bad cert"), rex.SSLError),
        (uex.ProtocolError("aborted"), rex.ConnectionError),
        (uex.IncompleteRead(10, 90), rex.ChunkedEncodingError),
        (uex.DecodeError("bad gzip"), rex.ContentDecodingError),
        (uex.LocationParseError("http://[x"), rex.InvalidURL),
        (uex.MaxRetryError(None, "/", uex.ResponseError("too many 503")), rex.RetryError),  # type: ignore[arg-type]
        (uex.MaxRetryError(None, "/", uex.ConnectTimeoutError("slow")), rex.ConnectTimeout),  # type: ignore[arg-type]
        (ConnectionResetError(104, "reset"), rex.ConnectionError),
        (TimeoutError("socket timed out"), rex.ReadTimeout),
        (rex.TooManyRedirects("31"), rex.TooManyRedirects),
    ],
)
def test_mapping_gives_contract_and_requests_class(
    low: BaseException, expected: type[rex.RequestException]
) -> None:
    """Each lower-level error maps to a ConnectionManagerError that is the requests class."""
    mapped = contract_error(low)
    assert isinstance(mapped, ConnectionManagerError)
    assert isinstance(mapped, expected)
    assert type(mapped).__name__ == expected.__name__


def test_programming_errors_are_not_transport_errors() -> None:
    """A TypeError is not mapped: it is a bug in the caller, not a network failure."""
    assert contract_error(TypeError("bad argument")) is None


def test_flavoured_classes_are_cached_and_pickle() -> None:
    """Combined classes are built once and survive pickling with their attributes."""
    cls = flavoured(MaxRetriesExceeded, rex.RetryError)
    assert cls is flavoured(MaxRetriesExceeded, rex.RetryError)
    exc = cls("gave up", attempts=4)
    clone = pickle.loads(pickle.dumps(exc))
    assert isinstance(clone, MaxRetriesExceeded)
    assert isinstance(clone, rex.RetryError)
    assert clone.attempts == 4
    assert str(clone) == "gave up"
    plain = pickle.loads(pickle.dumps(RateLimitExceeded("slow down", retry_after=2.5)))
    assert plain.retry_after == 2.5


def test_secrets_in_urls_never_reach_exception_text() -> None:
    """Query secrets and user-info are redacted in the message, its causes and traceback."""
    url = f"http://user:hunter2@127.0.0.1:{free_port()}/v1?api_key=SECRET123&page=2"
    with ConnectionManager(max_retries=0) as cm, pytest.raises(requests.ConnectionError) as info:
        cm.get(url)
    text = "".join(traceback.format_exception(info.type, info.value, info.tb))
    assert "SECRET123" not in text
    assert "hunter2" not in text
    assert "page=2" in str(info.value)
    assert info.value.__cause__ is not None
