"""Read the quota a server advertises in its response headers: pure, linear-time, never raises.

:func:`parse_quota` turns one response's headers into a :class:`QuotaSignal` (requests left,
seconds until the quota resets, quota size, window length) or ``None``. It does no I/O and
reads no clock: ``now`` (wall-clock seconds since the epoch) only turns an absolute reset
time into seconds from now. The headers must be a case-insensitive mapping (a response's
``headers``); names are looked up in lower case.

Families
--------
Each family is read only when its "remaining" field (or, for ``ietf``, ``RateLimit`` or
``RateLimit-Policy``) is present, so a response without any costs six failed lookups.

- ``ietf``: draft-ietf-httpapi-ratelimit-headers (-08 and later), Structured Field lists.
  ``RateLimit: "default";r=0;t=30`` gives ``r`` units remaining and ``t`` seconds to the reset
  of each policy; ``RateLimit-Policy: "default";q=100;w=60`` gives the quota ``q`` per window
  of ``w`` seconds. An item and a policy pair up by name (a token or a string). Each
  ``RateLimit`` item is one candidate; with no usable ``RateLimit`` item, each policy is
  one (``remaining`` and ``reset_after`` unknown). A policy whose quota unit ``qu`` is not
  ``"requests"`` (``"content-bytes"``, ...) does not count requests: its item is a
  candidate only when ``r=0`` (a pause), and reports no ``limit``. The older drafts'
  dictionary form ``RateLimit: limit=100, remaining=0, reset=30`` is read as well.
- ``ratelimit``: separate ``RateLimit-Remaining``, ``RateLimit-Reset`` and ``RateLimit-Limit``
  fields (the earlier drafts, GitLab, many gateways).
- ``x-ratelimit``: ``X-RateLimit-Remaining``, ``X-RateLimit-Reset``, ``X-RateLimit-Limit``
  (GitHub and most APIs).
- ``openai-requests``: ``x-ratelimit-remaining-requests``, ``x-ratelimit-reset-requests``,
  ``x-ratelimit-limit-requests``.
- ``openai-tokens``: ``x-ratelimit-remaining-tokens`` and ``x-ratelimit-reset-tokens``.
  Tokens are not requests, so this family is a candidate only when no token is left:
  ``remaining=0`` and the tokens' reset, no ``limit``. A token count above zero says
  nothing about how many requests fit, and is not reported.

Which candidate wins
--------------------
The most restrictive, across and within families: first a candidate with ``remaining == 0``
(the longest known reset first, then one whose reset is unknown), then the smallest
``remaining`` (on a tie, the longer reset), then candidates without ``remaining`` (the longer
reset, then the lower ``limit / window``). A tie goes to the earlier family in the order
above, then to the earlier item in the field. The winner is reported whole: fields are
never mixed across candidates.

Reset values
------------
Rules for every ``*-Reset`` field, applied in order (:func:`parse_reset`); the ``t`` and
``reset`` of ``RateLimit`` are Structured Field numbers, read by rule 1 alone:

1. A plain number, ASCII digits with an optional fraction (``30``, ``1.5``; no sign, no
   exponent, at most 20 characters), is read by magnitude: at least ``1e12``
   (:data:`EPOCH_MILLIS_MIN`) is epoch milliseconds, at least ``1e9``
   (:data:`EPOCH_SECONDS_MIN`, September 2001) is epoch seconds (GitHub), anything smaller
   is a delta in seconds. These ranges cannot be confused in a usable value: a delta of
   ``1e9`` seconds (31 years) is far over the cap, and epoch seconds below ``1e9`` or epoch
   milliseconds below ``1e12`` lie in 2001 or before, that is in the past.
2. A Go duration, as Go's ``time.Duration`` prints it: one or more ``<number><unit>``
   with units ``h``, ``m``, ``s``, ``ms``, ``us`` (or ``µs``/``μs``), ``ns`` (``6m0s``,
   ``1.5s``, ``12ms``, ``1h2m3s``, ``500us``); no sign, digits before any ``.``, at most
   eight parts.
3. An HTTP-date in the IMF-fixdate form every HTTP sender must produce (``Sun, 06 Nov
   1994 08:49:37 GMT``), as ``Retry-After`` allows. The obsolete RFC 850 and asctime forms
   are not read.
4. Anything else is ignored.

An absolute time is converted with ``now``; a reset in the past is ``0``. A reset over
:data:`MAX_RESET_SECONDS` (one day) from now is ignored, not clamped: a server announcing a
longer wait is better served by its ``Retry-After`` and the pipeline's own ceiling.

Robustness
----------
- A field that cannot be read becomes ``None``; a candidate without ``remaining``,
  ``reset_after`` and ``limit`` is dropped; no candidate gives ``None``.
- Counts (``remaining``, ``limit``) are ASCII digits only (``'١٢'``, ``-1``, ``5.0``,
  ``1e3``, ``NaN`` are ignored) and at most :data:`MAX_REMAINING`; a window is in
  ``(0, MAX_RESET_SECONDS]``.
- Duplicate fields that were joined with commas: every non-empty member must be valid;
  the smallest count and the longest reset are kept (a joined HTTP-date is ignored). In a
  limit, parameters after ``;`` are ignored (the older drafts' ``100, 100;w=60``).
- ``RateLimit`` and ``RateLimit-Policy`` follow RFC 8941 strictly: a malformed field is
  ignored whole; unknown parameters are ignored; inner lists are not supported (a field
  holding one is ignored). A field over :data:`_MAX_MEMBERS` members, an item over
  :data:`_MAX_PARAMS` parameters or a string over :data:`_MAX_STRING_CHARS` characters is
  ignored.
- Time is linear in the input: the scanners move forward only, and every regular
  expression is anchored at the scanner's position with no nested repetition.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Mapping, Optional, TypeVar, Union

from requests.structures import CaseInsensitiveDict

__all__ = [
    "EPOCH_MILLIS_MIN",
    "EPOCH_SECONDS_MIN",
    "MAX_REMAINING",
    "MAX_RESET_SECONDS",
    "QuotaSignal",
    "parse_quota",
    "parse_reset",
]

#: Largest ``remaining`` or ``limit`` taken seriously; a larger count is ignored.
MAX_REMAINING = 10**9
#: Longest reset (and window) in seconds taken seriously; a longer one is ignored.
MAX_RESET_SECONDS = 86_400.0
#: A plain reset number at least this large is epoch seconds (2001-09-09T01:46:40Z).
EPOCH_SECONDS_MIN = 1e9
#: A plain reset number at least this large is epoch milliseconds (the same instant).
EPOCH_MILLIS_MIN = 1e12

#: Longest numeric text read (digits and ``.``); longer text is never a usable value.
_MAX_NUMBER_CHARS = 20
#: Most members read in a list field (Structured Field or comma-joined duplicates).
_MAX_MEMBERS = 64
#: Most parameters read on one Structured Field item.
_MAX_PARAMS = 32
#: Longest Structured Field string read (RFC 8941 asks parsers for at least 1024).
_MAX_STRING_CHARS = 1024
#: Most ``<number><unit>`` parts read in a Go duration.
_MAX_DURATION_PARTS = 8

_OWS = " \t"
_OWS_RUN = re.compile(r"[ \t]*")
_SP_RUN = re.compile(r" *")
_KEY = re.compile(r"[a-z*][a-z0-9_.*-]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*")
_NUMBER = re.compile(r"-?([0-9]+)(?:\.([0-9]*))?")
_STRING_RUN = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII but '"' and '\'
_BYTES = re.compile(r":[A-Za-z0-9+/=]*:")
# Bounded digit runs: a failed match backtracks over at most 20 digits, not the whole run.
_DURATION_PART = re.compile(r"([0-9]{1,20})(?:\.([0-9]{1,20}))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # MICRO SIGN, what Go prints
    "\u03bcs": 1e-6,  # GREEK SMALL LETTER MU, which Go also accepts
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_IMF_FIXDATE_CHARS = len("Sun, 06 Nov 1994 08:49:37 GMT")

#: The family names of the split-field families, with their remaining/reset/limit fields.
_FAMILIES = (
    ("ratelimit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-limit"),
    ("x-ratelimit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-limit"),
    (
        "openai-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-requests",
    ),
)
# Every field name parse_quota reads, lower-cased.
_NAMES = frozenset(
    {
        "ratelimit",
        "ratelimit-policy",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        *(name for family in _FAMILIES for name in family[1:]),
    }
)

# A Structured Field bare item: Integer, Decimal, String or Token (str), Byte Sequence (its
# base64 text, undecoded) or Boolean.
_Bare = Union[int, float, str, bytes, bool]
# A member of a list or dictionary: its key ("" in a list), value and parameters.
_Member = tuple[str, _Bare, dict[str, _Bare]]
# A quota policy: quota, window, and whether its unit is requests.
_Policy = tuple[Optional[int], Optional[float], bool]
_UNKNOWN_POLICY: _Policy = (None, None, True)
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class QuotaSignal:
    """What one response says about the client's quota on its host.

    Attributes:
        remaining: Requests left in the current window, in ``[0, MAX_REMAINING]``; None if
            unknown. ``0`` means: send nothing more until ``reset_after`` has passed.
        reset_after: Seconds from ``now`` until the quota resets, in
            ``[0, MAX_RESET_SECONDS]``; None if unknown.
        limit: The quota's size in requests, in ``[0, MAX_REMAINING]``; None if unknown.
        window: The quota's window in seconds, in ``(0, MAX_RESET_SECONDS]`` (IETF ``w``);
            None if unknown.
        source: The family it was read from: ``"ietf"``, ``"ratelimit"``,
            ``"x-ratelimit"``, ``"openai-requests"`` or ``"openai-tokens"``.
    """

    remaining: Optional[int]
    reset_after: Optional[float]
    limit: Optional[int]
    window: Optional[float]
    source: str


def parse_quota(headers: Mapping[str, str], now: float) -> Optional[QuotaSignal]:
    """Read the most restrictive quota the response's headers advertise.

    Args:
        headers: The response's headers, a case-insensitive mapping such as requests'
            ``CaseInsensitiveDict``, with ``str`` values.
        now: Wall-clock seconds since the epoch (``time.time()``), used only for resets
            given as absolute times.

    Returns:
        The winning candidate (see the module docstring for families and ranking), or None
        when no family is present or nothing usable is left. Never raises for ``str``
        values.
    """
    if isinstance(headers, CaseInsensitiveDict) and _NAMES.isdisjoint(headers._store):  # type: ignore[attr-defined]
        return None  # it keeps its names lower-cased in _store: none of these is there
    rate_limit = headers.get("ratelimit")
    policy = headers.get("ratelimit-policy")
    candidates = (
        _ietf(rate_limit, policy, now) if rate_limit is not None or policy is not None else []
    )
    for source, remaining_name, reset_name, limit_name in _FAMILIES:
        remaining = headers.get(remaining_name)
        if remaining is not None:
            signal = _candidate(
                _count_field(remaining),
                parse_reset(headers.get(reset_name), now),
                _count_field(headers.get(limit_name), params=True),
                None,
                source,
            )
            if signal is not None:
                candidates.append(signal)
    tokens = headers.get("x-ratelimit-remaining-tokens")
    if tokens is not None and _count_field(tokens) == 0:
        reset = parse_reset(headers.get("x-ratelimit-reset-tokens"), now)
        candidates.append(QuotaSignal(0, reset, None, None, "openai-tokens"))
    return min(candidates, key=_severity) if candidates else None


def parse_reset(value: Optional[str], now: float) -> Optional[float]:
    """Read a reset field as seconds from ``now``, by the rules in the module docstring.

    Args:
        value: The field's value (None when absent). Duplicates joined with commas are
            read member by member; the longest reset wins, and one bad member spoils all.
        now: Wall-clock seconds since the epoch, for absolute forms.

    Returns:
        Seconds in ``[0, MAX_RESET_SECONDS]``, or None when absent, unreadable or too far.
    """
    if value is None:
        return None
    whole = _reset_value(value, now)
    if whole is not None or "," not in value:
        return whole
    return _fold_members(value, lambda member: _reset_value(member, now), max)


def _severity(signal: QuotaSignal) -> tuple[int, float, float]:
    """Rank a candidate: the lowest tuple is the most restrictive."""
    reset = signal.reset_after
    if signal.remaining == 0:
        return (0, 0.0 if reset is not None else 1.0, -(reset or 0.0))
    if signal.remaining is not None:
        return (1, float(signal.remaining), -(reset or 0.0))
    rate = signal.limit / signal.window if signal.limit is not None and signal.window else math.inf
    return (2, -(reset or 0.0), rate)


def _candidate(
    remaining: Optional[int],
    reset_after: Optional[float],
    limit: Optional[int],
    window: Optional[float],
    source: str,
) -> Optional[QuotaSignal]:
    """Build a signal, or None when it has neither remaining, reset nor limit."""
    if remaining is None and reset_after is None and limit is None:
        return None
    return QuotaSignal(remaining, reset_after, limit, window, source)


# --- IETF fields -------------------------------------------------------------------------


def _ietf(rate_limit: Optional[str], policy: Optional[str], now: float) -> list[QuotaSignal]:
    """Return one candidate per usable ``RateLimit`` item, or per policy when there is none."""
    policies = _policies(policy) if policy is not None else {}
    out: list[QuotaSignal] = []
    if rate_limit is not None:
        items = _parse_sf(rate_limit, dictionary=False)
        if items is None:
            out = _ietf_dictionary(rate_limit, now)
        else:
            out = _ietf_items(items, policies, now)
    if not out:
        out = [
            QuotaSignal(None, None, quota, window, "ietf")
            for quota, window, requests in policies.values()
            if requests and quota is not None
        ]
    return out


def _policies(value: str) -> dict[str, _Policy]:
    """Read ``RateLimit-Policy`` by name; a repeated name keeps its first policy."""
    policies: dict[str, _Policy] = {}
    for _, name, params in _parse_sf(value, dictionary=False) or ():
        if isinstance(name, str) and name not in policies:
            requests = params.get("qu", "requests") == "requests"
            policies[name] = (_sf_count(params.get("q")), _sf_window(params.get("w")), requests)
    return policies


def _ietf_items(
    items: list[_Member], policies: dict[str, _Policy], now: float
) -> list[QuotaSignal]:
    """Return the candidates of a ``RateLimit`` list, each with its policy's quota."""
    out: list[QuotaSignal] = []
    for _, name, params in items:
        remaining = _sf_count(params.get("r"))
        quota, window, requests = (
            policies.get(name, _UNKNOWN_POLICY) if isinstance(name, str) else _UNKNOWN_POLICY
        )
        if not requests:
            if remaining != 0:
                continue  # a count of bytes or tokens is no count of requests
            quota = None
        signal = _candidate(remaining, _sf_reset(params.get("t"), now), quota, window, "ietf")
        if signal is not None:
            out.append(signal)
    return out


