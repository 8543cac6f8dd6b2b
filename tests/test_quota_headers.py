"""The quota-header parser: each family, each reset form, precedence, and hostile input.

Every test passes ``now`` explicitly, so nothing depends on the clock. The property tests
check that any header text gives None or an in-range signal, and the adversarial tests that
megabyte values are dealt with at once (under a generous timeout, not a stopwatch).
"""

from __future__ import annotations

import math
from typing import Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from requests_connection_manager._quota_headers import (
    EPOCH_MILLIS_MIN,
    EPOCH_SECONDS_MIN,
    MAX_REMAINING,
    MAX_RESET_SECONDS,
    QuotaSignal,
    parse_quota,
    parse_reset,
)

#: A fixed "now": 2023-11-14T22:13:20Z.
NOW = 1_700_000_000.0

#: Every field the parser reads.
NAMES = (
    "RateLimit",
    "RateLimit-Policy",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Limit",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)
SOURCES = {"ietf", "ratelimit", "x-ratelimit", "openai-requests", "openai-tokens"}


def quota(**fields: str) -> Optional[QuotaSignal]:
    """Parse headers given as keywords (``X_RateLimit_Reset`` is ``X-RateLimit-Reset``)."""
    headers = CaseInsensitiveDict({name.replace("_", "-"): value for name, value in fields.items()})
    return parse_quota(headers, NOW)


def source(**fields: str) -> Optional[str]:
    """Return the family the winning signal came from, None when there is none."""
    result = quota(**fields)
    return result.source if result is not None else None


def signal(
    remaining: Optional[int],
    reset_after: Optional[float],
    limit: Optional[int] = None,
    window: Optional[float] = None,
    source: str = "ietf",
) -> QuotaSignal:
    """Build the expected signal, with the rarer fields optional."""
    return QuotaSignal(remaining, reset_after, limit, window, source)


def assert_in_range(result: Optional[QuotaSignal]) -> None:
    """Check every field of a parse result against the documented ranges."""
    if result is None:
        return
    assert result.source in SOURCES
    assert not (result.remaining is None and result.reset_after is None and result.limit is None)
    for count in (result.remaining, result.limit):
        assert count is None or (type(count) is int and 0 <= count <= MAX_REMAINING)
    if result.reset_after is not None:
        assert type(result.reset_after) is float
        assert math.isfinite(result.reset_after)
        assert 0.0 <= result.reset_after <= MAX_RESET_SECONDS
    if result.window is not None:
        assert 0.0 < result.window <= MAX_RESET_SECONDS
    if result.source == "openai-tokens":
        assert (result.remaining, result.limit) == (0, None)


# --- No family ---------------------------------------------------------------------------


def test_no_family_gives_none() -> None:
    """A response without any quota field gives None."""
    assert quota(Content_Type="text/plain", Retry_After="5", X_Request_Id="abc") is None
    assert parse_quota(CaseInsensitiveDict(), NOW) is None


def test_a_reset_or_limit_alone_is_not_read() -> None:
    """A family is read only when its remaining field (or an IETF field) is present."""
    assert quota(X_RateLimit_Reset="30", X_RateLimit_Limit="100") is None
    assert quota(x_ratelimit_reset_tokens="1s") is None


def test_nothing_usable_gives_none() -> None:
    """Families present but every field unreadable give None."""
    assert quota(X_RateLimit_Remaining="lots", X_RateLimit_Reset="soon") is None
    assert quota(RateLimit='"default";r=-1;t=-1', RateLimit_Policy='"default";w=60') is None
    assert quota(RateLimit="garbage garbage") is None


def test_names_are_case_insensitive() -> None:
    """Any spelling of the names is found through the case-insensitive mapping."""
    assert quota(X_RATELIMIT_REMAINING="4") == signal(4, None, source="x-ratelimit")
    assert quota(ratelimit='"p";r=4') == signal(4, None)


# --- IETF --------------------------------------------------------------------------------


def test_ietf_item_pairs_with_its_policy() -> None:
    """An item of RateLimit takes q and w from the RateLimit-Policy of the same name."""
    result = quota(RateLimit='"default";r=0;t=30', RateLimit_Policy='"default";q=100;w=60')
    assert result == signal(0, 30.0, 100, 60.0)


def test_ietf_token_names_of_draft_08() -> None:
    """Names may be tokens (draft -08) as well as strings; both pair up."""
    result = quota(RateLimit="default;r=5;t=10", RateLimit_Policy='"default";q=10;w=20')
    assert result == signal(5, 10.0, 10, 20.0)


def test_ietf_item_without_a_policy() -> None:
    """An item whose name has no policy reports no limit and no window."""
    result = quota(RateLimit='"default";r=5;t=10', RateLimit_Policy='"other";q=10;w=20')
    assert result == signal(5, 10.0)


def test_ietf_exhausted_policy_with_the_longest_reset_wins() -> None:
    """Among several policies, r=0 with the largest t wins, whatever its position."""
    result = quota(
        RateLimit='"a";r=5;t=10, "b";r=0;t=20, "c";r=0;t=40, "d";r=0;t=5',
        RateLimit_Policy='"a";q=50;w=10, "b";q=100;w=60, "c";q=1000;w=3600',
    )
    assert result == signal(0, 40.0, 1000, 3600.0)


def test_ietf_exhausted_with_a_known_reset_beats_an_unknown_reset() -> None:
    """An exhausted policy without t ranks after exhausted policies with one."""
    assert quota(RateLimit='"a";r=0, "b";r=0;t=3') == signal(0, 3.0)
    assert quota(RateLimit='"a";r=0, "b";r=1;t=3') == signal(0, None)


def test_ietf_smallest_remaining_wins_when_none_is_exhausted() -> None:
    """Without r=0, the smallest r wins."""
    result = quota(RateLimit='"minute";r=50;t=1, "day";r=3;t=100, "hour";r=9;t=2')
    assert result == signal(3, 100.0)


def test_ietf_equal_remaining_longer_reset_wins() -> None:
    """Two policies with the same r: the later reset is more restrictive."""
    assert quota(RateLimit='"a";r=3;t=1, "b";r=3;t=9, "c";r=3;t=2') == signal(3, 9.0)


def test_ietf_full_tie_goes_to_the_first_item() -> None:
    """Identical items: the first one listed is reported."""
    result = quota(
        RateLimit='"a";r=3;t=9, "b";r=3;t=9', RateLimit_Policy='"a";q=5;w=9, "b";q=6;w=9'
    )
    assert result == signal(3, 9.0, 5, 9.0)


def test_ietf_first_policy_of_a_name_counts() -> None:
    """A repeated policy name keeps its first policy; an unnamed older-draft policy is skipped."""
    result = quota(RateLimit='"d";r=2;t=3', RateLimit_Policy='100;w=60, "d";q=5;w=10, "d";q=1;w=1')
    assert result == signal(2, 3.0, 5, 10.0)


def test_ietf_policy_alone_reports_the_lowest_rate() -> None:
    """RateLimit-Policy alone gives the policy with the lowest q/w, remaining unknown."""
    result = quota(RateLimit_Policy='"burst";q=100;w=60, "daily";q=1000;w=86400, "x";q=5')
    assert result == signal(None, None, 1000, 86400.0)
    assert quota(RateLimit_Policy='"x";q=5') == signal(None, None, 5)


def test_ietf_policy_is_used_when_no_item_is_usable() -> None:
    """A RateLimit without r or t falls back to the policies."""
    result = quota(RateLimit='"default";foo=1', RateLimit_Policy='"default";q=100;w=60')
    assert result == signal(None, None, 100, 60.0)


def test_ietf_non_request_units_count_only_when_exhausted() -> None:
    """A policy counting bytes pauses at r=0, and its bytes never pose as requests."""
    policy = '"bytes";q=1000;w=10;qu="content-bytes", "calls";q=50;w=60'
    assert quota(RateLimit='"bytes";r=500;t=5', RateLimit_Policy=policy) == signal(
        None, None, 50, 60.0
    )
    assert quota(RateLimit='"bytes";r=0;t=5, "calls";r=20;t=30', RateLimit_Policy=policy) == (
        signal(0, 5.0, None, 10.0)
    )
    result = quota(RateLimit='"calls";r=20;t=30', RateLimit_Policy='"calls";q=50;qu="requests"')
    assert result == signal(20, 30.0, 50)


def test_ietf_dictionary_form_of_older_drafts() -> None:
    """``RateLimit: limit=100, remaining=0, reset=30`` is read as one candidate."""
    assert quota(RateLimit="limit=100, remaining=0, reset=30") == signal(0, 30.0, 100)
    assert quota(RateLimit="remaining=7;w=1, reset=2, foo") == signal(7, 2.0)
    assert quota(RateLimit="limit=100, remaining=1, remaining=4") == signal(4, None, 100)


def test_ietf_unknown_parameters_and_item_kinds_are_ignored() -> None:
    """Byte sequences, booleans, strings and unknown keys around r and t do no harm."""
    result = quota(RateLimit='"default";pk=:cHJvamVjdA==:;r=3;x=?1;t=7;note="a;b,c";d=-1.5')
    assert result == signal(3, 7.0)
    assert quota(RateLimit="*tok/en:x;r=2;t=4, 12;r=9, ?1;r=8") == signal(2, 4.0)


def test_ietf_booleans_are_not_counts() -> None:
    """``r`` without a value is Boolean true, not the integer 1."""
    assert quota(RateLimit='"default";r;t=5') == signal(None, 5.0)
    assert quota(RateLimit='"default";r=?1;t=?0') is None


def test_ietf_decimal_reset_and_integer_only_counts() -> None:
    """The t and w parameters may be Decimals; r and q must be Integers."""
    result = quota(RateLimit='"p";r=1.0;t=1.5', RateLimit_Policy='"p";q=9.5;w=0.5')
    assert result == signal(None, 1.5, None, 0.5)


def test_ietf_string_escapes() -> None:
    """A name with escaped quote and backslash still pairs with its policy."""
    name = r'"a\"b\\"'
    result = quota(RateLimit=name + ";r=1;t=2", RateLimit_Policy=name + ";q=3;w=4")
    assert result == signal(1, 2.0, 3, 4.0)


def test_ietf_whitespace_rules() -> None:
    """OWS around commas and SP before a parameter key are allowed, nothing else."""
    assert quota(RateLimit=' "a";r=1 ,\t"b"; r=0; t=3 ') == signal(0, 3.0)
    assert quota(RateLimit='"a" ;r=1') is None
    assert quota(RateLimit='"a";r =1') is None


@pytest.mark.parametrize(
    "value",
    [
        '"a";r=0;t=30,',  # trailing comma
        '"a";r=0;t=30,,"b";r=1',  # empty member
        '("a" "b");r=0;t=30',  # inner list: not supported
        '"a";r=0;t=1.2345',  # four fraction digits
        '"a";r=0;t=1.',  # no fraction digit
        '"a";r=1234567890123456;t=1',  # sixteen-digit integer
        '"a";R=0;t=30',  # upper-case key
        '"a;r=0;t=30',  # unterminated string
        '"a\\x";r=0',  # bad escape
        '"caf\u00e9";r=0;t=1',  # non-ASCII in a string
        '"a";r=0;t=30 "b"',  # junk after an item
        '"a";r=-;t=1',  # a sign without digits
        '"a";r=0;t=?2',  # a Boolean is ?0 or ?1
        "@1700000000;r=0",  # an RFC 9651 date: not read
        '"a";r=0;t=%"x"',  # an RFC 9651 display string: not read
    ],
)
def test_ietf_malformed_field_is_ignored_whole(value: str) -> None:
    """Any RFC 8941 syntax error makes the whole field unusable."""
    assert quota(RateLimit=value) is None


def test_ietf_size_bounds() -> None:
    """Over 64 members, 32 parameters or 1024 string characters, a field is ignored."""
    members = ", ".join(f'"p{i}";r=5;t=1' for i in range(64))
    assert quota(RateLimit=members) == signal(5, 1.0)
    assert quota(RateLimit=members + ', "late";r=0;t=1') is None
    params = "".join(f";k{i}=1" for i in range(30))
    assert quota(RateLimit=f'"a";r=0{params};t=2') == signal(0, 2.0)
    assert quota(RateLimit=f'"a";r=0{params};t=2;k=1') is None
    assert quota(RateLimit=f'"a";r=0{";x" * 40};t=2') is None  # repeats count too
    assert quota(RateLimit=f'"{"n" * 1024}";r=0;t=2') == signal(0, 2.0)
    assert quota(RateLimit=f'"{"n" * 1025}";r=0;t=2') is None
    escaped = "\\\\" * 1024  # 1024 backslashes once unescaped
    assert quota(RateLimit=f'"{escaped}";r=0;t=2') == signal(0, 2.0)
    assert quota(RateLimit=f'"{escaped}\\\\";r=0;t=2') is None


def test_ietf_and_the_split_fields_compete() -> None:
    """RateLimit and RateLimit-Remaining on one response: the more restrictive wins."""
    result = quota(RateLimit='"d";r=5;t=10', RateLimit_Remaining="0", RateLimit_Reset="20")
    assert result == signal(0, 20.0, source="ratelimit")


# --- Split-field families ----------------------------------------------------------------


def test_ratelimit_split_fields() -> None:
    """RateLimit-Remaining, -Reset and -Limit (older drafts, gateways) form one signal."""
    result = quota(RateLimit_Remaining="7", RateLimit_Reset="12", RateLimit_Limit="60")
    assert result == signal(7, 12.0, 60, source="ratelimit")


def test_ratelimit_limit_with_quota_policies_of_older_drafts() -> None:
    """``RateLimit-Limit: 100, 100;w=60, 1000;w=86400`` gives the smallest quota."""
    result = quota(RateLimit_Remaining="0", RateLimit_Limit="100, 100;w=60, 1000;w=86400")
    assert result == signal(0, None, 100, source="ratelimit")


def test_gitlab_epoch_reset() -> None:
    """GitLab's RateLimit-Reset is epoch seconds."""
    result = quota(RateLimit_Remaining="0", RateLimit_Reset=str(int(NOW) + 45))
    assert result == signal(0, 45.0, source="ratelimit")


def test_x_ratelimit_github() -> None:
    """GitHub: remaining 0 and an epoch reset mean wait until that time."""
    result = quota(
        X_RateLimit_Limit="5000",
        X_RateLimit_Remaining="0",
        X_RateLimit_Reset=str(int(NOW) + 1800),
        X_RateLimit_Used="5000",
        X_RateLimit_Resource="core",
    )
    assert result == signal(0, 1800.0, 5000, source="x-ratelimit")


def test_x_ratelimit_delta_reset() -> None:
    """Many APIs send the reset as seconds from now."""
    result = quota(X_RateLimit_Remaining="42", X_RateLimit_Reset="1.5")
    assert result == signal(42, 1.5, source="x-ratelimit")


def test_one_bad_field_spoils_only_itself() -> None:
    """An unreadable reset or limit becomes None; the rest of the family stands."""
    result = quota(X_RateLimit_Remaining="3", X_RateLimit_Reset="soon", X_RateLimit_Limit="-1")
    assert result == signal(3, None, source="x-ratelimit")
    result = quota(X_RateLimit_Remaining="-1", X_RateLimit_Reset="9", X_RateLimit_Limit="10")
    assert result == signal(None, 9.0, 10, source="x-ratelimit")


# --- OpenAI ------------------------------------------------------------------------------


def test_openai_requests() -> None:
    """The requests family reads Go durations and its limit."""
    result = quota(
        x_ratelimit_limit_requests="500",
        x_ratelimit_remaining_requests="499",
        x_ratelimit_reset_requests="120ms",
        x_ratelimit_remaining_tokens="149984",
        x_ratelimit_reset_tokens="6m0s",
    )
    assert result == signal(499, 0.12, 500, source="openai-requests")


def test_openai_tokens_exhausted_pauses_until_their_reset() -> None:
    """No token left: a zero-remaining signal with the tokens' reset wins over requests."""
    result = quota(
        x_ratelimit_remaining_requests="499",
        x_ratelimit_reset_requests="120ms",
        x_ratelimit_limit_tokens="150000",
        x_ratelimit_remaining_tokens="0",
        x_ratelimit_reset_tokens="6m0s",
    )
    assert result == signal(0, 360.0, source="openai-tokens")


def test_openai_tokens_alone() -> None:
    """Only the tokens fields: exhausted gives a pause, anything else gives None."""
    assert quota(x_ratelimit_remaining_tokens="0", x_ratelimit_reset_tokens="1.5s") == signal(
        0, 1.5, source="openai-tokens"
    )
    assert quota(x_ratelimit_remaining_tokens="0") == signal(0, None, source="openai-tokens")
    assert quota(x_ratelimit_remaining_tokens="10", x_ratelimit_reset_tokens="1s") is None


def test_openai_both_exhausted_the_longer_reset_wins() -> None:
    """Requests and tokens both at 0: the one that resets later is reported."""
    fields = {"x_ratelimit_remaining_requests": "0", "x_ratelimit_remaining_tokens": "0"}
    result = quota(x_ratelimit_reset_requests="20s", x_ratelimit_reset_tokens="2s", **fields)
    assert result == signal(0, 20.0, source="openai-requests")
    result = quota(x_ratelimit_reset_requests="2s", x_ratelimit_reset_tokens="20s", **fields)
    assert result == signal(0, 20.0, source="openai-tokens")
    result = quota(x_ratelimit_reset_requests="2s", x_ratelimit_reset_tokens="2s", **fields)
    assert result == signal(0, 2.0, source="openai-requests")


# --- Precedence across families ----------------------------------------------------------


def test_the_most_restrictive_family_wins() -> None:
    """An exhausted X-RateLimit beats an IETF field with quota left."""
    result = quota(RateLimit='"d";r=50;t=10', X_RateLimit_Remaining="0", X_RateLimit_Reset="30")
    assert result == signal(0, 30.0, source="x-ratelimit")


def test_smaller_remaining_wins_across_families() -> None:
    """Without exhaustion, the family with fewer requests left wins."""
    result = quota(
        RateLimit='"d";r=50;t=10',
        X_RateLimit_Remaining="5",
        x_ratelimit_remaining_requests="9",
    )
    assert result == signal(5, None, source="x-ratelimit")


def test_a_tie_goes_to_the_earlier_family() -> None:
    """Same remaining and reset: ietf, then ratelimit, x-ratelimit, openai-requests."""
    fields = {
        "X_RateLimit_Remaining": "2",
        "X_RateLimit_Reset": "4",
        "x_ratelimit_remaining_requests": "2",
        "x_ratelimit_reset_requests": "4s",
    }
    assert quota(**fields) == signal(2, 4.0, source="x-ratelimit")
    assert source(RateLimit_Remaining="2", RateLimit_Reset="4", **fields) == "ratelimit"
    assert source(RateLimit='"d";r=2;t=4', **fields) == "ietf"


def test_a_known_remaining_beats_an_unknown_one() -> None:
    """A family that knows its remaining beats a policy-only IETF signal."""
    result = quota(RateLimit_Policy='"d";q=1;w=60', X_RateLimit_Remaining="900")
    assert result == signal(900, None, source="x-ratelimit")


# --- Reset forms -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),  # delta seconds
        ("0", 0.0),
        ("1.5", 1.5),
        ("007", 7.0),
        (" 30\t", 30.0),  # optional whitespace
        ("86400", MAX_RESET_SECONDS),  # the cap itself
        (str(int(NOW) + 60), 60.0),  # epoch seconds (GitHub)
        (f"{NOW + 2.25}", 2.25),  # epoch seconds with a fraction (Discord)
        (str(int(NOW * 1000) + 1500), 1.5),  # epoch milliseconds
        ("6m0s", 360.0),  # Go durations
        ("1.5s", 1.5),
        ("12ms", 0.012),
        ("1h2m3s", 3723.0),
        ("2h0m0.5s", 7200.5),
        ("500us", 0.0005),
        ("500\u00b5s", 0.0005),  # MICRO SIGN, as Go prints it
        ("500\u03bcs", 0.0005),  # GREEK SMALL LETTER MU
        ("250000000ns", 0.25),
        ("0s", 0.0),
        ("Tue, 14 Nov 2023 22:14:00 GMT", 40.0),  # IMF-fixdate
    ],
)
def test_reset_forms(value: str, expected: float) -> None:
    """Each documented reset form is read as seconds from now."""
    assert parse_reset(value, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        str(int(NOW) - 5),  # epoch seconds in the past
        str(int(EPOCH_SECONDS_MIN)),  # 2001: read as epoch seconds, so in the past
        str(int(NOW * 1000) - 5000),  # epoch milliseconds in the past
        str(int(EPOCH_MILLIS_MIN)),
        "Sun, 06 Nov 1994 08:49:37 GMT",  # a date in the past
    ],
)
def test_reset_in_the_past_is_zero(value: str) -> None:
    """An absolute reset that has already passed means no wait."""
    assert parse_reset(value, NOW) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        "86401",  # a delta over the cap
        "86400.5",
        str(int(EPOCH_SECONDS_MIN) - 1),  # a 31-year delta: the cap, not an epoch
        str(int(NOW) + 86_401),  # epoch seconds over a day ahead
        str(int(EPOCH_MILLIS_MIN) - 1),  # epoch seconds in year 33658
        str(int(NOW * 1000) + 86_401_000),  # epoch milliseconds over a day ahead
        "24h0m1s",
        "25h",
        "Fri, 01 Jan 2100 00:00:00 GMT",
    ],
)
def test_reset_over_the_cap_is_ignored(value: str) -> None:
    """A reset more than a day away is ignored, not clamped."""
    assert parse_reset(value, NOW) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "  ",
        "-5",  # no signs
        "+5",
        "-1s",
        "1e3",  # no exponents
        "nan",
        "NaN",
        "inf",
        "Infinity",
        "1_000",
        "\u0661\u0662",  # Arabic-Indic digits
        "\uff11\uff12",  # full-width digits
        "\u00b9",  # superscript one
        ".5",
        "5.",
        "1.2.3",
        "0x10",
        "5 s",
        "6m0",
        "5s5",
        "1.5.2s",
        ".5s",
        "1d",
        "1h1h1h1h1h1h1h1h1h",  # more than eight parts
        "123456789012345678901s",  # more than twenty digits
        "12345678901234567890.5s",
        "1" * 21,
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun,  6 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850: obsolete
        "Sun Nov  6 08:49:37 1994",  # asctime: obsolete
        "Sat, 31 Feb 2024 00:00:00 GMT",  # no such day
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, \u0660\u0666 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37  GMT",
        "soon",
    ],
)
def test_reset_garbage_is_ignored(value: str) -> None:
    """Any other reset text gives None."""
    assert parse_reset(value, NOW) is None


