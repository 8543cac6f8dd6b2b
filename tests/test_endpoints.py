"""Endpoint patterns match a request's host, scheme, port and path, never a substring."""

from __future__ import annotations

import itertools
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from requests_connection_manager._endpoints import EndpointPattern, EndpointTable, split_url

pytestmark = pytest.mark.timeout(30)

P = EndpointPattern.parse


# --- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scheme", "host", "wildcard", "port", "path"),
    [
        ("api.example.com", None, "api.example.com", False, None, ""),
        ("API.Example.COM", None, "api.example.com", False, None, ""),
        ("api.example.com.", None, "api.example.com", False, None, ""),
        ("localhost", None, "localhost", False, None, ""),
        ("127.0.0.1", None, "127.0.0.1", False, None, ""),
        ("[::1]", None, "::1", False, None, ""),
        ("[::1]:8080", None, "::1", False, 8080, ""),
        ("[0:0:0:0:0:0:0:1]", None, "::1", False, None, ""),
        ("[2001:DB8::1]", None, "2001:db8::1", False, None, ""),
        ("*.example.com", None, "example.com", True, None, ""),
        ("*.Example.com.", None, "example.com", True, None, ""),
        ("https://api.example.com", "https", "api.example.com", False, None, ""),
        ("HTTP://api.example.com", "http", "api.example.com", False, None, ""),
        ("api.example.com:8443", None, "api.example.com", False, 8443, ""),
        ("api.example.com/v2", None, "api.example.com", False, None, "/v2"),
        ("api.example.com/v2/", None, "api.example.com", False, None, "/v2/"),
        ("api.example.com/", None, "api.example.com", False, None, ""),
        (
            "https://*.example.com:8443/v2/Items",
            "https",
            "example.com",
            True,
            8443,
            "/v2/Items",
        ),
        ("internal_host", None, "internal_host", False, None, ""),
    ],
)
def test_parse_normalises(
    text: str,
    scheme: Optional[str],
    host: str,
    wildcard: bool,
    port: Optional[int],
    path: str,
) -> None:
    """A valid pattern parses into its normalised parts and keeps the text as written."""
    pattern = P(text)
    assert pattern.text == text
    assert (pattern.scheme, pattern.host, pattern.wildcard, pattern.port, pattern.path) == (
        scheme,
        host,
        wildcard,
        port,
        path,
    )