def _ietf_dictionary(value: str, now: float) -> list[QuotaSignal]:
    """Read the older drafts' ``RateLimit: limit=100, remaining=0, reset=30``."""
    members = _parse_sf(value, dictionary=True)
    if members is None:
        return []
    fields = {key: item for key, item, _ in members}  # a repeated key: the last one wins
    signal = _candidate(
        _sf_count(fields.get("remaining")),
        _sf_reset(fields.get("reset"), now),
        _sf_count(fields.get("limit")),
        None,
        "ietf",
    )
    return [signal] if signal is not None else []


def _sf_count(item: Optional[_Bare]) -> Optional[int]:
    """Return a Structured Field Integer in ``[0, MAX_REMAINING]``, else None."""
    if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= MAX_REMAINING:
        return item
    return None


def _sf_seconds(item: Optional[_Bare]) -> Optional[float]:
    """Return a non-negative Structured Field Integer or Decimal as a float, else None."""
    if isinstance(item, (int, float)) and not isinstance(item, bool) and item >= 0:
        return float(item)
    return None


def _sf_window(item: Optional[_Bare]) -> Optional[float]:
    """Return a window in ``(0, MAX_RESET_SECONDS]``, else None."""
    seconds = _sf_seconds(item)
    return seconds if seconds is not None and 0 < seconds <= MAX_RESET_SECONDS else None