def test_reset_absent_is_none() -> None:
    """No field, no reset."""
    assert parse_reset(None, NOW) is None


def test_reset_with_a_non_finite_now_is_safe() -> None:
    """A NaN or infinite ``now`` cannot produce a non-finite reset."""
    epoch = str(int(NOW) + 10)
    assert parse_reset(epoch, math.nan) is None
    assert parse_reset(epoch, math.inf) == 0.0
    assert parse_reset(epoch, -math.inf) is None
    assert parse_reset("10", math.nan) == 10.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30, 10", 30.0),  # duplicates: the longest reset
        ("10,30", 30.0),
        ("1s, 2000ms", 2.0),
        ("30, ", 30.0),  # empty members are skipped
        ("30, x", None),  # one bad member spoils the field
        (", ,", None),
        ("Tue, 14 Nov 2023 22:14:00 GMT, 5", None),  # a joined date is not split back
        (",".join(["1"] * 64), 1.0),
        (",".join(["1"] * 65), None),  # too many members
    ],
)
def test_reset_duplicates_joined_with_commas(value: str, expected: Optional[float]) -> None:
    """Joined duplicates: every member must be valid, and the longest reset wins."""
    assert parse_reset(value, NOW) == expected


# --- Counts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5),
        (" 5\t", 5),
        ("0", 0),
        ("0005", 5),
        (str(MAX_REMAINING), MAX_REMAINING),
        ("7, 3", 3),  # duplicates: the smallest count
        ("7,, 9", 7),
    ],
)
def test_remaining_values(value: str, expected: int) -> None:
    """Remaining counts are ASCII digits; joined duplicates give the smallest."""
    assert quota(X_RateLimit_Remaining=value) == signal(expected, None, source="x-ratelimit")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "-1",
        "+5",
        "5.0",
        "1e3",
        "NaN",
        "inf",
        "0x10",
        "5 5",
        "\u0661\u0662",
        "\uff15",
        str(MAX_REMAINING + 1),
        "9" * 5000,  # thousands of digits: never converted
        "5, -1",
        "5;w=60",  # parameters are read in limits only
    ],
)
def test_remaining_garbage_is_ignored(value: str) -> None:
    """A bad remaining count is None, and with nothing else the signal is None."""
    assert quota(X_RateLimit_Remaining=value) is None
    assert quota(X_RateLimit_Remaining=value, X_RateLimit_Limit="10") == signal(
        None, None, 10, source="x-ratelimit"
    )