BAD_PATTERNS = [
    ("", "empty"),
    ("   ", "empty"),
    ("\t", "empty"),
    ("/v2", "no host"),
    ("?q=1", "query"),
    ("#frag", "query"),
    ("https://", "no host"),
    ("https:///v2", "no host"),
    ("//api.example.com", "no host"),
    (":8080", "no host"),
    ("*.", "no host"),
    ("api.example.com?q=1", "query"),
    ("api.example.com/v2?x", "query"),
    ("api.example.com#top", "fragment"),
    ("user@api.example.com", "userinfo"),
    ("user:pw@api.example.com", "userinfo"),
    ("https://user@api.example.com/v2", "userinfo"),
    ("api.example.com:", "port"),
    ("api.example.com:0", "port"),
    ("api.example.com:65536", "port"),
    ("api.example.com:-1", "port"),
    ("api.example.com:+80", "port"),
    ("api.example.com:8_0", "port"),
    ("api.example.com:http", "port"),
    ("api.example.com:80:81", "IPv6"),
    ("ftp://api.example.com", "scheme"),
    ("ws://api.example.com", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("*", "'*'"),
    ("*example.com", "'*'"),
    ("**.example.com", "'*'"),
    ("api.*.com", "'*'"),
    ("*.*.example.com", "'*'"),
    ("api.example.*", "'*'"),
    ("api.example.com/v2/*", "'*'"),
    ("api example.com", "whitespace"),
    (" api.example.com", "whitespace"),
    ("api.example.com ", "whitespace"),
    ("api.example.com/v 2", "whitespace"),
    ("api..example.com", "host name"),
    (".example.com", "host name"),
    ("api.exa%6dple.com", "host name"),
    ("exa\u00efmple.\u2488", "host name"),
    ("::1", "IPv6"),
    ("[::1", "IPv6"),
    ("[not-ip]", "IPv6"),
    ("[127.0.0.1]", "IPv6"),
    ("[::1]x", "':PORT'"),
    ("[::1]:", "port"),
    ("*.[::1]", "whole IPv6 address"),
    ("api.example.com]", "whole IPv6 address"),
    ("*.0.0.1", "IP address"),
    ("api.example.com/v2/../admin", "'..'"),
    ("api.example.com/./v2", "'.'"),
]


@pytest.mark.parametrize(("text", "problem"), BAD_PATTERNS)
def test_parse_refuses_with_message_naming_pattern(text: str, problem: str) -> None:
    """A bad pattern is refused with a ValueError quoting it and saying what is accepted."""
    with pytest.raises(ValueError, match="invalid endpoint pattern") as caught:
        P(text)
    message = str(caught.value)
    assert repr(text) in message
    assert problem in message
    assert "expected [http:// or https://]HOST[:PORT][/PATH]" in message


@pytest.mark.parametrize("value", [None, 42, b"api.example.com", ["api.example.com"], 1.5])
def test_parse_refuses_non_str(value: Any) -> None:
    """A pattern that is not a str is a TypeError naming the type."""
    with pytest.raises(TypeError, match=type(value).__name__):
        P(value)


# --- matching --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.test/?q=api.example.com",
        "http://evil.test/?next=http://api.example.com/",
        "http://api.example.com.evil.test/",
        "http://api.example.com.evil.test./",
        "http://evil.test/api.example.com/v2",
        "http://api.example.com@evil.test/",
        "http://user:api.example.com@evil.test/",
        "http://api.example.com:443@evil.test/",
        "http://xapi.example.com/",
        "http://api.example.comx/",
        "http://api-example.com/",
        "http://api.example.co/",
        "http://evil.test/#api.example.com",
        "http://evil.test#api.example.com",
        "http://evil.test:80/#@api.example.com/",
        "http://sub.api.example.com/",
        "http://example.com/",
        "https://api.example.com..//",
    ],
)
def test_exact_host_never_matches_look_alikes(url: str) -> None:
    """An exact host pattern matches no URL whose real host is something else."""
    assert not P("api.example.com").matches(url)
    assert not P("https://api.example.com/v2").matches(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com",
        "http://api.example.com/",
        "https://api.example.com/v2/items?q=1#top",
        "http://API.EXAMPLE.COM/",
        "http://api.example.com./",
        "http://user:secret@api.example.com/",
        "http://api.example.com:8080/",
        "https://api.example.com:443/",
        "http://evil.test\\@api.example.com/",
    ],
)
def test_exact_host_matches_its_host(url: str) -> None:
    """An exact host pattern matches its host under any scheme, port, path, query or case."""
    assert P("api.example.com").matches(url)
    assert P("Api.Example.Com.").matches(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://a.example.com/", True),
        ("http://a.b.example.com/", True),
        ("http://a.b.c.d.example.com:8080/x", True),
        ("http://A.EXAMPLE.COM./", True),
        ("http://example.com/", False),
        ("http://example.com./", False),
        ("http://badexample.com/", False),
        ("http://a.badexample.com/", False),
        ("http://a.example.com.evil.test/", False),
        ("http://evil.test/?h=a.example.com", False),
        ("http://a.example.com@evil.test/", False),
        ("http://a.example.co/", False),
        ("http://.example.com/", False),
    ],
)
def test_wildcard_depth_apex_and_look_alikes(url: str, expected: bool) -> None:
    """A wildcard matches subdomains at any depth, never the apex or a look-alike."""
    assert P("*.example.com").matches(url) is expected
    table = EndpointTable([(P("*.example.com"), "w")])
    assert (table.match(url) is not None) is expected


@pytest.mark.parametrize(
    ("pattern", "url", "expected"),
    [
        ("api.example.com:443", "https://api.example.com/", True),
        ("api.example.com:443", "http://api.example.com/", False),
        ("api.example.com:80", "http://api.example.com/", True),
        ("api.example.com:80", "https://api.example.com/", False),
        ("api.example.com:443", "http://api.example.com:443/", True),
        ("api.example.com:8080", "http://api.example.com:8080/x", True),
        ("api.example.com:8080", "http://api.example.com/", False),
        ("api.example.com:8080", "http://api.example.com:8081/", False),
        ("api.example.com", "http://api.example.com:8081/", True),
        ("*.example.com:8443", "https://a.example.com:8443/", True),
        ("*.example.com:8443", "https://a.example.com/", False),
        ("api.example.com:443", "https://api.example.com:99999/", False),
        ("api.example.com", "http://api.example.com:bad/", False),
    ],
)
def test_ports_with_defaults(pattern: str, url: str, expected: bool) -> None:
    """A pattern's port must equal the URL's effective port (80/443 filled in by scheme)."""
    assert P(pattern).matches(url) is expected


