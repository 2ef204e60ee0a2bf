"""Benchmarks: `python -m bench` measures every path of the facade on a throwaway database.

Run from the repository root:

    python -m bench                  # the full run (a few minutes), prints the table
    python -m bench --quick          # a smoke run (seconds; CI runs it, timings not asserted)
    python -m bench --json out.json  # also write everything measured as JSON
    python -m bench --profile orm:get_session  # pyinstrument tree of one path

The server comes from DATABASE_URL, else the local unix socket
(/var/run/postgresql), else the POSTGRES_* variables; a database is created
on it, migrated to head, seeded with 10,000 sessions and 20,000 uploads,
measured and dropped. Variants run interleaved, round by round, so drift on a
shared machine hits all of them alike. The exit status is 0 unless something
crashed: missed targets are reported, never failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from bench.database import Seeded, describe_url, scratch_database, seed, server_url
from bench.operations import OPERATIONS
from bench.profile import profile
from bench.report import evaluate, markdown, results_json
from bench.round_trips import count_round_trips, round_trips_table
from bench.suite import Settings, run_suite
from orm.database import get_engine

FULL = Settings(rounds=12, batch=25, dispatch_calls=400, bulk_rows=10_000, bulk_rounds=3)
QUICK = Settings(rounds=1, batch=3, dispatch_calls=20, bulk_rows=200, bulk_rounds=1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Measure the facade's paths: legacy, ORM, shadow, live."
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: few iterations")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    parser.add_argument("--rounds", type=int, help="rounds (default 12; --quick: 1)")
    parser.add_argument("--batch", type=int, help="calls per operation and variant per round")
    parser.add_argument("--sessions", type=int, help="sessions to seed (default 10000)")
    parser.add_argument(
        "--only", help="comma-separated facade keys (or parts of them) to measure, e.g. get_session"
    )
    parser.add_argument("--no-bulk", action="store_true", help="skip the bulk insert")
    parser.add_argument(
        "--round-trips",
        action="store_true",
        help="instead of timing, count each call's round trips to the server (libpq's trace)",
    )
    parser.add_argument(
        "--profile",
        metavar="VARIANT:KEY",
        help="instead of the table, profile one operation with pyinstrument "
        "(e.g. orm:user_sessions.get_session)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; 0 unless it crashed."""
    args = _parser().parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.rounds:
        settings = Settings(**{**_fields(settings), "rounds": args.rounds})
    if args.batch:
        settings = Settings(**{**_fields(settings), "batch": args.batch})
    sessions = args.sessions or (1_000 if args.quick else 10_000)
    operations = OPERATIONS
    if args.only:
        wanted = [part.strip() for part in args.only.split(",") if part.strip()]
        operations = tuple(op for op in OPERATIONS if any(w in op.name for w in wanted))
    server, how = server_url()
    print(f"server: {describe_url(server)} (from {how})", flush=True)
    with scratch_database(server) as url:
        print(
            f"database: {describe_url(sa.make_url(url))}; seeding {sessions} sessions", flush=True
        )
        seeded = seed(sessions)
        if args.profile:
            return _profile(args.profile, seeded, 300 if args.quick else 3000)
        if args.round_trips:
            print(round_trips_table(count_round_trips(operations, seeded)))
            return 0
        with get_engine().connect() as connection:
            server_version = connection.exec_driver_sql("SHOW server_version").scalar()
        # Counted first, on the same database: a handful of calls per operation.
        trips = count_round_trips(operations, seeded)
        samples, bulk, counts = run_suite(
            operations,
            seeded,
            settings,
            progress=lambda text: print(text, file=sys.stderr, flush=True),
            include_bulk=not args.no_bulk,
        )
    targets = evaluate(samples, operations, bulk)
    context = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "postgresql": server_version,
        "server": describe_url(server),
        "settings": _fields(settings),
        "sessions_seeded": sessions,
    }
    print()
    print(
        f"{context['date']}; {context['machine']}; Python {context['python']}; "
        f"PostgreSQL {server_version} at {context['server']}; "
        f"{settings.rounds} rounds x {settings.batch} calls"
    )
    print()
    if args.quick:
        print("(a smoke run: too few calls for the figures or the verdicts to mean anything)\n")
    print(markdown(samples, operations, bulk, targets, trips))
    # A fault (a side lost its connection) or a dropped observation compared nothing.
    mismatches = {
        key: n for key, n in counts.items() if key[1] not in ("match", "fault", "dropped")
    }
    if mismatches:
        print(f"\ncomparisons that did not match: {mismatches}")
    uncompared = {key: n for key, n in counts.items() if key[1] in ("fault", "dropped")}
    if uncompared:
        print(f"\nobservations not compared (faults) or not stored (dropped): {uncompared}")
    if args.json:
        data = results_json(samples, operations, bulk, targets, context, counts, trips)
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def _profile(spec: str, seeded: Seeded, calls: int) -> int:
    variant, _, key = spec.partition(":")
    found = [op for op in OPERATIONS if op.name == key or op.name.endswith(f".{key}")]
    if len(found) != 1:
        print(f"--profile {spec!r}: name one of {', '.join(op.name for op in OPERATIONS)}")
        return 2
    print(profile(found[0], variant, seeded, calls))
    return 0


def _fields(settings: Settings) -> dict[str, int]:
    return {
        "rounds": settings.rounds,
        "batch": settings.batch,
        "dispatch_calls": settings.dispatch_calls,
        "bulk_rows": settings.bulk_rows,
        "bulk_rounds": settings.bulk_rounds,
    }


if __name__ == "__main__":
    raise SystemExit(main())
