"""The strangler's command line: `compat` (also `python -m compat`)."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, NoReturn, TextIO, TypeVar

import psycopg2
import psycopg2.errors
import sqlalchemy as sa

import compat  # noqa: F401  (declares every facade function)
import layer_settings
from compat.cli.cache import cache_history, cache_list, cache_off, cache_set
from compat.cli.dashboard import serve_dashboard
from compat.cli.flags import (
    flags_history,
    flags_list,
    flags_plan,
    flags_set,
    guard,
    kill_switch,
)
from compat.cli.metrics import serve_metrics
from compat.cli.mismatches import mismatches
from compat.cli.observations import observations_prune
from compat.cli.output import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    where,
)
from compat.cli.status import status
from compat.cli.verify import verify
from compat.errors import CompatError
from compat.flags.modes import MODES
from compat.flags.store import MAX_REASON_LENGTH
from compat.rollout import gates
from compat.rollout import guard as guarding
from compat.runtime import build_runtime, use_runtime
from compat.shadow import stored
from compat.verify import runner as verification
from layer_settings import SettingsError
from orm.database import create_engine, database_url

T = TypeVar("T")

__all__ = ["LOCK_TIMEOUT_MS", "STATEMENT_TIMEOUT_MS", "build_parser", "main"]

LOCK_TIMEOUT_MS: Final = 5_000
"""The longest a `compat flags` or `compat status` statement waits for another session's lock."""
STATEMENT_TIMEOUT_MS: Final = 30_000
"""The longest any of their statements runs."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a fraction from 0 to 1, not {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise argparse.ArgumentTypeError(f"must be a fraction from 0 to 1, not {text!r}")
    return value


def _per_key(parse: Callable[[str], T]) -> Callable[[str], tuple[str | None, T]]:
    """``VALUE`` (for every function) or ``KEY=VALUE`` (for one), each value read by ``parse``."""

    def read(text: str) -> tuple[str | None, T]:
        key, equals, value = text.rpartition("=")
        return (key if equals else None), parse(value)

    return read


def _gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--min-calls",
        type=_positive,
        default=gates.DEFAULT_MIN_CALLS,
        metavar="N",
        help=f"compared calls the stage before must have seen (default {gates.DEFAULT_MIN_CALLS})",
    )
    parser.add_argument(
        "--window",
        type=_minutes,
        default=gates.DEFAULT_WINDOW_MINUTES,
        metavar="MINUTES",
        help=f"how far back to look for them (default {gates.DEFAULT_WINDOW_MINUTES:g} minutes)",
    )


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of minutes, not {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of minutes above 0, not {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit 2), never the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `compat` command."""
    parser = _Parser(
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
    listing.set_defaults(run=flags_list, bounded=True)
    setting = flag_commands.add_parser(
        "set",
        help="set the mode of a key or of every key a glob matches (gated, audited)",
        description=(
            "Set the mode of KEY (or of every key the glob KEY matches, in one transaction, "
            "each audited). A step forward passes its gate first: to live needs evidence "
            "from shadow, to orm evidence from live (at least --min-calls compared calls in "
            "the last --window minutes, no mismatch, no candidate error) and compat verify "
            "ready on the function. A step back, or into shadow, is always allowed. "
            "Exit status: 0 set, 1 refused by a gate (nothing written) or a database error, "
            "2 usage."
        ),
    )
    setting.add_argument(
        "key", help="a facade key (user_sessions.get_session) or a glob ('uploads.*')"
    )
    setting.add_argument("mode", help=f"one of: {', '.join(MODES)}")
    setting.add_argument(
        "--reason",
        required=True,
        help=f"why (required; goes to the audit; at most {MAX_REASON_LENGTH} characters)",
    )
    setting.add_argument("--by", help="who (default: the OS user)")
    setting.add_argument("--sample", type=float, help="comparison sample rate, 0..1")
    setting.add_argument(
        "--percent",
        type=float,
        default=100.0,
        metavar="P",
        help=(
            "ramp: MODE serves P%% of calls (sticky by session uuid where the function takes "
            "one, else random per call), the stage before serves the rest (default 100)"
        ),
    )
    setting.add_argument(
        "--force",
        action="store_true",
        help="step forward without the evidence; the audit records it was forced, and why not",
    )
    _gate_options(setting)
    setting.set_defaults(run=flags_set, bounded=True)
    plan = flag_commands.add_parser(
        "plan", help="per key: its stage, the evidence so far, the next step and its gate"
    )
    _gate_options(plan)
    plan.set_defaults(run=flags_plan, bounded=True)
    history = flag_commands.add_parser("history", help="the audited changes, newest first")
    history.add_argument("key", nargs="?", help="only this key")
    history.add_argument("--limit", type=_positive, default=50)
    history.set_defaults(run=flags_history, bounded=True)

    switch = commands.add_parser(
        "kill-switch",
        help="send every function back to legacy, in every process (audited)",
        description=(
            "Turn the shared kill switch on or off: stored in the compat_flags table, so "
            "every process applies it at once (pushed; the TTL poll is the fallback), "
            "with no restart. The COMPAT_KILL_SWITCH variable does the same for one process."
        ),
    )
    switch.add_argument("state", choices=("on", "off"))
    switch.add_argument("--reason", required=True, help="why (required; goes to the audit)")
    switch.add_argument("--by", help="who (default: the OS user)")
    switch.set_defaults(run=kill_switch, bounded=True)

    watching = commands.add_parser(
        "guard",
        help="step functions the ORM serves back by themselves when it goes wrong (a sidecar)",
        description=(
            "Watch every function in live and in orm (whole or ramped). In live, once its "
            "mismatches since it went live reach --threshold, step it back to shadow (legacy "
            "serves again). In orm, where nothing is compared, once the ORM's error rate since "
            "it went to orm (the last --window minutes, at least --min-orm-calls calls) is "
            "above max(2 x baseline, baseline + --error-margin), the baseline being legacy's "
            "error rate when it served the function (the last --baseline-days), step it back "
            "to live. Each step back is audited as done by the guard with its evidence, and "
            "every process applies it at once. Run it beside the application (one is "
            "enough), or with --once from cron. --threshold, --min-orm-calls and "
            "--error-margin take VALUE for every function or KEY=VALUE for one (repeatable)."
        ),
    )
    watching.add_argument("--once", action="store_true", help="look once and exit")
    watching.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="between looks (2)"
    )
    watching.add_argument(
        "--for",
        dest="for_seconds",
        type=float,
        default=float("inf"),
        metavar="SECONDS",
        help="stop after this long (default: run until interrupted)",
    )
    watching.add_argument(
        "--threshold",
        type=_per_key(_positive),
        action="append",
        default=[],
        metavar="[KEY=]N",
        help=(
            f"mismatches in live that trip it (default {guarding.DEFAULT_THRESHOLD}: any; a "
            "candidate that failed alone is one)"
        ),
    )
    watching.add_argument(
        "--min-orm-calls",
        type=_per_key(_positive),
        action="append",
        default=[],
        metavar="[KEY=]N",
        help=(
            f"ORM calls in orm before its error rate is judged "
            f"(default {guarding.DEFAULT_MIN_ORM_CALLS})"
        ),
    )
    watching.add_argument(
        "--error-margin",
        type=_per_key(_fraction),
        action="append",
        default=[],
        metavar="[KEY=]F",
        help=(
            "how far the ORM's error rate may exceed legacy's, as a fraction "
            f"(default {guarding.DEFAULT_ERROR_MARGIN:g}: one percentage point)"
        ),
    )
    watching.add_argument(
        "--window",
        type=_minutes,
        default=guarding.DEFAULT_WINDOW_MINUTES,
        metavar="MINUTES",
        help=f"the orm rule's recent minutes (default {guarding.DEFAULT_WINDOW_MINUTES:g})",
    )
    watching.add_argument(
        "--baseline-days",
        type=_minutes,
        default=guarding.DEFAULT_BASELINE_DAYS,
        metavar="DAYS",
        help=f"legacy's error rate over these days (default {guarding.DEFAULT_BASELINE_DAYS:g})",
    )
    watching.set_defaults(run=guard)

    caching = commands.add_parser(
        "cache",
        help="list, set and audit the per-function read cache",
        description=(
            "Cache the results of one read function for up to --ttl seconds, in every process "
            "(off by default; docs/caching.md). Every change is one transaction with an audit "
            "row, pushed to every process. Exit status: 0 done, 1 a database error, 2 a "
            "refused change (an unknown key, a write, a TTL out of range, no reason)."
        ),
    )
    cache_commands = caching.add_subparsers(
        dest="cache_command", metavar="SUBCOMMAND", required=True
    )
    cache_listing = cache_commands.add_parser(
        "list", help="every read function that can be cached, and its TTL"
    )
    cache_listing.set_defaults(run=cache_list, bounded=True)
    cache_setting = cache_commands.add_parser("set", help="cache a read function (audited)")
    cache_setting.add_argument("key", help="a read function, e.g. user_sessions.get_session")
    cache_setting.add_argument(
        "--ttl",
        type=float,
        required=True,
        metavar="SECONDS",
        help="how long a result may be served (more than 0, at most 86400)",
    )
    cache_setting.add_argument(
        "--reason",
        required=True,
        help=f"why (required; goes to the audit; at most {MAX_REASON_LENGTH} characters)",
    )
    cache_setting.add_argument("--by", help="who (default: the OS user)")
    cache_setting.set_defaults(run=cache_set, bounded=True)
    cache_stopping = cache_commands.add_parser("off", help="stop caching a function (audited)")
    cache_stopping.add_argument("key", help="a read function")
    cache_stopping.add_argument("--reason", required=True, help="why (required; goes to the audit)")
    cache_stopping.add_argument("--by", help="who (default: the OS user)")
    cache_stopping.set_defaults(run=cache_off, bounded=True)
    cache_changes = cache_commands.add_parser("history", help="the audited changes, newest first")
    cache_changes.add_argument("key", nargs="?", help="only this key")
    cache_changes.add_argument("--limit", type=_positive, default=50)
    cache_changes.set_defaults(run=cache_history, bounded=True)

    state = commands.add_parser("status", help="modes and recent mismatches per function")
    state.add_argument("--window", type=_minutes, default=60.0, help="minutes to look back (60)")
    state.add_argument("--json", action="store_true", help="print one JSON document")
    state.set_defaults(run=status, bounded=True)

    grouped = commands.add_parser(
        "mismatches",
        help="the stored mismatches grouped by fingerprint, with the latest redacted diff",
        description=(
            "Group the stored mismatches (of KEY, or of every function) by fingerprint: the "
            "function, the fields that differ and the kinds of their values. One line per "
            "group: its count, the latest one's time and its redacted diff. Largest first."
        ),
    )
    grouped.add_argument("key", nargs="?", help="only this facade key")
    grouped.add_argument("--json", action="store_true", help="print one JSON document")
    grouped.set_defaults(run=mismatches)

    kept = commands.add_parser("observations", help="maintain the stored observations")
    kept_commands = kept.add_subparsers(dest="observations_command", metavar="SUBCOMMAND")
    kept_commands.required = True
    pruning = kept_commands.add_parser(
        "prune",
        help="apply the retention: a bound of rows per key, and an age",
        description=(
            "Delete the observation rows (mismatches and candidate errors) beyond the newest "
            "--keep per key or older than --days, and the per-minute counts older than --days. "
            "Every row removed was already counted: compat status and the gates see the same "
            "numbers before and after. Run it from cron (every few minutes is cheap)."
        ),
    )
    pruning.add_argument(
        "--keep",
        type=_positive,
        default=stored.DEFAULT_KEEP,
        metavar="N",
        help=f"rows kept per key, newest first (default {stored.DEFAULT_KEEP})",
    )
    pruning.add_argument(
        "--days",
        type=float,
        default=stored.DEFAULT_ROLLUP_DAYS,
        metavar="DAYS",
        help=f"how long anything is kept (default {stored.DEFAULT_ROLLUP_DAYS:g})",
    )
    pruning.set_defaults(run=observations_prune)

    serving = commands.add_parser(
        "metrics",
        help="serve the layer's Prometheus metrics on http://127.0.0.1:PORT/metrics",
        description=(
            "Serve the layer's Prometheus metrics over HTTP (docs/observability.md lists them). "
            "With PROMETHEUS_MULTIPROC_DIR set, every process's files are added up."
        ),
    )
    serving.add_argument("--port", type=int, required=True, help="the port to listen on")
    serving.add_argument(
        "--host", default="127.0.0.1", help="the address to bind (default 127.0.0.1)"
    )
    serving.set_defaults(run=serve_metrics)

    page = commands.add_parser(
        "dashboard",
        help="serve a read-only HTML page of every function on http://127.0.0.1:PORT/",
        description=(
            "Serve one read-only page: per function its stage, compared calls, mismatches, "
            "candidate errors, each side's p50/p95, the next step from the gates, the latest "
            "mismatches (redacted) and the flag history. Binds 127.0.0.1; the page has no "
            "login, so another address needs --behind-authenticating-proxy."
        ),
    )
    page.add_argument("--port", type=int, default=8471, help="the port (default 8471)")
    page.add_argument("--host", default="127.0.0.1", help="the address to bind (default 127.0.0.1)")
    page.add_argument(
        "--behind-authenticating-proxy",
        action="store_true",
        help="allow an address other than loopback: only behind a proxy that authenticates",
    )
    page.set_defaults(run=serve_dashboard)

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
    """Run the `compat` command line; return its exit status.

    0 done, 1 the database or the work failed, 2 a usage or configuration
    error, 130 interrupted (Ctrl-C), 141 the reader of stdout went away
    (``| head``). Every failure is one line on stderr, never a traceback.
    """
    out = out or sys.stdout
    try:
        code = _main(argv, out)
        out.flush()
        return code
    except KeyboardInterrupt:
        sys.stderr.write("compat: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _stdout_gone(out)
        return EXIT_BROKEN_PIPE


def _stdout_gone(out: TextIO) -> None:
    # Python flushes stdout again at exit: point it at /dev/null so that the
    # flush cannot fail (and print "Exception ignored ... BrokenPipeError").
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())


