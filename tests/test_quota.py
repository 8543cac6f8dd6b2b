"""The per-host count of a server-advertised quota, driven by hand (no clock, no server)."""

from __future__ import annotations

import pytest

from requests_connection_manager._quota import UNKNOWN_RESET_TTL, QuotaState

pytestmark = pytest.mark.timeout(10)


def test_a_late_answer_to_an_earlier_request_never_raises_the_count() -> None:
    """The server counted A, then B; B's answer lands first: A's cannot add back."""
    quota = QuotaState()
    quota.update(100.0, remaining=4, reset_after=10.0, in_flight=1, limit=60, sent_at=99.9)
    assert quota.known(100.0) == 3  # A still on the wire: assumed not yet counted
    quota.update(100.001, remaining=5, reset_after=9.999, in_flight=0, limit=60, sent_at=99.8)
    assert quota.known(100.001) == 3


def test_a_late_answer_can_lower_the_count() -> None:
    """An older answer that says less is left than believed is believed."""
    quota = QuotaState()
    quota.update(100.0, remaining=9, reset_after=10.0, in_flight=0, sent_at=99.9)
    quota.update(100.1, remaining=2, reset_after=9.9, in_flight=0, sent_at=99.5)
    assert quota.known(100.1) == 2


def test_an_answer_from_before_the_window_turned_is_ignored() -> None:
    """Once the reset passes, an answer to a request sent before it changes nothing."""
    quota = QuotaState()
    quota.update(0.0, remaining=0, reset_after=1.0, in_flight=0, limit=5, sent_at=-0.1)
    assert quota.take(0.5, in_flight=0) == pytest.approx((0.5, True))
    assert quota.take(1.0, in_flight=0) == (0.0, False)  # a new window: 5 - 1 taken
    assert quota.known(1.0) == 4
    taken = quota.update(1.1, remaining=0, reset_after=0.1, in_flight=0, sent_at=0.9)
    assert not taken
    assert quota.known(1.1) == 4


def test_a_newer_answer_replaces_the_count() -> None:
    """Answers in send order: the latest one is what is left."""
    quota = QuotaState()
    quota.update(0.0, remaining=10, reset_after=60.0, in_flight=0, sent_at=-0.1)
    quota.update(0.2, remaining=7, reset_after=59.8, in_flight=2, sent_at=0.1)
    assert quota.known(0.2) == 5


def test_nothing_left_and_nobody_in_flight_lets_one_ask() -> None:
    """0 left, the reset unknown: no count is kept; with answers pending, wait for news."""
    quota = QuotaState()
    quota.update(0.0, remaining=0, reset_after=None, in_flight=0, sent_at=-0.1)
    assert quota.known(0.0) is None
    quota.update(0.1, remaining=1, reset_after=None, in_flight=0, sent_at=0.0)
    assert quota.take(0.2, in_flight=0) == (0.0, False)
    assert quota.take(0.3, in_flight=1) == (-1.0, False)
    assert quota.take(0.3, in_flight=0) == (0.0, False)
    assert quota.known(0.1 + UNKNOWN_RESET_TTL) is None