def _sf_reset(item: Optional[_Bare], now: float) -> Optional[float]:
    """Return a Structured Field reset (rule 1 of the module docstring), else None."""
    seconds = _sf_seconds(item)
    return _bounded_reset(_by_magnitude(seconds, now)) if seconds is not None else None


# --- Plain fields ------------------------------------------------------------------------


def _members(value: str) -> list[str]:
    """Split comma-joined duplicates into their non-empty members; [] when too many."""
    parts = value.split(",", _MAX_MEMBERS)
    if len(parts) > _MAX_MEMBERS:
        return []
    return [member for part in parts if (member := part.strip(_OWS))]


def _count_field(value: Optional[str], *, params: bool = False) -> Optional[int]:
    """Read a count field: the smallest of its members, None if any member is bad.

    Args:
        value: The field's value, None when absent.
        params: Ignore ``;parameters`` after each member (limits in the older drafts).
    """
    if value is None:
        return None
    return _fold_members(value, _count_before_params if params else _count, min)


def _fold_members(
    value: str, read: Callable[[str], Optional[_N]], pick: Callable[[_N, _N], _N]
) -> Optional[_N]:
    """Read every member of comma-joined duplicates and ``pick`` one; None if any is bad."""
    chosen: Optional[_N] = None
    for member in _members(value):
        got = read(member)
        if got is None:
            return None
        chosen = got if chosen is None else pick(chosen, got)
    return chosen