def _main(argv: Sequence[str] | None, out: TextIO) -> int:
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
        with _bounded() if getattr(args, "bounded", False) else contextlib.nullcontext():
            return run(args, out)
    except BrokenPipeError:  # an OSError, but not the database's: main() handles it
        raise
    except (CompatError, SettingsError) as error:
        _fail(str(error))
        return EXIT_USAGE
    except (sa.exc.SQLAlchemyError, psycopg2.Error, OSError) as error:
        _fail(_database_failure(error))
        return EXIT_FAILED
    except Exception as error:  # never a traceback: one line, and what it was
        _fail(f"unexpected {type(error).__name__}: {_first_line(error)}")
        return EXIT_FAILED


@contextlib.contextmanager
def _bounded() -> Iterator[None]:
    """A runtime whose every transaction waits at most LOCK_TIMEOUT_MS for a lock."""
    settings = layer_settings.current()
    engine = create_engine(
        database_url(settings.database), connect_timeout_s=settings.connect_timeout_s
    )
    sa.event.listen(engine, "begin", _bound_transaction)
    with use_runtime(build_runtime(settings, engine=engine)):
        yield


_BOUNDS: Final = (
    f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}; "
    f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"
)


def _bound_transaction(connection: sa.Connection) -> None:
    # SET LOCAL in each transaction, not the startup parameter options: a
    # pooler (PgBouncer) refuses that, and a session-level SET would stay on
    # the pooled server connection for its next client (docs/pooler.md).
    raw: Any = connection.connection.dbapi_connection
    if raw is not None and not raw.autocommit:
        with raw.cursor() as cursor:
            cursor.execute(_BOUNDS)


