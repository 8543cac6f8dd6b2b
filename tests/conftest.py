"""Shared fixtures: loopback servers and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import FakeClock
from tests.faults import FaultServer
from tests.servers import AppServer


@pytest.fixture
def app() -> Iterator[AppServer]:
    """A threaded WSGI server on loopback with scripted routes."""
    with AppServer() as server:
        yield server


@pytest.fixture
def faults() -> Iterator[FaultServer]:
    """A socket-level fault server on loopback; one request per connection."""
    with FaultServer() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock: sleeps are recorded and advance time instantly."""
    return FakeClock()