def _count_before_params(text: str) -> Optional[int]:
    """Return the count before any ``;parameters`` (``100;w=60``), else None."""
    return _count(text.partition(";")[0].rstrip(_OWS))


def _count(text: str) -> Optional[int]:
    """Return ASCII digits as a count in ``[0, MAX_REMAINING]``, else None."""
    if 0 < len(text) <= _MAX_NUMBER_CHARS and text.isascii() and text.isdigit():
        count = int(text)
        return count if count <= MAX_REMAINING else None
    return None


def _reset_value(text: str, now: float) -> Optional[float]:
    """Read one reset value by rules 1-3 of the module docstring."""
    text = text.strip(_OWS)
    seconds: Optional[float]
    if _is_plain_number(text):
        seconds = _by_magnitude(float(text), now)
    elif text.endswith(" GMT"):
        at = _imf_fixdate(text)
        seconds = at - now if at is not None else None
    else:
        seconds = _go_duration(text)
    return _bounded_reset(seconds)


def _is_plain_number(text: str) -> bool:
    """Tell whether ``text`` is ASCII digits with an optional ``.digits`` fraction."""
    if not 0 < len(text) <= _MAX_NUMBER_CHARS or not text.isascii():
        return False
    whole, dot, fraction = text.partition(".")
    return whole.isdigit() and (not dot or fraction.isdigit())


