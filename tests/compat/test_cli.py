"""The `compat` command line: list, set and audit flags, and the status of each function."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg2.extensions
import pytest
import sqlalchemy as sa

from compat.cli import main
from compat.routing.declaration import REGISTRY
from compat.runtime import reset_runtime
from orm.database import dispose_engine
from tests.fixtures.layer import Layer
from tests.fixtures.postgres import PgServer

KEY = "user_sessions.get_session"
OTHER = "uploads.get_upload"
THIRD = "user_sessions.count_sessions"
PASSWORD = "s3cr3t"
COMPAT_VARIABLES = ("COMPAT_FLAGS", "COMPAT_FLAGS_FILE", "COMPAT_KILL_SWITCH", "COMPAT_FLAGS_TTL")


@dataclass(frozen=True, slots=True)
class Ran:
    """What one command did: its exit status and what it wrote to stdout and stderr."""

    code: int
    out: str
    err: str


@dataclass
class Cli:
    """Runs `compat` in this process as a new process would: fresh runtime, engine from the env."""

    capsys: pytest.CaptureFixture[str]
    caplog: pytest.LogCaptureFixture

    def __call__(self, *argv: str) -> Ran:
        reset_runtime(None)
        dispose_engine()
        out = io.StringIO()
        code = main(list(argv), out=out)
        ran = Ran(code, out.getvalue(), self.capsys.readouterr().err)
        assert PASSWORD not in ran.out + ran.err + self.caplog.text, "the password was shown"
        return ran


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Cli]:
    for name in COMPAT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    previous = reset_runtime(None)
    try:
        yield Cli(capsys, caplog)
    finally:
        reset_runtime(previous)
        dispose_engine()


def with_password(url: str) -> str:
    """``url`` as an operator writes DATABASE_URL, with a password (trust auth ignores it)."""
    return (
        sa.make_url(url)
        .set(drivername="postgresql", password=PASSWORD)
        .render_as_string(hide_password=False)
    )


@pytest.fixture
def database(committed_layer: Layer, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL: a fresh migrated database, named with a password."""
    url = with_password(committed_layer.url)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