def _fail(message: str) -> None:
    sys.stderr.write(f"compat: {message}\n")


def _first_line(error: BaseException) -> str:
    return next(iter(str(error).splitlines()), "")


def _database_failure(error: BaseException) -> str:
    """One line: what the database said, and what to do about it when we know."""
    orig = getattr(error, "orig", None) or error
    code = getattr(orig, "pgcode", None)
    said = f"the database at {where()} said: {_first_line(orig)}"
    if isinstance(orig, psycopg2.errors.UndefinedTable | psycopg2.errors.UndefinedColumn):
        return (
            f"{said} (SQLSTATE {code}): the database is not migrated to this version; run "
            f"`DATABASE_URL=... alembic upgrade head` with DATABASE_URL naming this database"
        )
    if isinstance(orig, psycopg2.errors.LockNotAvailable):
        return (
            f"{said} (SQLSTATE {code}): another session holds a lock on the flag or "
            f"observation tables; waited {LOCK_TIMEOUT_MS / 1000:g} s; try again, or find it "
            f"in pg_locks"
        )
    if isinstance(orig, psycopg2.errors.QueryCanceled):
        return (
            f"{said} (SQLSTATE {code}): gave up waiting (a lock another session holds, or a "
            f"slow server); try again, or look in pg_locks and pg_stat_activity"
        )
    return f"{said}{f' (SQLSTATE {code})' if code else ''}"
