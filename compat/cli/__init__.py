"""The strangler's command line: `compat` (also `python -m compat`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

import psycopg2
import sqlalchemy as sa

import compat  # noqa: F401  (declares every facade function)
from compat.cli.cache import cache_history, cache_list, cache_off, cache_set
from compat.cli.flags import flags_history, flags_list, flags_set
from compat.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, where
from compat.cli.status import status
from compat.cli.verify import verify
from compat.errors import CompatError
from compat.flags.modes import MODES
from compat.verify import runner as verification
from layer_settings import SettingsError

__all__ = ["build_parser", "main"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `compat` command."""
    parser = argparse.ArgumentParser(
        prog="compat",
        description=(
            "Route legacy psycopg2 functions to SQLAlchemy repositories, one flag at a time. "
            "The database comes from DATABASE_URL."
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    flags = commands.add_parser("flags", help="list, set and audit the per-function flags")
    flag_commands = flags.add_subparsers(dest="flags_command", metavar="SUBCOMMAND", required=True)
    listing = flag_commands.add_parser("list", help="every key, its mode and where it comes from")
    listing.set_defaults(run=flags_list)
    setting = flag_commands.add_parser("set", help="set a key's mode (audited)")
    setting.add_argument("key", help="a facade function, e.g. user_sessions.get_session")
    setting.add_argument("mode", help=f"one of: {', '.join(MODES)}")
    setting.add_argument("--reason", required=True, help="why (required; goes to the audit)")
    setting.add_argument("--by", help="who (default: the OS user)")
    setting.add_argument("--sample", type=float, help="comparison sample rate, 0..1")
    setting.set_defaults(run=flags_set)
    history = flag_commands.add_parser("history", help="the audited changes, newest first")
    history.add_argument("key", nargs="?", help="only this key")
    history.add_argument("--limit", type=int, default=50)
    history.set_defaults(run=flags_history)

    caching = commands.add_parser("cache", help="list, set and audit the per-function read cache")
    cache_commands = caching.add_subparsers(
        dest="cache_command", metavar="SUBCOMMAND", required=True
    )
    cache_listing = cache_commands.add_parser("list", help="every read function and its TTL")
    cache_listing.set_defaults(run=cache_list)
    cache_setting = cache_commands.add_parser("set", help="cache a read function (audited)")
    cache_setting.add_argument("key", help="a read function, e.g. user_sessions.get_session")
    cache_setting.add_argument(
        "--ttl", type=float, required=True, help="seconds a result may be served (0 < TTL <= 86400)"
    )
    cache_setting.add_argument("--reason", required=True, help="why (required; goes to the audit)")
    cache_setting.add_argument("--by", help="who (default: the OS user)")
    cache_setting.set_defaults(run=cache_set)
    cache_stopping = cache_commands.add_parser("off", help="stop caching a function (audited)")
    cache_stopping.add_argument("key")
    cache_stopping.add_argument("--reason", required=True, help="why (required; goes to the audit)")
    cache_stopping.add_argument("--by", help="who (default: the OS user)")
    cache_stopping.set_defaults(run=cache_off)
    cache_changes = cache_commands.add_parser("history", help="the audited changes, newest first")
    cache_changes.add_argument("key", nargs="?", help="only this key")
    cache_changes.add_argument("--limit", type=int, default=50)
    cache_changes.set_defaults(run=cache_history)

    state = commands.add_parser("status", help="modes and recent mismatches per function")
    state.add_argument("--window", type=float, default=60.0, help="minutes to look back (60)")
    state.set_defaults(run=status)

    checking = commands.add_parser(
        "verify",
        help="compare both paths of every function on real rows (changes nothing)",
        description=(
            "Run each facade function on the legacy and the ORM path from the same state and "
            "compare results, errors and touched rows; every call is rolled back. With "
            "DATABASE_URL (or POSTGRES_*) set, on that database, which is not migrated; "
            "without, on a throwaway PostgreSQL started, migrated and seeded for the run. "
            "Exit status: 0 ready, 1 blocked (a mismatch) or a database error, 2 usage, "
            "3 no throwaway PostgreSQL could be started."
        ),
    )
    checking.add_argument(
        "--functions", metavar="GLOB", help="only the keys matching this glob (comma-separated)"
    )
    checking.add_argument(
        "--sample",
        type=_positive,
        default=verification.DEFAULT_SAMPLE,
        metavar="N",
        help=f"sampled rows per function (default {verification.DEFAULT_SAMPLE})",
    )
    checking.add_argument("--json", action="store_true", help="print one JSON document")
    checking.add_argument("--quiet", action="store_true", help="no progress on stderr")
    checking.set_defaults(run=verify)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the `compat` command line; return its exit status."""
    out = out or sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on a usage error or --help; we return
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    run: Callable[[argparse.Namespace, TextIO], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help(out)
        return EXIT_OK
    try:
        return run(args, out)
    except (CompatError, SettingsError) as error:
        sys.stderr.write(f"compat: {error}\n")
        return EXIT_USAGE
    except (sa.exc.SQLAlchemyError, psycopg2.Error, OSError) as error:
        message = str(getattr(error, "orig", None) or error).splitlines()[0]
        sys.stderr.write(f"compat: the database at {where()} said: {message}\n")
        return EXIT_FAILED
