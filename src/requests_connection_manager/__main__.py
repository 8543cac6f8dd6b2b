"""``python -m requests_connection_manager <command>``: the command line.

The parser and the commands live in :mod:`._cli` (also the ``rcm`` console script);
``build_parser`` and ``main`` are re-exported here for compatibility.
"""

from __future__ import annotations

from ._cli import PROG, build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main(prog=PROG))
