"""The command line: ``rcm <command>`` or ``python -m requests_connection_manager <command>``.

Commands:

``get URL``
    Fetch one URL through a :class:`~._manager.ConnectionManager` configured from the
    flags (``--rate``, ``--retries``, ``--timeout``, ``--total-timeout``) and write the
    body to stdout, byte for byte. ``-v`` shows every attempt, the waits between them and
    the host's counters on stderr.
``demo``
    A self-contained demo against local flaky HTTP servers (see :mod:`._demo`).

Exit status: 0 on success (for ``get``: a 2xx or 3xx response), 1 on a failure (for
``get``: a 4xx/5xx response, whose body is still printed, or an error of the exception
contract), 2 on a usage error (one line on stderr: ``rcm: error: <message>``), 130 on
Ctrl-C.

Each command is a subparser whose ``handler`` default takes the parsed arguments and
returns the exit code; add a command by adding a ``_add_<name>`` function to
:func:`build_parser`.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import math
import os
import re
import sys
from typing import TYPE_CHECKING, Any, NoReturn, Optional
from urllib.parse import urlsplit

import requests

from . import __version__
from ._demo import (
    DEFAULT_REQUESTS,
    DEFAULT_SEED,
    DEFAULT_WORKERS,
    MIN_REQUESTS,
    RATE_LIMIT,
    run_demo,
)
from ._manager import ConnectionManager
from ._redaction import redact_text, redact_url
from .events import (
    AttemptFinished,
    BreakerStateChanged,
    HostPaused,
    RequestFinished,
    RetryScheduled,
)
from .exceptions import ConnectionManagerError, MaxRetriesExceeded

if TYPE_CHECKING:
    from collections.abc import Sequence

    from requests import Response

__all__ = ["CONSOLE_PROG", "PROG", "build_parser", "main", "parse_rate"]

#: The program name under ``python -m``.
PROG = "python -m requests_connection_manager"
#: The name of the console script, and the prefix of every line the CLI writes to stderr.
CONSOLE_PROG = "rcm"

_LOGGER_NAME = "requests_connection_manager"

_DESCRIPTION = (
    "Command-line tools for requests-connection-manager, a drop-in wrapper of "
    "requests.Session with pooled connections, retries with backoff, a per-host rate "
    "limit and a per-host circuit breaker."
)

_EXIT_STATUS = (
    "Exit status: 0 on success, 1 on a failure, 2 on a usage error (reported on one line: "
    f"'{CONSOLE_PROG}: error: <message>'), 130 when interrupted."
)

_DEMO_HELP = "run a self-contained demo against local flaky HTTP servers"

_DEMO_DESCRIPTION = (
    "Start four small, deliberately flaky HTTP servers on 127.0.0.1 (ephemeral ports; "
    "nothing leaves this machine): 'steady' always answers 200, 'flaky' answers 503 to "
    "one request in three, 'throttled' answers 429 with Retry-After: 1, and 'outage' "
    "answers 503 to everything for its first 1.5 s. A thread pool then drives a paced, "
    "concurrent workload through one ConnectionManager (3 retries, a circuit breaker "
    "that opens after 3 consecutive failures and probes after 1 s, a per-host rate "
    "limit) and prints a per-host table of its statistics, the outcome of every call, a "
    "timeline of the circuit breaker's transitions and what they show. The run takes "
    "about 5 s and exits 0 when everything behaved as designed, 1 otherwise."
)

_GET_HELP = "fetch one URL through a ConnectionManager and write the body to stdout"

_GET_DESCRIPTION = (
    "Send one GET request through a ConnectionManager configured from the options below "
    "(retries with full-jitter backoff, a per-host circuit breaker, optionally a rate "
    "limit and a deadline) and write the response body to stdout exactly as received. "
    "Redirects are followed."
)

_GET_EPILOG = (
    "Exit status: 0 for a 2xx or 3xx response; 1 for a 4xx or 5xx response (the body is "
    "still written to stdout, like curl --fail-with-body; when retries of a 429/5xx status "
    "run out, the last response's body is written too) or for a failure such as a refused "
    f"connection or a timeout (one line on stderr: '{CONSOLE_PROG}: error: <ExceptionClass>: "
    "<message>'); 2 for a usage error (one line on stderr); 130 when interrupted. "
    "Secrets in the URL (user:password@, ?api_key=..., ?token=...) are redacted from "
    "everything written to stderr."
)

# Defaults of the manager, shown in the help and used in the -v settings line.
_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(ConnectionManager.__init__).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}

_PERIOD_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(
    r"(?P<count>\d+)/(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)?(?P<unit>[smh])?"
)


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line: ``rcm: error: <message>``."""

    def error(self, message: str) -> NoReturn:
        """Report a usage error on one line of stderr and exit with status 2.

        Args:
            message: What is wrong.
        """
        _report(f"error: {_one_line(message)}")
        self.exit(2)