# --- Properties --------------------------------------------------------------------------

#: Characters that reach the parsers' inner paths more often than arbitrary text does.
SYNTAX = st.sampled_from(
    [*'0123456789.,;=:?*-"\\ \t()@%/abcdeqrstwhmnuGMTSnoNv', "\u00b5", "\u0661", "\x00"]
)
VALUES = st.one_of(st.text(max_size=60), st.text(SYNTAX, max_size=60))


@settings(max_examples=500, deadline=None)
@given(headers=st.dictionaries(st.sampled_from(NAMES), VALUES), now=st.floats())
def test_any_header_text_gives_none_or_an_in_range_signal(
    headers: dict[str, str], now: float
) -> None:
    """Arbitrary values in every known field never raise and stay in range."""
    assert_in_range(parse_quota(CaseInsensitiveDict(headers), now))


@settings(max_examples=300, deadline=None)
@given(value=VALUES, now=st.floats(min_value=0, max_value=4e9))
def test_any_reset_text_gives_none_or_an_in_range_delay(value: str, now: float) -> None:
    """Arbitrary reset text never raises and gives None or a delay in [0, cap]."""
    result = parse_reset(value, now)
    assert result is None or (math.isfinite(result) and 0.0 <= result <= MAX_RESET_SECONDS)


