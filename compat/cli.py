"""The strangler's command line: `compat` (also `python -m compat`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `compat` command."""
    parser = argparse.ArgumentParser(
        prog="compat",
        description=(
            "Route legacy psycopg2 functions to SQLAlchemy repositories, one flag at a time."
        ),
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `compat` command line; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0
