"""The command line: ``python -m requests_connection_manager <command>``.

Each command is a subparser whose ``handler`` default takes the parsed arguments and
returns the exit code; add a command by adding a ``_add_<name>`` function to
:func:`build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from . import __version__
from .demo import (
    DEFAULT_REQUESTS,
    DEFAULT_SEED,
    DEFAULT_WORKERS,
    MIN_REQUESTS,
    RATE_LIMIT,
    run_demo,
)

__all__ = ["build_parser", "main"]

PROG = "python -m requests_connection_manager"

_DESCRIPTION = (
    "Command-line tools for requests-connection-manager, a drop-in wrapper of "
    "requests.Session with pooled connections, retries with backoff, a per-host rate "
    "limit and a per-host circuit breaker."
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _request_count(text: str) -> int:
    value = _positive_int(text)
    if value < MIN_REQUESTS:
        raise argparse.ArgumentTypeError(
            f"expected at least {MIN_REQUESTS} calls so every server shows its behaviour, "
            f"got {value}"
        )
    return value


def _run_demo(args: argparse.Namespace) -> int:
    return run_demo(workers=args.workers, requests=args.requests, seed=args.seed, quiet=args.quiet)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every command.

    Returns:
        The parser; parsed arguments carry ``handler(args) -> int`` when a command is given.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=f"demo: {_DEMO_DESCRIPTION} Run '{PROG} demo --help' for its options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    _add_demo(commands)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit code: the command's, 2 when no command is given, 130 on Ctrl-C.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