@settings(max_examples=200, deadline=None)
@given(hours=st.integers(0, 30), minutes=st.integers(0, 59), millis=st.integers(0, 59_999))
def test_go_durations_round_trip(hours: int, minutes: int, millis: int) -> None:
    """A duration printed like Go's is read back, or ignored when over the cap."""
    text = f"{hours}h{minutes}m{millis // 1000}.{millis % 1000:03d}s"
    seconds = hours * 3600 + minutes * 60 + millis / 1000
    expected = seconds if seconds <= MAX_RESET_SECONDS else None
    assert parse_reset(text, NOW) == (pytest.approx(expected) if expected is not None else None)


@settings(max_examples=200, deadline=None)
@given(delay=st.integers(-(10**6), 2 * 10**5), millis=st.booleans())
def test_epoch_resets_round_trip(delay: int, millis: bool) -> None:
    """An epoch reset (seconds or milliseconds) gives its distance from now, 0 if past."""
    at = int(NOW) + delay
    text = str(at * 1000) if millis else str(at)
    expected = None if delay > MAX_RESET_SECONDS else max(0.0, float(delay))
    assert parse_reset(text, NOW) == expected


POLICY = st.tuples(st.integers(0, 20), st.one_of(st.none(), st.integers(0, 100)))


@settings(max_examples=300, deadline=None)
@given(items=st.lists(POLICY, min_size=1, max_size=6))
def test_ietf_picks_the_most_restrictive_item(
    items: list[tuple[int, Optional[int]]],
) -> None:
    """Against a plain model: r=0 with the longest t, else the smallest r then longest t."""
    field = ", ".join(
        f'"p{i}";r={r}' + (f";t={t}" if t is not None else "") for i, (r, t) in enumerate(items)
    )
    exhausted = [(r, t) for r, t in items if r == 0]
    if exhausted:
        known = [t for _, t in exhausted if t is not None]
        expected = (0, max(known) if known else None)
    else:
        least = min(r for r, _ in items)
        resets = [t or 0 for r, t in items if r == least]
        best = max(resets)
        candidates = [t for r, t in items if r == least and (t or 0) == best]
        expected = (least, candidates[0])
    result = quota(RateLimit=field)
    assert result is not None
    assert (result.remaining, result.reset_after) == (
        expected[0],
        float(expected[1]) if expected[1] is not None else None,
    )


