"""The ``python -m requests_connection_manager demo`` command, end to end."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from requests_connection_manager.__main__ import main
from requests_connection_manager._demo import TABLE_HEADERS

pytestmark = pytest.mark.timeout(60)

SERVERS = ("steady:", "flaky:", "throttled:", "outage:")


def test_demo_runs_and_behaves_as_designed(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo exits 0 and prints the table header and a row for every server."""
    logger = logging.getLogger("requests_connection_manager")
    level, handlers = logger.level, list(logger.handlers)

    code = main(["demo", "--quiet", "--requests", "60"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    header = next(line for line in captured.out.splitlines() if line.startswith("host "))
    assert header.split("  ")[0].strip() == "host"
    for column in TABLE_HEADERS:
        assert column in header
    for name in SERVERS:
        assert any(line.startswith(name) for line in captured.out.splitlines()), name
    assert "breaker timeline" in captured.out
    assert "opened" in captured.out
    assert "half-open -> closed" in captured.out
    assert captured.err == ""  # --quiet: no progress, and no problems to report
    assert (logger.level, logger.handlers) == (level, handlers)


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command the help goes to stderr and the exit code is 2."""
    assert main([]) == 2
    assert "demo" in capsys.readouterr().err


def test_demo_rejects_too_few_requests(capsys: pytest.CaptureFixture[str]) -> None:
    """A --requests below the minimum is a usage error."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--requests", "3"])
    assert exit_info.value.code == 2
    assert "--requests" in capsys.readouterr().err


def test_module_help_explains_the_demo() -> None:
    """``python -m requests_connection_manager --help`` runs and describes the demo."""
    result = subprocess.run(
        [sys.executable, "-m", "requests_connection_manager", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout
    assert "127.0.0.1" in result.stdout
    assert "ConnectionManager" in result.stdout