@pytest.mark.parametrize(
    ("pattern", "url", "expected"),
    [
        ("https://api.example.com", "https://api.example.com/", True),
        ("https://api.example.com", "http://api.example.com/", False),
        ("http://api.example.com", "http://api.example.com:8443/", True),
        ("http://api.example.com", "HTTP://api.example.com/", True),
        ("HTTPS://api.example.com", "https://api.example.com/", True),
        ("api.example.com", "ftp://api.example.com/", False),
        ("api.example.com", "ws://api.example.com/", False),
        ("api.example.com", "//api.example.com/", False),
        ("api.example.com", "api.example.com", False),
        ("https://*.example.com", "http://a.example.com/", False),
    ],
)
def test_scheme(pattern: str, url: str, expected: bool) -> None:
    """A given scheme must equal the URL's; URLs other than http(s) match nothing."""
    assert P(pattern).matches(url) is expected


@pytest.mark.parametrize(
    ("pattern", "url", "expected"),
    [
        ("api.example.com/v2", "http://api.example.com/v2", True),
        ("api.example.com/v2", "http://api.example.com/v2/", True),
        ("api.example.com/v2", "http://api.example.com/v2/items/1", True),
        ("api.example.com/v2", "http://api.example.com/v2?x=1", True),
        ("api.example.com/v2", "http://api.example.com/v20", False),
        ("api.example.com/v2", "http://api.example.com/v2x/", False),
        ("api.example.com/v2", "http://api.example.com/", False),
        ("api.example.com/v2", "http://api.example.com", False),
        ("api.example.com/v2", "http://api.example.com/V2", False),
        ("api.example.com/v2", "http://api.example.com/x/v2", False),
        ("api.example.com/v2", "http://api.example.com/?p=/v2", False),
        ("api.example.com/v2", "http://api.example.com/#/v2", False),
        ("api.example.com/v2", "http://api.example.com/v2/../admin", False),
        ("api.example.com/v2", "http://api.example.com/v2/./items", True),
        ("api.example.com/v2", "http://api.example.com/x/../v2/items", True),
        ("api.example.com/v2/", "http://api.example.com/v2/", True),
        ("api.example.com/v2/", "http://api.example.com/v2/x", True),
        ("api.example.com/v2/", "http://api.example.com/v2", False),
        ("api.example.com/v2/", "http://api.example.com/v20/", False),
        ("api.example.com/", "http://api.example.com", True),
        ("api.example.com/a/b", "http://api.example.com/a/b/c", True),
        ("api.example.com/a/b", "http://api.example.com/a/bc", False),
    ],
)
def test_path_prefix_segment_boundaries(pattern: str, url: str, expected: bool) -> None:
    """A path prefix matches on segment boundaries; one ending in '/' is a plain prefix."""
    assert P(pattern).matches(url) is expected


@pytest.mark.parametrize(
    ("pattern", "url", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1/", True),
        ("127.0.0.1", "http://127.0.0.1:8080/x", True),
        ("127.0.0.1:8080", "http://127.0.0.1:8080/", True),
        ("127.0.0.1:8080", "http://127.0.0.1/", False),
        ("127.0.0.1", "http://127.0.0.10/", False),
        ("127.0.0.1", "http://127.0.0.1.evil.test/", False),
        ("127.0.0.1", "http://evil.test/?h=127.0.0.1", False),
        ("[::1]:8080", "http://[::1]:8080/", True),
        ("[::1]:8080", "http://[::1]/", False),
        ("[::1]:8080", "http://[::1]:8081/", False),
        ("[::1]", "http://[0:0:0:0:0:0:0:1]/", True),
        ("[::1]", "http://[::2]/", False),
        ("[::1]", "http://127.0.0.1/", False),
        ("[2001:db8::1]", "https://[2001:DB8::1]/", True),
        ("[::1]", "http://[::1/", False),
    ],
)
def test_ip_literals(pattern: str, url: str, expected: bool) -> None:
    """IPv4 and bracketed IPv6 literals match the same address, not a look-alike."""
    assert P(pattern).matches(url) is expected