def shared_database(migrated_database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL: the migrated database shared by rolled-back tests (read-only commands only)."""
    url = with_password(migrated_database_url)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
def missing_database(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL names a database that does not exist on the server; returns its name."""
    name = f"no_such_database_{uuid.uuid4().hex[:8]}"
    url = sa.URL.create(
        "postgresql",
        username=pg_server.user,
        password=PASSWORD,
        host=pg_server.host,
        port=pg_server.port,
        database=name,
    )
    monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
    return name


def flip(
    observer: psycopg2.extensions.connection, key: str, mode: str, sample_rate: float = 1.0
) -> None:
    """A committed row in compat_flags, as another process's change leaves it."""
    with observer.cursor() as cur:
        cur.execute(
            "INSERT INTO compat_flags (key, mode, sample_rate, updated_by) "
            "VALUES (%s, %s, %s, 'another process')",
            (key, mode, sample_rate),
        )


def observed(
    observer: psycopg2.extensions.connection, key: str, *, minutes_ago: float, matched: bool
) -> datetime:
    """One observation ``minutes_ago`` before now (UTC, as the layer writes); returns its time.

    The table keeps it as a row only when it is a mismatch; a match is counted
    into compat_observation_rollups alone.
    """
    with observer.cursor() as cur:
        cur.execute(
            "SELECT (CURRENT_TIMESTAMP AT TIME ZONE 'UTC') - %s * INTERVAL '1 minute'",
            (minutes_ago,),
        )
        row = cur.fetchone()
        assert row is not None
        at: datetime = row[0]
        cur.execute(
            "INSERT INTO compat_observations (observed_at, key, mode, serving, matched) "
            "VALUES (%s, %s, 'shadow', 'legacy', %s)",
            (at, key, matched),
        )
    return at


def table(text: str) -> list[list[str]]:
    """The rows of the table a command printed (cells are separated by two or more spaces)."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if re.fullmatch(r"[- ]+", line))
    rows = []
    for line in lines[rule + 1 :]:
        if line.startswith(("warning:", "note:")):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def by_key(rows: list[list[str]]) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in rows}


def audit_rows(observer: psycopg2.extensions.connection) -> list[tuple[object, ...]]:
    with observer.cursor() as cur:
        cur.execute(
            "SELECT key, old_mode, new_mode, old_sample_rate, new_sample_rate, changed_by, reason "
            "FROM compat_flag_audit ORDER BY id"
        )
        return cur.fetchall()


class TestFlagsList:
    def test_lists_every_key_with_its_mode_source_and_sample_rate(
        self,
        cli: Cli,
        database: str,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        flip(observer, KEY, "shadow", 0.25)
        monkeypatch.setenv("COMPAT_FLAGS", f"{OTHER}=orm")
        ran = cli("flags", "list")
        assert (ran.code, ran.err) == (0, "")
        rows = by_key(table(ran.out))
        assert sorted(rows) == sorted(REGISTRY)
        assert rows[KEY] == ["shadow", "table", "0.25", "-"]
        assert rows[OTHER] == ["orm", "env", "1", "-"]
        assert rows[THIRD] == ["legacy", "default", "1", "-"]

    def test_reports_a_refused_environment_variable_naming_the_valid_keys(
        self, cli: Cli, shared_database: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("COMPAT_FLAGS", "user_sessions.get_sesion=orm")
        ran = cli("flags", "list")
        assert ran.code == 0
        [warning] = [line for line in ran.out.splitlines() if line.startswith("warning:")]
        assert "unknown flag key 'user_sessions.get_sesion'" in warning
        assert all(key in warning for key in REGISTRY)

    def test_fails_rather_than_pass_off_the_defaults_when_the_flag_table_is_missing(
        self, cli: Cli, database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The shared database of legacy/schema.sql alone (never migrated; only read here).
        monkeypatch.setenv("DATABASE_URL", with_password(database_url))
        ran = cli("flags", "list")
        assert ran.code == 1
        assert ran.out == ""
        assert 'relation "compat_flags" does not exist' in ran.err


class TestFlagsSet:
    def test_sets_the_flag_writes_the_audit_and_says_what_changed(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        reason = f"ticket {uuid.uuid4().hex[:8]}"
        ran = cli(
            "flags", "set", KEY, "shadow", "--reason", reason, "--by", "ada", "--sample", "0.5"
        )
        assert (ran.code, ran.err) == (0, "")
        assert ran.out == f"{KEY}: legacy (default) -> shadow (sample 0.5) by ada: {reason}\n"
        assert audit_rows(observer) == [(KEY, None, "shadow", None, 0.5, "ada", reason)]
        assert by_key(table(cli("flags", "list").out))[KEY] == ["shadow", "table", "0.5", "-"]

    def test_records_the_operating_system_user_when_by_is_not_given(
        self,
        cli: Cli,
        database: str,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        user = f"ops-{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv("LOGNAME", user)  # what getpass.getuser() consults first
        ran = cli("flags", "set", KEY, "live", "--reason", "the ORM serves", "--force")
        assert ran.code == 0
        assert f"by {user}:" in ran.out
        assert [row[5] for row in audit_rows(observer)] == [user]

    def test_notes_when_the_environment_overrides_the_new_mode(
        self, cli: Cli, database: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("COMPAT_FLAGS", f"{KEY}=legacy")
        ran = cli("flags", "set", KEY, "orm", "--reason", "all ORM", "--force")
        assert ran.code == 0
        assert ran.out.splitlines()[-1] == (
            f"note: {KEY} is overridden by env (effective mode legacy)"
        )

    def test_an_unknown_key_is_refused_with_status_2_naming_the_valid_keys(
        self, cli: Cli, missing_database: str
    ) -> None:
        ran = cli("flags", "set", "user_sessions.get_sesion", "orm", "--reason", "typo")
        assert (ran.code, ran.out) == (2, "")
        assert "unknown flag key 'user_sessions.get_sesion'" in ran.err
        assert all(key in ran.err for key in REGISTRY)

    def test_an_unknown_mode_is_refused_with_status_2_naming_the_valid_modes(
        self, cli: Cli, missing_database: str
    ) -> None:
        ran = cli("flags", "set", KEY, "turbo", "--reason", "faster")
        assert (ran.code, ran.out) == (2, "")
        assert "unknown mode 'turbo'; valid modes are legacy, shadow, live, orm" in ran.err

    def test_a_missing_reason_is_a_usage_error(self, cli: Cli, missing_database: str) -> None:
        ran = cli("flags", "set", KEY, "shadow")
        assert (ran.code, ran.out) == (2, "")
        assert "the following arguments are required: --reason" in ran.err

    def test_a_blank_reason_is_refused_with_status_2(self, cli: Cli, missing_database: str) -> None:
        ran = cli("flags", "set", KEY, "shadow", "--reason", "  ")
        assert (ran.code, ran.out) == (2, "")
        assert "a reason is required" in ran.err

    @pytest.mark.parametrize("rate", ["1.5", "-0.1", "nan"])
    def test_a_sample_rate_outside_zero_to_one_is_refused_with_status_2(
        self, cli: Cli, missing_database: str, rate: str
    ) -> None:
        ran = cli("flags", "set", KEY, "shadow", "--reason", "sampling", f"--sample={rate}")
        assert (ran.code, ran.out) == (2, "")
        assert "sample rate must be" in ran.err

    def test_a_sample_rate_that_is_not_a_number_is_a_usage_error(
        self, cli: Cli, missing_database: str
    ) -> None:
        ran = cli("flags", "set", KEY, "shadow", "--reason", "sampling", "--sample", "half")
        assert (ran.code, ran.out) == (2, "")
        assert "--sample" in ran.err


class TestFlagsHistory:
    def test_shows_every_change_newest_first(self, cli: Cli, database: str) -> None:
        assert cli("flags", "set", KEY, "shadow", "--reason", "compare", "--by", "ada").code == 0
        assert cli("flags", "set", OTHER, "shadow", "--reason", "switch", "--by", "grace").code == 0
        assert cli("flags", "set", KEY, "legacy", "--reason", "serve", "--by", "ada").code == 0
        ran = cli("flags", "history")
        assert ran.code == 0
        rows = table(ran.out)
        assert [row[1:] for row in rows] == [
            [KEY, "shadow -> legacy", "1", "ada", "serve"],
            [OTHER, "- -> shadow", "1", "grace", "switch"],
            [KEY, "- -> shadow", "1", "ada", "compare"],
        ]
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row[0]) for row in rows)

    def test_of_one_key_shows_only_its_changes(self, cli: Cli, database: str) -> None:
        assert cli("flags", "set", KEY, "shadow", "--reason", "compare", "--by", "ada").code == 0
        assert cli("flags", "set", OTHER, "shadow", "--reason", "switch", "--by", "ada").code == 0
        rows = table(cli("flags", "history", OTHER).out)
        assert [row[1:] for row in rows] == [[OTHER, "- -> shadow", "1", "ada", "switch"]]

    def test_of_an_unknown_key_is_refused_with_status_2(
        self, cli: Cli, missing_database: str
    ) -> None:
        ran = cli("flags", "history", "uploads.get_uplod")
        assert (ran.code, ran.out) == (2, "")
        assert "valid keys are" in ran.err


class TestStatus:
    def test_counts_observations_and_mismatches_in_the_window_with_the_last_mismatch(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        flip(observer, KEY, "shadow")
        for minutes_ago in (30, 10, 3):
            observed(observer, KEY, minutes_ago=minutes_ago, matched=True)
        observed(observer, KEY, minutes_ago=20, matched=False)
        last = observed(observer, KEY, minutes_ago=5, matched=False)
        observed(observer, KEY, minutes_ago=90, matched=False)  # before the window
        ran = cli("status")
        assert (ran.code, ran.err) == (0, "")
        rows = by_key(table(ran.out))
        assert rows[KEY] == [
            "shadow",
            "5",
            "2",
            "0",
            "0",
            last.isoformat(sep=" ", timespec="seconds"),
        ]
        assert rows[OTHER] == ["legacy", "0", "0", "0", "0", "-"]
        assert sorted(rows) == sorted(REGISTRY)

    def test_a_narrower_window_counts_only_the_recent_observations(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        observed(observer, OTHER, minutes_ago=40, matched=False)
        observed(observer, OTHER, minutes_ago=2, matched=True)
        ran = cli("status", "--window", "15")
        assert ran.code == 0
        assert ran.out.splitlines()[0].endswith("; window: last 15 minutes")
        assert by_key(table(ran.out))[OTHER] == ["legacy", "1", "0", "0", "0", "-"]

    def test_names_the_database_without_its_password(self, cli: Cli, shared_database: str) -> None:
        url = sa.make_url(shared_database)
        ran = cli("status")
        assert ran.out.splitlines()[0] == (
            f"database: postgresql+psycopg2://{url.username}:***@{url.host}:{url.port}/"
            f"{url.database}; window: last 60 minutes"
        )


class TestDatabaseFailures:
    @pytest.mark.parametrize(
        "argv",
        [
            ("flags", "list"),
            ("flags", "set", KEY, "shadow", "--reason", "while down"),
            ("flags", "history"),
            ("status",),
        ],
        ids=lambda argv: " ".join(argv[:2]),
    )
    def test_an_unreachable_database_exits_1_and_names_it_without_the_password(
        self, cli: Cli, missing_database: str, argv: tuple[str, ...]
    ) -> None:
        ran = cli(*argv)
        assert (ran.code, ran.out) == (1, "")
        assert ":***@" in ran.err
        assert f'database "{missing_database}" does not exist' in ran.err

    def test_an_unparseable_database_url_exits_2_with_one_line_and_no_password(
        self, cli: Cli, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", f"postgres ql://postgres:{PASSWORD}@127.0.0.1/x")
        ran = cli("status")
        assert (ran.code, ran.out) == (2, "")
        assert ran.err == (
            "compat: DATABASE_URL has the scheme 'postgres ql'; only postgresql:// "
            "(or postgresql+psycopg2://) is accepted\n"
        )
        assert PASSWORD not in ran.err


class TestUsage:
    def test_without_a_command_prints_the_help(self, cli: Cli) -> None:
        ran = cli()
        assert ran.code == 0
        assert ran.out.startswith("usage: compat")

    @pytest.mark.parametrize("argv", [("flags",), ("flip",), ("flags", "list", "--all")])
    def test_a_malformed_command_is_a_usage_error_of_one_line(
        self, cli: Cli, argv: tuple[str, ...]
    ) -> None:
        ran = cli(*argv)
        assert (ran.code, ran.out) == (2, "")
        [line] = ran.err.splitlines()
        assert line.startswith("compat")
        assert line.endswith("--help)")


class TestTheInstalledCommand:
    def test_compat_flags_list_runs_as_a_console_script_on_database_url(
        self, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        flip(observer, KEY, "live", 0.5)
        script = Path(sys.executable).with_name("compat")
        environ = {k: v for k, v in os.environ.items() if k not in COMPAT_VARIABLES}
        done = subprocess.run(
            [str(script), "flags", "list"],
            env={**environ, "DATABASE_URL": database},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (done.returncode, done.stderr) == (0, "")
        assert by_key(table(done.stdout))[KEY] == ["live", "table", "0.5", "-"]
        assert PASSWORD not in done.stdout + done.stderr