def _by_magnitude(value: float, now: float) -> float:
    """Apply rule 1: epoch milliseconds, epoch seconds or a delta, by magnitude."""
    if value >= EPOCH_MILLIS_MIN:
        return value / 1000.0 - now
    if value >= EPOCH_SECONDS_MIN:
        return value - now
    return value


def _bounded_reset(seconds: Optional[float]) -> Optional[float]:
    """Return a past reset as 0, one over the cap (or not finite) as None."""
    if seconds is None or not seconds <= MAX_RESET_SECONDS:  # NaN fails the comparison
        return None
    return max(0.0, seconds)


def _go_duration(text: str) -> Optional[float]:
    """Return a Go duration (``1h2m3.5s``) in seconds, else None."""
    total = 0.0
    pos = 0
    for _ in range(_MAX_DURATION_PARTS):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            return None
        whole, fraction, unit = match.groups()
        if len(whole) + len(fraction or "") > _MAX_NUMBER_CHARS:
            return None
        total += float(f"{whole}.{fraction or '0'}") * _UNIT_SECONDS[unit]
        pos = match.end()
        if pos == len(text):
            return total
    return None


def _imf_fixdate(text: str) -> Optional[float]:
    """Return an IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``) as epoch seconds."""
    if len(text) != _IMF_FIXDATE_CHARS or not text.isascii():
        return None
    parts = text.split(" ")
    if len(parts) != 6:
        return None
    weekday, day, month, year, clock, zone = parts
    hour, _, rest = clock.partition(":")
    minute, _, second = rest.partition(":")
    numbers = (day, year, hour, minute, second)
    if (
        weekday[:3] not in _DAYS
        or weekday[3:] != ","
        or month not in _MONTHS
        or zone != "GMT"
        or [len(n) for n in numbers] != [2, 4, 2, 2, 2]
        or not all(n.isdigit() for n in numbers)
    ):
        return None
    try:
        moment = datetime(
            int(year),
            _MONTHS.index(month) + 1,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone.utc,
        )
    except ValueError:  # 31 Feb, hour 24, second 60
        return None
    return moment.timestamp()


# --- RFC 8941 Structured Fields (the part the draft needs) -------------------------------


class _Malformed(Exception):
    """Raised inside the Structured Field reader; the field is then ignored."""


