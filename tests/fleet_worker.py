"""A worker process for the fleet tests: calls through a manager that shares state in Redis.

Run as ``python -m tests.fleet_worker --redis URL --url URL --calls N [...]``; prints one
JSON list with the outcome of each call (a status code, or an exception class name), then,
with ``--starts``, a second JSON list: the ``time.monotonic()`` of each attempt's start
(right after its permit; one clock for every process of the machine); on stderr
``outages=N``: how often this process fell back to local state (Redis failing or too
slow), during which the quota is not shared.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from requests_connection_manager import ConnectionManager, ConnectionManagerError
from requests_connection_manager.events import AttemptStarted, Event, SharedStateChanged


def main(argv: Optional[list[str]] = None) -> int:
    """Make the calls and print their outcomes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", default="rcm")
    parser.add_argument("--url", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--rate", type=int)
    parser.add_argument("--period", type=int, default=1)
    parser.add_argument("--strategy", default="sliding-window")
    parser.add_argument("--threshold", type=int, default=5)
    parser.add_argument("--recovery", type=float, default=60)
    parser.add_argument("--starts", action="store_true")
    args = parser.parse_args(argv)
    outcomes: list[object] = []
    outages: list[str] = []
    starts: list[float] = []

    def on_event(event: Event) -> None:
        if isinstance(event, SharedStateChanged) and not event.healthy:
            outages.append(str(event.cause))
        if isinstance(event, AttemptStarted):
            starts.append(event.time)

    with ConnectionManager(
        max_retries=0,
        redis_url=args.redis,
        redis_prefix=args.prefix,
        rate_limit_requests=args.rate,
        rate_limit_period=args.period,
        rate_limit_strategy=args.strategy,
        circuit_breaker_failure_threshold=args.threshold,
        circuit_breaker_recovery_timeout=args.recovery,
        total_timeout=30,
        on_event=on_event,
    ) as cm:
        for _ in range(args.calls):
            try:
                outcomes.append(cm.get(args.url).status_code)
            except ConnectionManagerError as exc:
                outcomes.append(type(exc).__name__)
    print(json.dumps(outcomes))
    print(f"outages={len(outages)} {' '.join(outages)}", file=sys.stderr)
    if args.starts:
        print(json.dumps(starts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
