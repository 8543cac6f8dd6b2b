"""The demo's self-checks: it reports, rather than hides, counters that do not add up."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator

import pytest

from requests_connection_manager import _demo as demo

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def servers() -> Iterator[list[demo.DemoServer]]:
    """The demo's four servers, bound but not serving."""
    made = demo._make_servers(seed=7)
    try:
        yield made
    finally:
        for server in made:
            server.server_close()


def _tally(total: int) -> demo._Tally:
    return demo._Tally(total=total, on_update=lambda done, counts: None)


def test_run_demo_refuses_bad_sizes() -> None:
    """Workers and requests are checked before anything starts."""
    with pytest.raises(ValueError, match="workers"):
        demo.run_demo(workers=0)
    with pytest.raises(ValueError, match="requests"):
        demo.run_demo(requests=demo.MIN_REQUESTS - 1)


def test_check_stats_names_every_mismatch(servers: list[demo.DemoServer]) -> None:
    """Missing hosts and wrong counters each become one line of the failure report."""
    steady, flaky = servers[0], servers[1]
    plan = [steady, steady, flaky]
    steady.hits = 2
    tally = _tally(total=3)
    tally.per_host[steady.name] = Counter({demo.BREAKER_OPEN: 1})
    stats = {
        "requests_made": 2,
        "hosts": {
            steady.key: {
                "requests": 2,
                "attempts": 5,
                "failures": 1,
                "rejected_open": 0,
                "retries": 9,
            }
        },
    }
    problems = demo._check_stats(servers[:2], plan, stats, tally)
    text = "\n".join(problems)
    assert "requests_made" in text
    assert f"no entry for {flaky.key}" in text
    assert "'attempts' is 5 but requests the server received: 2" in text
    assert "'failures' is 1" in text
    assert "'rejected_open' is 0 but 1 calls raised CircuitBreakerOpen" in text
    assert "retries 9 > attempts 5" in text


def test_a_host_without_stats_is_a_row_of_dashes(servers: list[demo.DemoServer]) -> None:
    """The table shows a host the manager never saw as dashes, not a crash."""
    rows = demo._host_rows(servers[:1], {})
    assert rows == [[servers[0].label, *(["-"] * (len(demo.TABLE_HEADERS) - 1))]]


def test_progress_redraws_one_line_on_a_terminal() -> None:
    """On a terminal the progress line is redrawn in place and ended by finish()."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = demo._Progress(total=4, stream=stream, enabled=True)
    progress.update(1, Counter({"ok": 1}))
    progress.update(4, Counter({"ok": 4}))
    progress.finish()
    text = stream.getvalue()
    assert text.count("\r") == 2
    assert "4/4 calls done" in text
    assert text.endswith("\n")