@pytest.mark.parametrize(
    "url", ["", "not a url", "http://", "http:///path", "http://:80/", "http://[::1/", "://x"]
)
def test_unusable_url_matches_nothing(url: str) -> None:
    """An unparsable URL, or one with no host, matches nothing and raises nothing."""
    assert split_url(url) is None
    assert not P("api.example.com").matches(url)
    table = EndpointTable([(P("api.example.com"), 1), (P("*.example.com"), 2)])
    assert table.match(url) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://API.Example.com./", ("http", "api.example.com", 80, "/")),
        ("HTTPS://api.example.com", ("https", "api.example.com", 443, "/")),
        ("http://api.example.com:8080/a/b?q#f", ("http", "api.example.com", 8080, "/a/b")),
        ("http://[0::1]:81/x", ("http", "::1", 81, "/x")),
        ("http://h/a/./b/../c", ("http", "h", 80, "/a/c")),
        ("http://h/a/..", ("http", "h", 80, "/")),
        ("http://h/../../x", ("http", "h", 80, "/x")),
    ],
)
def test_split_url(url: str, expected: tuple[str, str, int, str]) -> None:
    """split_url gives scheme, normalised host, effective port and resolved path."""
    assert split_url(url) == expected


@pytest.mark.parametrize("value", [None, b"http://api.example.com/", 3])
def test_url_must_be_str(value: Any) -> None:
    """A URL that is not a str is a TypeError, from the pattern and a non-empty table."""
    with pytest.raises(TypeError):
        P("api.example.com").matches(value)
    with pytest.raises(TypeError):
        EndpointTable([(P("api.example.com"), 1)]).match(value)


# --- specificity and the table ---------------------------------------------------------


def test_specificity_order() -> None:
    """Exact beats wildcard, then longer wildcard domain, longer path, port, scheme."""
    ordered = [
        "*.example.com",
        "https://*.example.com",
        "*.example.com:443",
        "*.example.com/v2",
        "*.api.example.com",
        "*.a.api.example.com",
        "api.example.com",
        "https://api.example.com",
        "api.example.com:443",
        "https://api.example.com:443",
        "api.example.com/v",
        "api.example.com/v2",
    ]
    keys = [P(text).specificity for text in ordered]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


MOST_SPECIFIC_CASES = [
    ("https://api.example.com/v2/x", "api.example.com"),
    ("https://a.api.example.com/v2/x", "*.api.example.com"),
    ("https://b.a.api.example.com/", "*.a.api.example.com"),
    ("https://other.example.com/v2/x", "*.example.com/v2"),
    ("https://other.example.com/v3", "*.example.com:443"),
    ("http://other.example.com/v3", "*.example.com"),
    ("http://other.example.com:443/v3", "*.example.com:443"),
    ("https://api.example.com:8443/", "api.example.com:8443"),
    ("https://api.example.com:8443/v3/x", "https://api.example.com/v3"),
    ("https://api.example.com/v3/x", "https://api.example.com/v3"),
    ("http://api.example.com/v3/x", "api.example.com"),
    ("http://example.com/", None),
    ("http://evil.test/?q=api.example.com", None),
]

TABLE_PATTERNS = [
    "*.example.com",
    "*.example.com:443",
    "*.example.com/v2",
    "*.api.example.com",
    "*.a.api.example.com",
    "api.example.com",
    "api.example.com:8443",
    "https://api.example.com/v3",
]


@pytest.mark.parametrize(("url", "winner"), MOST_SPECIFIC_CASES)
def test_most_specific_wins_regardless_of_order(url: str, winner: Optional[str]) -> None:
    """The most specific matching entry wins, whatever order the entries were given in."""
    for order in itertools.islice(itertools.permutations(TABLE_PATTERNS), 0, None, 997):
        table = EndpointTable((P(text), text) for text in order)
        found = table.match(url)
        if winner is None:
            assert found is None
        else:
            assert found is not None
            assert found[0].text == winner
            assert found[1] == winner
        reversed_table = EndpointTable((P(text), text) for text in reversed(order))
        assert reversed_table.match(url) == found