def _parse_sf(text: str, *, dictionary: bool) -> Optional[list[_Member]]:
    """Parse an RFC 8941 List (or Dictionary) of Items with Parameters.

    Args:
        text: The field's value.
        dictionary: Parse a Dictionary (``key=item;params``) instead of a List.

    Returns:
        The members in order (the key of a List member is ``""``), or None when the field
        is malformed, uses an inner list, or exceeds a size bound.
    """
    try:
        return _SFReader(text).members(dictionary)
    except _Malformed:
        return None


class _SFReader:
    """A forward-only reader over one field value (each method advances ``pos``)."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _skip(self, run: re.Pattern[str]) -> None:
        """Advance past a (possibly empty) run of the characters ``run`` matches."""
        self._take(run)

    def _take(self, pattern: re.Pattern[str]) -> str:
        """Consume and return what ``pattern`` matches here, or fail."""
        match = pattern.match(self.text, self.pos)
        if match is None:
            raise _Malformed
        self.pos = match.end()
        return match.group()

    def members(self, dictionary: bool) -> list[_Member]:
        """Read the whole field: members separated by commas, nothing after."""
        text = self.text
        self._skip(_SP_RUN)
        out: list[_Member] = []
        while self.pos < len(text):
            if len(out) == _MAX_MEMBERS:
                raise _Malformed
            key = self._take(_KEY) if dictionary else ""
            value: _Bare = True
            if not dictionary:
                value = self.bare_item()
            elif text[self.pos : self.pos + 1] == "=":
                self.pos += 1
                value = self.bare_item()
            out.append((key, value, self.params()))
            self._skip(_OWS_RUN)
            if self.pos == len(text):
                break
            if text[self.pos] != ",":
                raise _Malformed
            self.pos += 1
            self._skip(_OWS_RUN)
            if self.pos == len(text):
                raise _Malformed  # a trailing comma
        return out

    def params(self) -> dict[str, _Bare]:
        """Read ``;key[=item]`` parameters; a repeated key keeps its last value."""
        text = self.text
        params: dict[str, _Bare] = {}
        for _ in range(_MAX_PARAMS + 1):
            if text[self.pos : self.pos + 1] != ";":
                return params
            self.pos += 1
            self._skip(_SP_RUN)
            key = self._take(_KEY)
            if text[self.pos : self.pos + 1] == "=":
                self.pos += 1
                params[key] = self.bare_item()
            else:
                params[key] = True
        raise _Malformed

    def bare_item(self) -> _Bare:
        """Read an Integer, Decimal, String, Token, Byte Sequence or Boolean."""
        text = self.text
        first = text[self.pos : self.pos + 1]
        if first == "-" or "0" <= first <= "9":
            return self.number()
        if first == '"':
            return self.string()
        if first == ":":
            return self._take(_BYTES)[1:-1].encode("ascii")
        if first == "?":
            flag = text[self.pos + 1 : self.pos + 2]
            if flag not in ("0", "1"):
                raise _Malformed
            self.pos += 2
            return flag == "1"
        return self._take(_TOKEN)

    def number(self) -> Union[int, float]:
        """Read an Integer (up to 15 digits) or a Decimal (12 digits, then 1 to 3)."""
        match = _NUMBER.match(self.text, self.pos)
        if match is None:
            raise _Malformed
        whole, fraction = match.groups()
        self.pos = match.end()
        if fraction is None:
            if len(whole) > 15:
                raise _Malformed
            return int(match.group())
        if len(whole) > 12 or not 1 <= len(fraction) <= 3:
            raise _Malformed
        return float(match.group())

    def string(self) -> str:
        """Read a String: printable ASCII between quotes; a backslash escapes ``"`` or itself."""
        text = self.text
        self.pos += 1
        chunks: list[str] = []
        size = 0
        while True:
            run = self._take(_STRING_RUN)
            chunks.append(run)
            size += len(run)
            if size > _MAX_STRING_CHARS:
                raise _Malformed
            here = text[self.pos : self.pos + 1]
            if here == '"':
                self.pos += 1
                return "".join(chunks)
            escaped = text[self.pos + 1 : self.pos + 2]
            if here != "\\" or escaped not in ('"', "\\"):
                raise _Malformed
            chunks.append(escaped)
            size += 1
            self.pos += 2