# --- Adversarial input -------------------------------------------------------------------

MEGABYTE = 1 << 20
HOSTILE = {
    "digits": "1" * MEGABYTE,
    "semicolons": ";" * MEGABYTE,
    "quotes": '"' * MEGABYTE,
    "commas": "," * MEGABYTE,
    "spaces": " " * MEGABYTE,
    "open string": '"' + "a" * MEGABYTE,
    "escapes": '"' + "\\\\" * (MEGABYTE // 2),
    "escaped quotes": '"' + '\\"' * (MEGABYTE // 2),
    "token": "a" * MEGABYTE,
    "parameters": "a" + ";a" * (MEGABYTE // 2),
    "members": "a, " * (MEGABYTE // 3),
    "duration parts": "1s" * (MEGABYTE // 2),
    "duration digits": "1" * MEGABYTE + "s",
    "fraction": "1." + "5" * MEGABYTE,
    "byte sequence": ":" + "A" * MEGABYTE,
    "minus signs": "-" * MEGABYTE,
    "dictionary keys": "a=" * (MEGABYTE // 2),
    "date pieces": "Sun, " * (MEGABYTE // 5),
    "arabic digits": "\u0661" * MEGABYTE,
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_megabyte_values_are_dealt_with_at_once(kind: str) -> None:
    """A 1 MB hostile value in every field at once parses (to nothing) in linear time."""
    headers = CaseInsensitiveDict(dict.fromkeys(NAMES, HOSTILE[kind]))
    assert_in_range(parse_quota(headers, NOW))
    assert parse_reset(HOSTILE[kind], NOW) is None
