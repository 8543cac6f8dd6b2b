"""The decision after an attempt: pure functions of the policy, the outcome and the time.

:func:`decide` answers *what now?* — return the response, retry after ``n`` seconds, or
give up (and why) — from the urllib3 ``Retry`` policy (it still decides which statuses and
methods retry, and counts), the attempt's :class:`~._exchange.Outcome`, the current time
and the call's deadline. It reads no clock, sleeps for nothing, touches no host state:
tests drive it with bare outcomes, as urllib3 tests ``Retry``.

:func:`verdict_of` says what an outcome means *for the host* (the breaker's question):
a connection error, a timeout of the host's own, a broken body or a 5xx is a failure; a
response below 500 is a success (a 429 says "slow down", not "I am failing"); a
client-side error, a local file error or the caller's own deadline is neutral.
"""

from __future__ import annotations

import math
import random
import socket
import ssl
from typing import TYPE_CHECKING, NamedTuple, Optional, Union

import requests.exceptions as rex
import urllib3.exceptions as uex
from urllib3.util.retry import Retry

from .exceptions import RateLimitExceeded

if TYPE_CHECKING:
    from requests import Response

    from ._exchange import Outcome

__all__ = [
    "RETURN",
    "GiveUp",
    "Retry_",
    "Return",
    "Step",
    "backoff",
    "decide",
    "retry_after_of",
    "verdict_of",
]

# Statuses whose Retry-After pauses the host for every caller.
PAUSE_STATUSES = frozenset({429, 503})
# The longest Retry-After reported (about 31 years); longer ones are reported as this.
RETRY_AFTER_CEILING = 1e9
# Errors on which retrying cannot help.
_PERMANENT_DNS = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)
_WIRE_ERRORS = (
    rex.ConnectionError,
    rex.Timeout,
    rex.ChunkedEncodingError,
    rex.ContentDecodingError,
)


class Return(NamedTuple):
    """Return the response as it is."""


class Retry_(NamedTuple):
    """Retry after ``wait`` seconds, with the policy state ``retry``."""

    retry: Retry
    wait: float


class GiveUp(NamedTuple):
    """Stop: leave with the outcome (or raise ``error`` when set). ``reason`` says why."""

    reason: str
    error: Optional[Exception] = None


#: What follows an attempt.
Step = Union[Return, Retry_, GiveUp]
RETURN = Return()


def verdict_of(outcome: Outcome) -> str:
    """Say what an attempt means for its host: ``"success"``, ``"failure"`` or ``"neutral"``.

    Args:
        outcome: The attempt's outcome.

    Returns:
        The verdict (see the module docstring).
    """
    response = outcome.response
    if response is not None:
        return "failure" if response.status_code >= 500 else "success"
    if outcome.deadline_hit or outcome.local:
        return "neutral"
    return "failure" if isinstance(outcome.error, _WIRE_ERRORS) else "neutral"


def retry_after_of(retry: Retry, response: Response) -> Optional[float]:
    """Return a 429's or 503's ``Retry-After`` in seconds; None when absent, unusable or 0.

    urllib3 parses it (seconds or HTTP-date). Newer urllib3 caps the value at its own
    ``retry_after_max``; the pipeline needs the server's real value (to refuse a wait
    longer than ours), so it parses with that cap lifted. A value of 0 (or a date in the
    past) means "no wait asked for", and normal backoff applies, as in urllib3.
    """
    if (
        not retry.respect_retry_after_header
        or response.status_code not in PAUSE_STATUSES
        or "Retry-After" not in response.headers
    ):
        return None
    if getattr(retry, "retry_after_max", math.inf) < math.inf:
        retry = retry.new(retry_after_max=math.inf)
    try:
        value = retry.get_retry_after(response.raw)
    except (uex.InvalidHeader, ValueError, OverflowError):
        # Garbage, a negative number or an impossible date: ignored. A number with more
        # digits than Python parses is a wait longer than anyone allows.
        header = response.headers.get("Retry-After", "").strip()
        digits = header.isascii() and header.isdigit()
        return RETRY_AFTER_CEILING if digits else None
    if value is None or value <= 0:
        return None
    try:
        return min(float(value), RETRY_AFTER_CEILING)
    except OverflowError:
        return RETRY_AFTER_CEILING


def backoff(retry: Retry, rng: random.Random) -> float:
    """Full jitter: uniform in ``[0, min(backoff_max, factor * 2 ** (retries - 1))]``."""
    retries = max(1, len(retry.history))
    ceiling = min(
        float(getattr(retry, "backoff_max", Retry.DEFAULT_BACKOFF_MAX)),
        retry.backoff_factor * (2 ** (retries - 1)),
    )
    return rng.uniform(0.0, ceiling) if ceiling > 0 else 0.0


