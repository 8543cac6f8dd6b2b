"""The ``get`` command of ``rcm`` / ``python -m requests_connection_manager``, end to end."""

from __future__ import annotations

import argparse
import io
import logging
import re
import subprocess
import sys
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from requests_connection_manager import _cli as cli
from requests_connection_manager.__main__ import main as module_main
from requests_connection_manager._cli import main, parse_rate
from tests.servers import AppServer, free_port

pytestmark = pytest.mark.timeout(30)

BINARY_BODY = bytes(range(256)) + b"\r\n\x00tail\xff"

Capture = pytest.CaptureFixture[bytes]


def run(capture: Capture, *argv: str) -> tuple[int, bytes, list[str]]:
    """Run ``main(argv)``; return the exit code, stdout bytes and stderr lines."""
    code = main(list(argv))
    out, err = capture.readouterr()
    return code, out, err.decode().splitlines()


def usage_error(capture: Capture, *argv: str) -> list[str]:
    """Run ``main(argv)``, expect exit status 2 from the parser; return the stderr lines."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    out, err = capture.readouterr()
    assert out == b""
    return err.decode().splitlines()


# ----------------------------------------------------------------------------- success
def test_body_is_written_byte_for_byte(app: AppServer, capsysbinary: Capture) -> None:
    """A 200 body with every byte value reaches stdout unchanged; exit 0, stderr silent."""
    app.ok("/bin", BINARY_BODY, headers={"Content-Type": "application/octet-stream"})

    code, out, err = run(capsysbinary, "get", app.url("/bin"))

    assert (code, out, err) == (0, BINARY_BODY, [])


def test_module_main_is_the_cli(app: AppServer, capsysbinary: Capture) -> None:
    """``__main__.main`` is the same command line, ``get`` included."""
    app.ok("/x", b"via __main__")

    assert module_main(["get", app.url("/x")]) == 0
    assert capsysbinary.readouterr().out == b"via __main__"


def test_redirect_followed_and_3xx_is_success(app: AppServer, capsysbinary: Capture) -> None:
    """Redirects are followed (each hop shown with -v); a final 3xx response exits 0."""
    app.ok("/from", b"", status=302, headers={"Location": "/to?token=HIDDEN"})
    app.ok("/to", b"arrived")
    app.ok("/not-modified", b"", status=304)

    code, out, err = run(capsysbinary, "get", "-v", app.url("/from"))
    assert (code, out) == (0, b"arrived")
    assert "rcm: attempt 1: status 302; redirect to /to?token=[REDACTED]" in err
    assert "rcm: attempt 1: status 200" in err
    assert "HIDDEN" not in "\n".join(err)

    code, out, err = run(capsysbinary, "get", app.url("/not-modified"))
    assert (code, out, err) == (0, b"", [])


# ---------------------------------------------------------------------- error statuses
@pytest.mark.parametrize("status", [404, 500])
def test_error_status_prints_body_and_exits_1(
    app: AppServer, capsysbinary: Capture, status: int
) -> None:
    """A 4xx/5xx response (not retried) still prints its body; the exit code is 1."""
    app.ok("/e", b"error body\x00", status=status)

    code, out, err = run(capsysbinary, "get", "--retries", "0", app.url("/e"))

    assert (code, out, err) == (1, b"error body\x00", [])


def test_exhausted_status_retries_print_last_body_and_error(
    app: AppServer, capsysbinary: Capture
) -> None:
    """Retries of a 503 that run out: the last body on stdout, one error line, exit 1."""
    app.ok("/down", b"still down", status=503)

    code, out, err = run(capsysbinary, "get", "--retries", "1", app.url("/down"))

    assert (code, out) == (1, b"still down")
    assert len(err) == 1
    assert err[0].startswith("rcm: error: RetryError: GET ")
    assert "retries exhausted after 2 attempts: " in err[0]
    assert "too many 503 error responses" in err[0]
    assert app.hits("/down") == 2


# ------------------------------------------------------------------------------- -v
def test_verbose_shows_each_attempt_wait_and_stats(app: AppServer, capsysbinary: Capture) -> None:
    """-v: one line per attempt (status, wait before the next), settings and host counters."""
    app.fail_then_ok("/flaky", failures=2, ok_body=b"finally")

    code, out, err = run(capsysbinary, "get", "-v", "--retries", "2", app.url("/flaky"))

    assert (code, out) == (0, b"finally")
    attempts = [line for line in err if line.startswith("rcm: attempt ")]
    assert len(attempts) == 3, err
    for number, line in enumerate(attempts[:2], start=1):
        assert re.fullmatch(
            rf"rcm: attempt {number}: status 503; retrying in \d+\.\d{{3}} s", line
        ), line
    assert attempts[2] == "rcm: attempt 3: status 200"
    assert f"rcm: GET {app.url('/flaky')}" in err
    assert "rcm: settings: max_retries=2 timeout=30 total_timeout=None rate_limit=off" in err
    (stats,) = [line for line in err if line.startswith("rcm: stats ")]
    assert stats.startswith(f"rcm: stats {app.base_url}: requests=1 attempts=3 retries=2 ")
    assert "failures=2" in stats
    assert "breaker_state=closed" in stats
    assert err.index(attempts[-1]) < err.index(stats)


def test_verbose_failure_shows_last_attempt_and_error(capsysbinary: Capture) -> None:
    """-v on a refused port: every attempt, then the error line and the counters."""
    url = f"http://127.0.0.1:{free_port()}/x"

    code, out, err = run(capsysbinary, "get", "-v", "--retries", "1", url)

    assert (code, out) == (1, b"")
    assert re.fullmatch(r"rcm: attempt 1: ConnectionError; retrying in \d+\.\d{3} s", err[2])
    assert err[3] == "rcm: attempt 2: ConnectionError"
    assert err[4].startswith(f"rcm: error: ConnectionError: GET {url}: retries exhausted after 2 ")
    assert err[5].startswith("rcm: stats http://127.0.0.1:")
    assert "attempts=2 retries=1 failures=2" in err[5]


@pytest.mark.parametrize(
    ("rate", "shown"),
    [("10/1", "10 per 1 s"), ("100/m", "100 per 60 s"), ("5/2.5", "5 per 2.5 s")],
)
def test_rate_reaches_the_manager(
    app: AppServer, capsysbinary: Capture, rate: str, shown: str
) -> None:
    """--rate configures the manager's limiter (its get_stats, shown with -v)."""
    app.ok("/r", b"ok")

    code, out, err = run(capsysbinary, "get", "-v", "--rate", rate, app.url("/r"))

    assert (code, out) == (0, b"ok")
    assert any(line.endswith(f"rate_limit={shown}") for line in err), err