class _UsageError(Exception):
    """The arguments parsed, but the manager refused them (exit status 2)."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _report(line: str) -> None:
    """Write ``rcm: <line>`` to stderr (looked up at call time, so capture works)."""
    sys.stderr.write(f"{CONSOLE_PROG}: {line}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- arg types
def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _request_count(text: str) -> int:
    value = _positive_int(text)
    if value < MIN_REQUESTS:
        raise argparse.ArgumentTypeError(
            f"expected at least {MIN_REQUESTS} calls so every server shows its behaviour, "
            f"got {value}"
        )
    return value


def _retries(text: str) -> int:
    return _int_at_least(text, 0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def parse_rate(text: str) -> tuple[int, float]:
    """Parse a ``--rate`` value: ``N/PERIOD``, N requests per PERIOD per host.

    PERIOD is a number of seconds, optionally followed by a unit ``s``, ``m`` or ``h``,
    or a unit alone (meaning one of it): ``10/1``, ``10/s``, ``100/m``, ``1000/h``,
    ``5/2.5``, ``30/5m``.

    Args:
        text: The value given on the command line.

    Returns:
        ``(rate_limit_requests, rate_limit_period)``, the period in seconds.

    Raises:
        argparse.ArgumentTypeError: The value is malformed, N < 1 or PERIOD <= 0.
    """
    match = _RATE.fullmatch(text.strip().lower())
    if match is None or (match["number"] is None and match["unit"] is None):
        raise argparse.ArgumentTypeError(
            f"expected N/PERIOD such as 10/1, 10/s, 100/m or 1000/h, got {text!r}"
        )
    count = int(match["count"])
    period = float(match["number"] or 1) * _PERIOD_UNITS[match["unit"] or "s"]
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 request per period, got {text!r}")
    if not math.isfinite(period) or period <= 0:
        raise argparse.ArgumentTypeError(f"expected a period > 0, got {text!r}")
    return count, period


def _http_url(text: str) -> str:
    shown = redact_url(text)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid URL {shown!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"expected an http:// or https:// URL with a host, got {shown!r}"
        )
    return text


# ------------------------------------------------------------------------- get command
class _Progress:
    """Writes what the manager does as ``rcm:`` lines: a subscriber of its event stream.

    One line per attempt that is retried (its outcome and the wait), per attempt that
    ends a request (from a response hook, which knows a redirect's ``Location``, or from
    the request's end when it failed), per breaker change, pause and shared-state change.
    """

    def __init__(self) -> None:
        self._last: dict[int, str] = {}  # request id -> outcome of its latest attempt
        self._attempt = 1  # number of the latest attempt (the CLI makes one call)

    def __call__(self, event: Any) -> None:
        """Write the line ``event`` deserves, if any."""
        if isinstance(event, AttemptFinished):
            self._attempt = event.attempt
            self._last[event.request_id] = (
                f"status {event.status}" if event.status is not None else str(event.error)
            )
        elif isinstance(event, RetryScheduled):
            _report(f"attempt {event.attempt}: {event.outcome}; retrying in {event.wait:.3f} s")
        elif isinstance(event, RequestFinished):
            last = self._last.pop(event.request_id, None)
            if event.error is not None and last is not None:
                _report(f"attempt {event.attempts}: {last}")
        elif isinstance(event, BreakerStateChanged):
            _report(f"circuit breaker for {event.host}: {event.old or 'new'} -> {event.new}")
        elif isinstance(event, HostPaused):
            _report(f"{event.host} paused for {event.seconds:.3f} s ({event.source})")

    def response_hook(self, response: Response, *args: Any, **kwargs: Any) -> Response:
        """Report the attempt whose response ends a redirect hop (a requests hook)."""
        line = f"attempt {self._attempt}: status {response.status_code}"
        location = response.headers.get("Location")
        if response.is_redirect and location:
            line += f"; redirect to {redact_url(location)}"
        _report(line)
        return response


def _write_body(response: Response) -> None:
    """Write the body to stdout as bytes."""
    try:
        body = response.content
    except (RuntimeError, requests.RequestException):
        return  # no body left to show (the call failed while reading it)
    sys.stdout.flush()
    binary = getattr(sys.stdout, "buffer", None)
    if binary is not None:
        binary.write(body)
        binary.flush()
    else:  # a text-only stdout (an embedding replaced it)
        sys.stdout.write(body.decode(response.encoding or "utf-8", "replace"))
        sys.stdout.flush()


def _manager_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if args.rate is not None:
        kwargs["rate_limit_requests"], kwargs["rate_limit_period"] = args.rate
    if args.retries is not None:
        kwargs["max_retries"] = args.retries
    if args.timeout is not None:
        kwargs["timeout"] = args.timeout
    if args.total_timeout is not None:
        kwargs["total_timeout"] = args.total_timeout
    return kwargs


def _settings_line(cm: ConnectionManager, kwargs: dict[str, Any]) -> str:
    stats = cm.get_stats()
    retries = kwargs.get("max_retries", _DEFAULTS["max_retries"])
    rate = (
        "off"
        if stats["rate_limit_requests"] is None
        else f"{stats['rate_limit_requests']} per {stats['rate_limit_period']:g} s"
    )
    return (
        f"settings: max_retries={retries} timeout={stats['timeout']} "
        f"total_timeout={stats['total_timeout']} rate_limit={rate}"
    )


def _stats_lines(cm: ConnectionManager) -> list[str]:
    lines = []
    for host, counters in cm.get_stats()["hosts"].items():
        values = " ".join(f"{name}={value}" for name, value in counters.items())
        lines.append(f"stats {host}: {values}")
    return lines


def _error_line(exc: ConnectionManagerError, url: str) -> str:
    """``error: <class>: GET <url>: [gave up after N attempts: ]<message>``, one line."""
    detail = _one_line(redact_text(str(exc))) or type(exc).__name__
    if isinstance(exc, MaxRetriesExceeded):
        why = getattr(exc, "reason", None) or "gave up"
        detail = f"{why} after {exc.attempts} attempts: {detail}"
    return f"error: {type(exc).__name__}: GET {redact_url(url)}: {detail}"


def _run_get(args: argparse.Namespace) -> int:
    kwargs = _manager_kwargs(args)
    progress = _Progress() if args.verbose else None
    try:
        cm = ConnectionManager(**kwargs)
    except (ValueError, TypeError) as exc:
        raise _UsageError(str(exc)) from None
    # The library's own log lines are not shown: -v shows its events instead, and a
    # warning would otherwise reach stderr through logging's last-resort handler.
    logger = logging.getLogger(_LOGGER_NAME)
    quiet = logging.NullHandler()
    logger.addHandler(quiet)
    if progress is not None:
        cm.subscribe(progress)
    try:
        with cm:
            call: dict[str, Any] = {}
            if progress is not None:
                _report(f"GET {redact_url(args.url)}")
                _report(_settings_line(cm, kwargs))
                call["hooks"] = {"response": [progress.response_hook]}
            try:
                response = cm.get(args.url, **call)
            except ConnectionManagerError as exc:
                if exc.response is not None:
                    _write_body(exc.response)
                _report(_error_line(exc, args.url))
                code = 1
            else:
                _write_body(response)
                code = 0 if response.status_code < 400 else 1
            if progress is not None:
                for line in _stats_lines(cm):
                    _report(line)
            return code
    finally:
        logger.removeHandler(quiet)


def _add_get(commands: argparse._SubParsersAction[_Parser]) -> None:
    get = commands.add_parser(
        "get", help=_GET_HELP, description=_GET_DESCRIPTION, epilog=_GET_EPILOG
    )
    get.add_argument("url", type=_http_url, metavar="URL", help="the http:// or https:// URL")
    get.add_argument(
        "--rate",
        type=parse_rate,
        metavar="N/PERIOD",
        help="client-side rate limit for the host: N requests per PERIOD, where PERIOD is "
        "seconds, optionally with a unit s, m or h, or a unit alone: 10/1, 10/s, 100/m, "
        "1000/h, 30/5m (default: no limit). Every attempt, retries included, takes a permit",
    )
    get.add_argument(
        "--retries",
        type=_retries,
        metavar="N",
        help="retries after the first attempt, >= 0, on connection errors, timeouts and "
        "429/500/502/503/504, with full-jitter backoff (base "
        f"{_DEFAULTS['backoff_factor']} s) or the server's Retry-After "
        f"(default {_DEFAULTS['max_retries']})",
    )
    get.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help=f"connect and read timeout of each attempt, in seconds > 0 "
        f"(default {_DEFAULTS['timeout']})",
    )
    get.add_argument(
        "--total-timeout",
        type=_seconds,
        metavar="S",
        help="deadline for the whole call in seconds > 0: attempts, waits, backoff and "
        "the body (default: none)",
    )
    get.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="on stderr: the settings, each attempt (its status or error, and the wait "
        "before the next one) and the host's counters at the end",
    )
    get.set_defaults(handler=_run_get)


# ------------------------------------------------------------------------ demo command
def _run_demo(args: argparse.Namespace) -> int:
    return run_demo(workers=args.workers, requests=args.requests, seed=args.seed, quiet=args.quiet)


def _add_demo(commands: argparse._SubParsersAction[_Parser]) -> None:
    demo = commands.add_parser("demo", help=_DEMO_HELP, description=_DEMO_DESCRIPTION)
    demo.add_argument(
        "--workers",
        type=_positive_int,
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"threads sending calls concurrently (default {DEFAULT_WORKERS})",
    )
    demo.add_argument(
        "--requests",
        type=_request_count,
        default=DEFAULT_REQUESTS,
        metavar="N",
        help=f"calls to make in total, at least {MIN_REQUESTS} (default {DEFAULT_REQUESTS}); "
        f"the client limit of {RATE_LIMIT} calls/s per host makes runs of more than about "
        f"{RATE_LIMIT * 4 * 4} calls last longer",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        metavar="N",
        help=f"seed for the call order and reply delays (default {DEFAULT_SEED})",
    )
    demo.add_argument(
        "--quiet", action="store_true", help="do not show the progress line on stderr"
    )
    demo.set_defaults(handler=_run_demo)


# ------------------------------------------------------------------------------ entry
def build_parser(prog: str = CONSOLE_PROG) -> argparse.ArgumentParser:
    """Build the argument parser with every command.

    Args:
        prog: The program name shown in usage and help texts.

    Returns:
        The parser; parsed arguments carry ``handler(args) -> int`` when a command is given.
        Usage errors print one line, ``rcm: error: <message>``, and exit with status 2.
    """
    parser = _Parser(
        prog=prog,
        description=_DESCRIPTION,
        epilog=f"get: {_GET_DESCRIPTION} Run '{prog} get --help' for its options. "
        f"demo: {_DEMO_DESCRIPTION} Run '{prog} demo --help' for its options. {_EXIT_STATUS}",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    _add_get(commands)
    _add_demo(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None, prog: str = CONSOLE_PROG) -> int:
    """Run the command line (the ``rcm`` console script).

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when None.
        prog: The program name shown in usage and help texts.

    Returns:
        The exit code: the command's, 2 when no command is given or the manager refuses
        an option, 130 on Ctrl-C. A usage error found while parsing exits with status 2
        (``SystemExit``).
    """
    parser = build_parser(prog)
    args = parser.parse_args(None if argv is None else list(argv))
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args))
    except _UsageError as exc:
        _report(f"error: {_one_line(str(exc))}")
        return 2
    except BrokenPipeError:
        # Whoever read stdout went away (``rcm get URL | head``): stop quietly, and keep
        # the interpreter from complaining when it flushes stdout at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
