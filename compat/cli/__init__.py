"""The strangler's command line: `compat` (also `python -m compat`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

import psycopg2
import sqlalchemy as sa

from compat.errors import CompatError
from compat.flags.store import MODES
from compat.routing.declaration import REGISTRY
from compat.runtime import get_runtime
from compat.verify import runner as verification
from compat.verify.embedded import EmbeddedUnavailable
from layer_settings import SettingsError

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130


def _table(rows: Sequence[Sequence[object]], header: Sequence[str], out: TextIO) -> None:
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        out.write("\n")
        if index == 0:
            out.write("  ".join("-" * width for width in widths) + "\n")


def _where() -> str:
    try:
        return get_runtime().engine.url.render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        # Called while reporting an error: never raise again, never echo the raw URL.
        return "DATABASE_URL (which cannot be parsed)"


def flags_list(args: argparse.Namespace, out: TextIO) -> int:
    """Every key, its effective mode, where that mode comes from, its sample rate."""
    store = get_runtime().flags
    # The store keeps serving the defaults when it cannot read the table; listing
    # them as the effective modes would mislead whoever decides the next flip.
    with get_runtime().engine.connect() as connection:
        connection.execute(sa.text("SELECT 1 FROM compat_flags LIMIT 1"))
    states = store.states()
    _table(
        [(s.key, s.mode.value, s.source, f"{s.sample_rate:g}") for s in states],
        ("key", "mode", "source", "sample"),
        out,
    )
    for problem in store.problems:
        out.write(f"warning: {problem} (ignored)\n")
    return EXIT_OK


def flags_set(args: argparse.Namespace, out: TextIO) -> int:
    """Set one flag in the shared table, with an audit row."""
    change = get_runtime().flags.set(
        args.key, args.mode, reason=args.reason, by=args.by, sample_rate=args.sample
    )
    out.write(
        f"{change.key}: {change.old_mode or 'legacy (default)'} -> {change.new_mode} "
        f"(sample {change.new_sample_rate:g}) by {change.changed_by}: {change.reason}\n"
    )
    effective = next(s for s in get_runtime().flags.states() if s.key == change.key)
    if effective.source != "table":
        out.write(
            f"note: {change.key} is overridden by {effective.source} "
            f"(effective mode {effective.mode.value})\n"
        )
    return EXIT_OK


def flags_history(args: argparse.Namespace, out: TextIO) -> int:
    """The audited flag changes, newest first."""
    changes = get_runtime().flags.history(args.key, limit=args.limit)
    _table(
        [
            (
                c.changed_at.isoformat(sep=" ", timespec="seconds"),
                c.key,
                f"{c.old_mode or '-'} -> {c.new_mode}",
                f"{c.new_sample_rate:g}",
                c.changed_by,
                c.reason,
            )
            for c in changes
        ],
        ("when (UTC)", "key", "change", "sample", "by", "reason"),
        out,
    )
    return EXIT_OK


_STATUS = sa.text(
    "SELECT key, count(*) AS observations, count(*) FILTER (WHERE NOT matched) AS mismatches, "
    "max(observed_at) FILTER (WHERE NOT matched) AS last_mismatch "
    "FROM compat_observations "
    "WHERE observed_at >= CURRENT_TIMESTAMP - :minutes * INTERVAL '1 minute' GROUP BY key"
)


def status(args: argparse.Namespace, out: TextIO) -> int:
    """Per key: mode, observations and mismatches in the window, last mismatch time."""
    with get_runtime().engine.connect() as connection:
        seen = {row.key: row for row in connection.execute(_STATUS, {"minutes": args.window})}
    rows = []
    for state in get_runtime().flags.states():
        row = seen.get(state.key)
        rows.append(
            (
                state.key,
                state.mode.value,
                row.observations if row else 0,
                row.mismatches if row else 0,
                row.last_mismatch.isoformat(sep=" ", timespec="seconds")
                if row and row.last_mismatch
                else "-",
            )
        )
    out.write(f"database: {_where()}; window: last {args.window:g} minutes\n")
    _table(rows, ("key", "mode", "observations", "mismatches", "last mismatch (UTC)"), out)
    return EXIT_OK


def _stderr(message: str) -> None:
    sys.stderr.write(f"compat verify: {message}\n")
    sys.stderr.flush()


def _ms(latency: verification.Latency) -> str:
    return f"{latency.p50_ms:.2f} / {latency.p95_ms:.2f}"


def _verify_text(report: verification.Report, out: TextIO) -> None:
    seeded = f"; seeded {report.seeded}" if report.seeded else ""
    out.write(
        f"database: {report.database}{seeded}; up to {report.sample} sampled calls per function "
        f"plus edge cases, in one transaction rolled back at the end\n"
    )
    _table(
        [
            (
                f.key,
                f.kind.value,
                f.mode,
                f.cases,
                f.matches,
                f.mismatches,
                _ms(f.legacy),
                _ms(f.orm),
                f.verdict,
            )
            for f in report.functions
        ],
        (
            "key",
            "kind",
            "mode",
            "cases",
            "matches",
            "mismatches",
            "legacy ms p50 / p95",
            "orm ms p50 / p95",
            "verdict",
        ),
        out,
    )
    diffs = [f.first_diff for f in report.functions if f.first_diff]
    if diffs:
        out.write("\nfirst difference of each blocked function (personal data redacted):\n")
        for diff in diffs:
            out.write(f"{diff}\n")
    out.write("\n")
    for moved in report.sequences:
        out.write(
            f"sequence {moved.name}: {moved.before} -> {moved.after} during the run (an insert "
            f"draws its value for good, even when rolled back as every call here is)\n"
        )
    cases = sum(f.cases for f in report.functions)
    if report.verdict == verification.READY:
        out.write(
            f"verdict: ready: all {len(report.functions)} functions matched on all {cases} calls "
            f"({report.seconds:.1f} s)\n"
        )
    else:
        out.write(
            f"verdict: blocked: {len(report.blocked)} of {len(report.functions)} functions "
            f"did not match on every call: {', '.join(report.blocked)} ({report.seconds:.1f} s)\n"
        )


def verify(args: argparse.Namespace, out: TextIO) -> int:
    """Compare both paths of each function on real rows; exit 1 when anything mismatched."""
    keys = verification.select_keys(args.functions)
    if not keys:
        sys.stderr.write(
            f"compat verify: --functions {args.functions!r} matches no function; "
            f"valid keys are: {', '.join(sorted(REGISTRY))}\n"
        )
        return EXIT_USAGE
    progress = (lambda _message: None) if args.quiet else _stderr
    if verification.configured():
        progress(f"verifying the database at {_where()} (no migration; every call is rolled back)")
        report = verification.verify(keys, sample_size=args.sample, progress=progress)
    else:
        progress("DATABASE_URL is not set: verifying on a throwaway PostgreSQL with generated data")
        try:
            report = verification.verify_embedded(keys, sample_size=args.sample, progress=progress)
        except EmbeddedUnavailable as error:
            sys.stderr.write(f"compat verify: {error}\n")
            return EXIT_UNAVAILABLE
        except KeyboardInterrupt:
            # The throwaway server is already stopped and removed by now.
            sys.stderr.write("compat verify: interrupted\n")
            return EXIT_INTERRUPTED
    if args.json:
        json.dump(report.as_json(), out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        _verify_text(report, out)
    return EXIT_OK if report.verdict == verification.READY else EXIT_FAILED


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
        sys.stderr.write(f"compat: the database at {_where()} said: {message}\n")
        return EXIT_FAILED