def test_options_reach_the_manager(monkeypatch: pytest.MonkeyPatch, capsysbinary: Capture) -> None:
    """Each option becomes its ConnectionManager keyword; unset ones keep the defaults."""
    seen: list[dict[str, Any]] = []

    def refuse(**kwargs: Any) -> None:
        seen.append(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(cli, "ConnectionManager", refuse)
    argv = ["get", "--rate", "1000/h", "--retries", "4", "--timeout", "2.5"]
    main([*argv, "--total-timeout", "9", "http://127.0.0.1:9/"])
    main(["get", "http://127.0.0.1:9/"])
    capsysbinary.readouterr()

    assert seen == [
        {
            "rate_limit_requests": 1000,
            "rate_limit_period": 3600.0,
            "max_retries": 4,
            "timeout": 2.5,
            "total_timeout": 9.0,
        },
        {},
    ]


def test_secrets_never_reach_stderr(app: AppServer, capsysbinary: Capture) -> None:
    """With -v, query secrets and user-info are redacted from every stderr line."""
    app.fail_then_ok("/s", failures=1)
    url = f"http://user:PASSWORD@127.0.0.1:{app.port}/s?api_key=SECRET&page=2"

    code, _, err = run(capsysbinary, "get", "-v", "--retries", "1", url)
    refused = f"http://user:PASSWORD@127.0.0.1:{free_port()}/s?api_key=SECRET"
    failed, _, failed_err = run(capsysbinary, "get", "-v", "--retries", "0", refused)

    assert (code, failed) == (0, 1)
    text = "\n".join(err + failed_err)
    assert "SECRET" not in text
    assert "PASSWORD" not in text
    assert "api_key=[REDACTED]" in text
    assert app.requests[0].query_string == "api_key=SECRET&page=2"  # sent, just not shown


def test_logger_left_as_found(app: AppServer, capsysbinary: Capture) -> None:
    """The library logger's level and handlers are restored after a -v run."""
    app.ok("/x")
    logger = logging.getLogger("requests_connection_manager")
    before = (logger.level, list(logger.handlers))

    assert run(capsysbinary, "get", "-v", app.url("/x"))[0] == 0
    assert run(capsysbinary, "get", app.url("/x"))[0] == 0

    assert (logger.level, logger.handlers) == before


# ---------------------------------------------------------------------------- failures
def test_refused_port_is_one_error_line(capsysbinary: Capture) -> None:
    """A refused connection: exit 1, one ``rcm: error: ConnectionError: ...`` line."""
    url = f"http://127.0.0.1:{free_port()}/x"

    code, out, err = run(capsysbinary, "get", "--retries", "0", url)

    assert (code, out) == (1, b"")
    assert len(err) == 1
    assert err[0].startswith("rcm: error: ConnectionError: GET http://127.0.0.1:")


def test_total_timeout_is_an_error(app: AppServer, capsysbinary: Capture) -> None:
    """--total-timeout bounds the call: a slow server gives one timeout error line."""
    app.slow("/slow", 5)

    code, out, err = run(
        capsysbinary, "get", "--retries", "0", "--total-timeout", "0.3", app.url("/slow")
    )

    assert (code, out) == (1, b"")
    assert len(err) == 1
    assert re.match(r"rcm: error: \w*Timeout: ", err[0]), err[0]


def test_closed_stdout_exits_1_quietly(
    app: AppServer, monkeypatch: pytest.MonkeyPatch, capsysbinary: Capture
) -> None:
    """A reader that went away (``rcm get URL | head``): exit 1, no traceback."""

    class ClosedPipe(io.BytesIO):
        def write(self, data: Any) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    app.ok("/x", b"body")
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(ClosedPipe()))

    assert main(["get", app.url("/x")]) == 1
    assert capsysbinary.readouterr().err == b""