def _low_level(error: rex.RequestException) -> Exception:
    """Return the urllib3 error behind a requests error, for the Retry policy to classify."""
    arg = error.args[0] if error.args else None
    if isinstance(arg, uex.MaxRetryError) and arg.reason is not None:
        arg = arg.reason
    if isinstance(arg, uex.HTTPError):
        return arg
    # No urllib3 error inside (requests wraps a bare OSError so): assume the worst, that
    # bytes may have reached the server, so only idempotent requests are replayed.
    return uex.ProtocolError(str(error), error)


def _retry_cannot_help(low: BaseException) -> bool:
    """Tell whether retrying ``low`` is pointless: TLS verification, unknown host name."""
    current: Optional[BaseException] = low
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, (ssl.SSLCertVerificationError, ssl.CertificateError)):
            return True
        if isinstance(current, socket.gaierror) and current.errno in _PERMANENT_DNS:
            return True
        reason = getattr(current, "reason", None)
        current = (
            reason
            if isinstance(reason, BaseException)
            else current.__cause__ or current.__context__
        )
    return False


def _after_response(
    retry: Retry,
    method: str,
    url: str,
    outcome: Outcome,
    limit: tuple[float, str],
    remaining: float,
) -> Union[Step, Retry]:
    response = outcome.response
    assert response is not None
    retry_after = outcome.retry_after
    if not retry.is_retry(method, response.status_code, retry_after is not None):
        return RETURN
    try:
        new_retry = retry.increment(method, url, response=response.raw)
    except uex.MaxRetryError:
        return GiveUp("retries exhausted")
    retry_after_max, name = limit
    if retry_after is not None and (retry_after > retry_after_max or retry_after > remaining):
        bound = name if retry_after > retry_after_max else "the deadline"
        error = RateLimitExceeded(
            f"{method} {url}: the server asked to wait {retry_after:.3f} s (Retry-After), "
            f"longer than {bound} allows",
            retry_after=retry_after,
            response=response,
        )
        return GiveUp("retry_after", error)
    return new_retry


def _after_error(retry: Retry, method: str, url: str, outcome: Outcome) -> Union[Step, Retry]:
    error = outcome.error
    assert error is not None
    if outcome.deadline_hit:
        return GiveUp("total_timeout expired")
    if outcome.local or not isinstance(error, _WIRE_ERRORS):
        return GiveUp("not retryable")
    low = _low_level(error)
    if _retry_cannot_help(low):
        return GiveUp("retrying cannot help")
    try:
        return retry.increment(method, url, error=low)
    except uex.MaxRetryError:
        return GiveUp("retries exhausted")
    except Exception:  # noqa: BLE001 - what urllib3 re-raises means "do not retry"
        # urllib3 re-raises errors it will not retry: a read error on a method that is not
        # idempotent, whose bytes may have reached the server.
        return GiveUp("not safe to replay")


def decide(
    retry: Retry,
    method: str,
    url: str,
    outcome: Outcome,
    *,
    retry_after_max: float,
    now: float,
    deadline: Optional[float],
    rng: random.Random,
    replayable: bool = True,
    retry_after_bound: str = "retry_after_max",
) -> Step:
    """Decide what follows an attempt.

    Args:
        retry: The policy state before this attempt (urllib3 ``Retry``, never mutated).
        method: The request method, upper-case.
        url: The request URL, redacted (for the policy's history).
        outcome: The attempt's outcome, completed by admission.
        retry_after_max: The longest ``Retry-After`` the caller waits for.
        now: Monotonic time.
        deadline: The call's deadline, or None.
        rng: The random source of the backoff's jitter.
        replayable: The request's body can be sent again (a stream without a recorded
            start position cannot: the request is never retried).
        retry_after_bound: The keyword ``retry_after_max`` comes from, for the error.

    Returns:
        :data:`RETURN`, :class:`Retry_` with the wait, or :class:`GiveUp` with the reason.
    """
    remaining = math.inf if deadline is None else deadline - now
    if outcome.response is not None:
        limit = (retry_after_max, retry_after_bound)
        step = _after_response(retry, method, url, outcome, limit, remaining)
    else:
        step = _after_error(retry, method, url, outcome)
    if not isinstance(step, Retry):
        return step
    if not replayable:
        return GiveUp("the body is a stream that cannot be sent again")
    if outcome.tripped:
        return GiveUp("the circuit breaker opened")
    # A host pause (Retry-After, quota reset, slow-down) makes the next attempt wait.
    wait = 0.0 if outcome.pause > 0 else backoff(step, rng)
    if remaining <= max(wait, outcome.retry_after or 0.0):
        return GiveUp("the deadline leaves no time for another attempt")
    return Retry_(step, wait)