@pytest.mark.parametrize(
    ("first", "second", "url"),
    [
        ("api.example.com", "API.EXAMPLE.COM.", "http://api.example.com/"),
        ("api.example.com", "api.example.com", "http://api.example.com/"),
        ("api.example.com/", "api.example.com", "http://api.example.com/x"),
        ("*.example.com", "*.Example.Com", "http://a.example.com/"),
        ("[::1]", "[0::1]", "http://[::1]/"),
    ],
)
def test_tie_goes_to_entry_given_first(first: str, second: str, url: str) -> None:
    """Equally specific matching entries: the one given first wins."""
    assert EndpointTable([(P(first), 1), (P(second), 2)]).match(url) == (P(first), 1)
    assert EndpointTable([(P(second), 2), (P(first), 1)]).match(url) == (P(second), 2)


def test_equal_specificity_different_constraints() -> None:
    """A scheme-only and a port-only entry with the same host: the port ranks higher."""
    table = EndpointTable(
        [(P("https://api.example.com"), "scheme"), (P("api.example.com:443"), "port")]
    )
    found = table.match("https://api.example.com/")
    assert found is not None
    assert found[1] == "port"
    found = table.match("https://api.example.com:8443/")
    assert found is not None
    assert found[1] == "scheme"


def test_empty_table() -> None:
    """An empty table is falsy, has length 0 and matches nothing, even a non-str URL."""
    table: EndpointTable[int] = EndpointTable()
    assert not table
    assert len(table) == 0
    assert table.match("http://api.example.com/") is None
    assert table.match(None) is None  # type: ignore[arg-type]


def test_table_len_bool_iter_repr() -> None:
    """A table reports its size, iterates in given order and shows its patterns."""
    entries = [(P("b.example.com"), 2), (P("*.example.com"), 1), (P("b.example.com"), 3)]
    table = EndpointTable(entries)
    assert table
    assert len(table) == 3
    assert list(table) == entries
    assert repr(table) == "EndpointTable(['b.example.com', '*.example.com', 'b.example.com'])"


def test_table_takes_any_iterable_once() -> None:
    """The entries may be a one-shot iterator; the table keeps its own copy."""
    source = [(P("api.example.com"), 1)]
    table = EndpointTable(iter(source))
    source.clear()
    assert len(table) == 1
    assert table.match("http://api.example.com/") == (P("api.example.com"), 1)


@pytest.mark.parametrize("pattern", ["api.example.com", 42, None])
def test_table_refuses_unparsed_patterns(pattern: Any) -> None:
    """Table entries must carry parsed patterns; a str or other type is a TypeError."""
    with pytest.raises(TypeError, match=r"EndpointPattern\.parse"):
        EndpointTable([(pattern, 1)])


def test_pattern_is_frozen_and_hashable() -> None:
    """A parsed pattern is immutable and usable as a dict key or set member."""
    pattern = P("api.example.com")
    with pytest.raises(AttributeError):
        pattern.host = "evil.test"  # type: ignore[misc]
    assert {pattern: 1}[P("api.example.com")] == 1


# --- properties ------------------------------------------------------------------------

_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_HOST = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)
# A wildcard's domain ends in a name (a wildcard over an IP address is refused).
_DOMAIN = st.tuples(_HOST, st.sampled_from("abcxyz")).map(lambda parts: parts[0] + parts[1])


def _evil_urls(host: str, evil: str, scheme: str) -> list[str]:
    """URLs whose real host is not ``host`` but that contain ``host`` somewhere."""
    return [
        f"{scheme}://{host}.{evil}/",
        f"{scheme}://{host}{evil}/",
        f"{scheme}://{evil}{host}/",
        f"{scheme}://{evil}-{host}/",
        f"{scheme}://{evil}.{host}/",
        f"{scheme}://{host}-{evil}/",
        f"{scheme}://{host}.{evil}.:443/",
        f"{scheme}://{evil}.test/{host}",
        f"{scheme}://{evil}.test/{host}/v2",
        f"{scheme}://{evil}.test/?q={host}",
        f"{scheme}://{evil}.test/?next={scheme}://{host}/",
        f"{scheme}://{evil}.test/#{host}",
        f"{scheme}://{evil}.test#@{host}",
        f"{scheme}://{host}@{evil}.test/",
        f"{scheme}://user:{host}@{evil}.test/",
        f"{scheme}://{host}:80@{evil}.test/",
        f"{scheme}://{host.upper()}@{evil}.test/",
    ]