# -------------------------------------------------------------------------- bad usage
@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["get"], "URL"),
        (["get", "--bogus", "http://127.0.0.1/"], "--bogus"),
        (["get", "--rate", "abc", "http://127.0.0.1/"], "--rate"),
        (["get", "--rate", "0/1", "http://127.0.0.1/"], "--rate"),
        (["get", "--rate", "10/0", "http://127.0.0.1/"], "--rate"),
        (["get", "--retries", "-1", "http://127.0.0.1/"], "--retries"),
        (["get", "--retries", "two", "http://127.0.0.1/"], "--retries"),
        (["get", "--timeout", "-1", "http://127.0.0.1/"], "--timeout"),
        (["get", "--timeout", "0", "http://127.0.0.1/"], "--timeout"),
        (["get", "--total-timeout", "-0.5", "http://127.0.0.1/"], "--total-timeout"),
        (["get", "--total-timeout", "nan", "http://127.0.0.1/"], "--total-timeout"),
        (["get", "ftp://127.0.0.1/file"], "URL"),
        (["get", "127.0.0.1/path"], "URL"),
        (["get", "http:///no-host"], "URL"),
        (["get", "http://127.0.0.1:99999/"], "URL"),
        (["nope"], "nope"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    capsysbinary: Capture, argv: list[str], mentions: str
) -> None:
    """Each kind of bad argument: exactly one ``rcm: error:`` line on stderr, exit 2."""
    err = usage_error(capsysbinary, *argv)

    assert len(err) == 1, err
    assert err[0].startswith("rcm: error: ")
    assert mentions in err[0]


def test_bad_url_error_redacts_secrets(capsysbinary: Capture) -> None:
    """A rejected URL is quoted in the error with its secrets redacted."""
    (line,) = usage_error(capsysbinary, "get", "ftp://u:pw@host/x?token=SECRET")

    assert "SECRET" not in line
    assert ":pw@" not in line


def test_manager_validation_error_is_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: Capture
) -> None:
    """A ValueError/TypeError from ConnectionManager: one ``rcm: error:`` line, exit 2."""

    def refuse(**kwargs: Any) -> None:
        raise ValueError("max_retries must be an int >= 0,\n got -1")

    monkeypatch.setattr(cli, "ConnectionManager", refuse)

    code, out, err = run(capsysbinary, "get", "http://127.0.0.1:9/")

    assert (code, out) == (2, b"")
    assert err == ["rcm: error: max_retries must be an int >= 0, got -1"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/1", (10, 1.0)),
        ("10/s", (10, 1.0)),
        ("100/m", (100, 60.0)),
        ("1000/h", (1000, 3600.0)),
        ("30/5m", (30, 300.0)),
        ("5/2.5", (5, 2.5)),
        (" 7/0.5S ", (7, 0.5)),
    ],
)
def test_parse_rate_accepts(text: str, expected: tuple[int, float]) -> None:
    """--rate takes N/seconds, N/unit and N/number+unit."""
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "10", "10/", "/1", "0/1", "10/0", "10/0m", "-1/1", "1/d"])
def test_parse_rate_rejects(text: str) -> None:
    """Malformed, zero or negative rates are refused."""
    with pytest.raises(argparse.ArgumentTypeError):
        parse_rate(text)


def test_get_help_documents_the_options_and_exit_codes(capsysbinary: Capture) -> None:
    """``get --help`` lists every option, the rate syntax and the exit statuses."""
    with pytest.raises(SystemExit) as exit_info:
        main(["get", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsysbinary.readouterr().out.decode().split())
    for needle in ("--rate N/PERIOD", "--retries N", "--timeout S", "--total-timeout S", "-v"):
        assert needle in text
    assert "100/m" in text
    assert "--fail-with-body" in text


# -------------------------------------------------------------------- real entry point
def test_module_entry_point_subprocess(app: AppServer) -> None:
    """``python -m requests_connection_manager get URL`` prints the body and exits 0/1/2."""
    app.ok("/bin", BINARY_BODY)

    def handler(request: Request) -> Response:
        return Response(b"gone", status=410)

    app.route("/gone", handler)

    def rcm(*argv: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "requests_connection_manager", *argv],
            capture_output=True,
            timeout=30,
            check=False,
        )

    ok = rcm("get", app.url("/bin"))
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, BINARY_BODY, b"")

    gone = rcm("get", app.url("/gone"))
    assert (gone.returncode, gone.stdout, gone.stderr) == (1, b"gone", b"")

    bad = rcm("get", "--rate", "abc", app.url("/bin"))
    assert bad.returncode == 2
    assert bad.stderr.decode().splitlines() == [
        "rcm: error: argument --rate: expected N/PERIOD such as 10/1, 10/s, 100/m or 1000/h, "
        "got 'abc'"
    ]


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["demo", "--workers", "many"], "--workers"),
        (["demo", "--workers", "0"], "--workers"),
        (["get", "--timeout", "soon", "http://127.0.0.1/"], "--timeout"),
    ],
)
def test_more_bad_numbers_are_one_line_and_exit_2(
    capsysbinary: Capture, argv: list[str], mentions: str
) -> None:
    """Non-numbers and out-of-range numbers for the demo and get options are usage errors."""
    err = usage_error(capsysbinary, *argv)
    assert len(err) == 1, err
    assert mentions in err[0]


def test_verbose_single_failed_attempt_is_shown(app: AppServer, capsysbinary: Capture) -> None:
    """With no retries, -v shows the one attempt and its status."""
    app.ok("/down", b"x", status=500)
    code, _, err = run(capsysbinary, "get", "-v", "--retries", "0", app.url("/down"))
    assert code == 1
    assert any(line.startswith("rcm: attempt 1: status 500") for line in err), err