@settings(max_examples=200, deadline=None)
@given(host=_HOST, evil=_LABEL, scheme=st.sampled_from(["http", "https"]))
def test_property_exact_pattern_never_matches_substring(host: str, evil: str, scheme: str) -> None:
    """Pattern h matches a URL only when its host *is* h, never when it merely contains h."""
    pattern = P(host)
    table = EndpointTable([(pattern, "secret")])
    for url in _evil_urls(host, evil, scheme):
        parts = split_url(url)
        assert parts is not None
        # One host may have several spellings (127.1 is 127.0.0.1): compare identities.
        same = parts[1] == pattern.host
        assert pattern.matches(url) is same, url
        assert (table.match(url) is not None) is same, url


@settings(max_examples=200, deadline=None)
@given(host=_DOMAIN, evil=_LABEL, scheme=st.sampled_from(["http", "https"]))
def test_property_wildcard_never_matches_outside_its_domain(
    host: str, evil: str, scheme: str
) -> None:
    """Pattern *.h matches only proper subdomains of h, never a host merely containing h."""
    pattern = P(f"*.{host}")
    table = EndpointTable([(pattern, "secret")])
    for url in _evil_urls(host, evil, scheme):
        parts = split_url(url)
        assert parts is not None
        inside = parts[1].endswith(f".{host}")
        assert pattern.matches(url) is inside, url
        assert (table.match(url) is not None) is inside, url
    assert not pattern.matches(f"{scheme}://{host}/")


@settings(max_examples=200, deadline=None)
@given(
    host=_HOST,
    data=st.data(),
    scheme=st.sampled_from(["http", "https", "HTTP", "Https"]),
    port=st.one_of(st.none(), st.integers(min_value=1, max_value=65535)),
    path=st.lists(_LABEL, max_size=3).map(lambda labels: "/" + "/".join(labels)),
    dot=st.booleans(),
)
def test_property_exact_pattern_matches_its_host(
    host: str,
    data: st.DataObject,
    scheme: str,
    port: Optional[int],
    path: str,
    dot: bool,
) -> None:
    """Pattern h matches h in any case, with or without a trailing dot, on any port and path."""
    written = "".join(data.draw(st.sampled_from([c, c.upper()])) for c in host)
    netloc = written + ("." if dot else "") + ("" if port is None else f":{port}")
    url = f"{scheme}://{netloc}{path}?q=1#f"
    assert P(host).matches(url)
    assert P(host.upper() + ".").matches(url)


_TABLE_HOSTS = ["example.com", "api.example.com", "a.api.example.com", "other.test"]
_PATTERN_TEXT = st.builds(
    lambda scheme, wildcard, host, port, path: f"{scheme}{wildcard}{host}{port}{path}",
    st.sampled_from(["", "http://", "https://"]),
    st.sampled_from(["", "*."]),
    st.sampled_from(_TABLE_HOSTS),
    st.sampled_from(["", ":443", ":80", ":8443"]),
    st.sampled_from(["", "/", "/v2", "/v2/", "/v2/x"]),
)
_URL = st.builds(
    lambda scheme, sub, host, port, path: f"{scheme}://{sub}{host}{port}{path}",
    st.sampled_from(["http", "https"]),
    st.sampled_from(["", "a.", "b.a."]),
    st.sampled_from(_TABLE_HOSTS),
    st.sampled_from(["", ":443", ":80", ":8443"]),
    st.sampled_from(["", "/", "/v2", "/v2/", "/v2/x", "/v20", "/x"]),
)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(_PATTERN_TEXT, max_size=12), urls=st.lists(_URL, min_size=1, max_size=8))
def test_property_table_agrees_with_brute_force(texts: list[str], urls: list[str]) -> None:
    """The indexed table returns what a scan for the first most specific match would."""
    entries = [(P(text), index) for index, text in enumerate(texts)]
    table = EndpointTable(entries)
    for url in urls:
        best: Optional[tuple[EndpointPattern, int]] = None
        for pattern, value in entries:
            if pattern.matches(url) and (best is None or pattern.specificity > best[0].specificity):
                best = (pattern, value)
        assert table.match(url) == best, url


def test_an_international_pattern_matches_its_idna_spelling() -> None:
    """A pattern written in Unicode and a URL in IDNA form (what requests sends) match."""
    pattern = P("b\u00fccher.example")
    assert pattern.host == "xn--bcher-kva.example"
    assert pattern.matches("https://xn--bcher-kva.example/")
    assert pattern.matches("https://B\u00dcCHER.example./x")
    assert not pattern.matches("https://bucher.example/")
