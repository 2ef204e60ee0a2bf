"""Migrations tests: a downgrade that drops data refuses before any DDL unless confirmed."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import Script, ScriptDirectory

import migrations
from migrations.guard import DATA_LOSS_ATTRIBUTE, DataLossRefused
from tests.fixtures.postgres import make_engine
from tests.migrations.catalog import SchemaSnapshot, snapshot

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ScriptDirectory.from_config(migrations.alembic_config())
HEAD = SCRIPTS.get_current_head()
TABLES = (
    "user_sessions",
    "uploaded_files",
    "compat_flags",
    "compat_flag_audit",
    "compat_observations",
    "compat_observation_rollups",
    "compat_served_rollups",
)


@pytest.fixture
def watcher(migrated_database: str) -> Iterator[psycopg2.extensions.connection]:
    """An autocommit connection on the migrated database: it sees only committed state."""
    url = sa.make_url(migrated_database).set(drivername="postgresql")
    conn = psycopg2.connect(url.render_as_string(hide_password=False))
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def _seed_every_table(watcher: psycopg2.extensions.connection) -> None:
    """Commit one row in each table a downgrade would drop."""
    session = str(uuid.uuid4())
    with watcher.cursor() as cur:
        cur.execute(
            "INSERT INTO user_sessions (uuid, name, email) VALUES (%s, 'Ada', 'ada@example.com')",
            (session,),
        )
        cur.execute(
            "INSERT INTO uploaded_files (session_uuid, filename, storage_key, size_bytes, sha256)"
            " VALUES (%s, 'a.txt', %s, 1, repeat('b', 64))",
            (session, f"uploads/{session}/a.txt"),
        )
        cur.execute(
            "INSERT INTO compat_flags (key, mode, updated_by) VALUES ('k', 'shadow', 'test')"
        )
        cur.execute(
            "INSERT INTO compat_flag_audit (id, key, new_mode, new_sample_rate, changed_by, reason)"
            " VALUES (1, 'k', 'shadow', 1, 'test', 'evidence')"
        )
        cur.execute(
            # A mismatch: kept as a row, and counted into compat_observation_rollups.
            "INSERT INTO compat_observations (id, key, mode, serving, matched)"
            " VALUES (1, 'k', 'shadow', 'legacy', false)"
        )
        cur.execute(
            "INSERT INTO compat_served_rollups (key, mode, side, minute, calls, errors, faults)"
            " VALUES ('k', 'orm', 'orm', date_trunc('minute', now()), 3, 1, 0)"
        )


def _state(
    watcher: psycopg2.extensions.connection, url: str
) -> tuple[SchemaSnapshot, dict[str, int], list[str]]:
    """The schema, each table's row count and the recorded revisions, as committed."""
    engine = make_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            schema = snapshot(connection)
    finally:
        engine.dispose()
    counts = {}
    with watcher.cursor() as cur:
        for table in TABLES:
            cur.execute(f"SELECT count(*) FROM {table}")
            row = cur.fetchone()
            assert row is not None
            counts[table] = row[0]
        cur.execute("SELECT version_num FROM alembic_version")
        versions = [version for (version,) in cur.fetchall()]
    return schema, counts, versions


def _alembic(*args: str, database: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """`alembic ARGS` from the repository root, as an operator runs it; never asserts.

    Alembic prints `FAILED: ...` on stdout and its log on stderr: the result's
    stdout holds both, in order.
    """
    url = sa.make_url(database).set(drivername="postgresql").render_as_string(hide_password=False)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("ALEMBIC_CONFIG", "COMPAT_ALLOW_DATA_LOSS")
    }
    env.update(DATABASE_URL=url, **extra_env)
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(autouse=True)
def _no_confirmation_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's exported COMPAT_ALLOW_DATA_LOSS must not turn these refusals into passes."""
    monkeypatch.delenv("COMPAT_ALLOW_DATA_LOSS", raising=False)


class TestUnconfirmedDowngrade:
    @pytest.mark.parametrize("destination", ["base", "0001_baseline"])
    def test_refuses_and_leaves_every_table_and_row_in_place(
        self, migrated_database: str, watcher: psycopg2.extensions.connection, destination: str
    ) -> None:
        """The refusal comes before the first DDL: nothing half-dropped, no row lost."""
        _seed_every_table(watcher)
        before = _state(watcher, migrated_database)

        with pytest.raises(DataLossRefused):
            command.downgrade(migrations.alembic_config(migrated_database), destination)

        after = _state(watcher, migrated_database)
        assert before[0].diff(after[0], expected_name="before", actual_name="after") == ""
        assert after[1:] == before[1:] == (dict.fromkeys(TABLES, 1), [HEAD])

    def test_refusal_names_what_would_be_lost_and_how_to_confirm(
        self, migrated_database: str
    ) -> None:
        """An operator reads one error: it must say which revisions lose what, and what to run."""
        with pytest.raises(DataLossRefused) as refused:
            command.downgrade(migrations.alembic_config(migrated_database), "base")

        message = str(refused.value)
        assert "0001_baseline drops user_sessions and uploaded_files" in message
        assert "0002_compat_tables drops compat_flags" in message
        how = message.splitlines()[-1]
        assert how == (
            "To confirm, run `alembic -x allow-data-loss=yes downgrade base` "
            "or set COMPAT_ALLOW_DATA_LOSS=1."
        )

    def test_command_line_prints_one_failed_message_and_no_traceback(
        self, migrated_database: str
    ) -> None:
        """Alembic prints a CommandError as `FAILED: ...`; anything else would be a traceback."""
        result = _alembic("downgrade", "base", database=migrated_database)

        assert result.returncode != 0
        assert "FAILED: Refusing to downgrade to base, which would lose data" in result.stdout
        assert "alembic -x allow-data-loss=yes downgrade base" in result.stdout
        assert "Traceback" not in result.stdout

    def test_x_allow_data_loss_no_wins_over_the_environment(self, migrated_database: str) -> None:
        """An explicit no on the command line is the operator's last word."""
        result = _alembic(
            "-x",
            "allow-data-loss=no",
            "downgrade",
            "base",
            database=migrated_database,
            COMPAT_ALLOW_DATA_LOSS="1",
        )

        assert result.returncode != 0
        assert "FAILED: Refusing to downgrade" in result.stdout

    def test_an_x_argument_neither_yes_nor_no_is_refused_by_name(
        self, migrated_database: str
    ) -> None:
        """`-x allow-data-loss=true` is a typo to report, not a yes."""
        result = _alembic(
            "-x", "allow-data-loss=true", "downgrade", "base", database=migrated_database
        )

        assert result.returncode != 0
        assert "FAILED: -x allow-data-loss='true': say yes or no" in result.stdout
        assert "Traceback" not in result.stdout

    def test_an_environment_value_neither_on_nor_off_confirms_nothing(
        self, migrated_database: str
    ) -> None:
        """A garbled COMPAT_ALLOW_DATA_LOSS is logged and counts as off: the downgrade refuses."""
        result = _alembic(
            "downgrade", "base", database=migrated_database, COMPAT_ALLOW_DATA_LOSS="maybe"
        )

        assert result.returncode != 0
        assert "COMPAT_ALLOW_DATA_LOSS='maybe' is not allowed" in result.stdout
        assert "FAILED: Refusing to downgrade to base" in result.stdout


class TestConfirmedDowngrade:
    def test_x_allow_data_loss_yes_downgrades_to_base(
        self, migrated_database: str, watcher: psycopg2.extensions.connection
    ) -> None:
        """The command line's confirmation, exactly as the refusal spells it."""
        _seed_every_table(watcher)

        result = _alembic(
            "-x", "allow-data-loss=yes", "downgrade", "base", database=migrated_database
        )

        assert result.returncode == 0, result.stdout
        assert _tables(watcher) == ["alembic_version"]  # Alembic keeps it, empty

    def test_environment_variable_downgrades_to_base(
        self, migrated_database: str, watcher: psycopg2.extensions.connection
    ) -> None:
        """COMPAT_ALLOW_DATA_LOSS=1, for a deploy tool that cannot pass -x."""
        result = _alembic(
            "downgrade", "base", database=migrated_database, COMPAT_ALLOW_DATA_LOSS="1"
        )

        assert result.returncode == 0, result.stdout
        assert _tables(watcher) == ["alembic_version"]  # Alembic keeps it, empty

    def test_alembic_config_allow_data_loss_downgrades_one_revision(
        self, migrated_database: str, watcher: psycopg2.extensions.connection
    ) -> None:
        """Python callers confirm through alembic_config; the revisions below stay untouched."""
        _seed_every_table(watcher)

        command.downgrade(
            migrations.alembic_config(migrated_database, allow_data_loss=True), "0001_baseline"
        )

        assert _tables(watcher) == ["alembic_version", "uploaded_files", "user_sessions"]
        with watcher.cursor() as cur:
            cur.execute("SELECT count(*) FROM user_sessions")
            assert cur.fetchone() == (1,)


class TestDeclarations:
    @pytest.mark.parametrize("script", list(SCRIPTS.walk_revisions()), ids=lambda s: s.revision)
    def test_every_downgrade_that_drops_a_table_or_column_declares_its_data_loss(
        self, script: Script
    ) -> None:
        """The guard knows only what revisions declare: an undeclared drop would pass unasked."""
        module = script.module
        source = inspect.getsource(module.downgrade)
        drops = re.search(r"drop_table|drop_column|DROP\s+(TABLE|COLUMN|SCHEMA)", source, re.I)

        if drops:
            assert getattr(module, DATA_LOSS_ATTRIBUTE, None), (
                f"{script.revision}'s downgrade has {drops.group(0)} but no "
                f"{DATA_LOSS_ATTRIBUTE} saying what it loses"
            )


def _tables(watcher: psycopg2.extensions.connection) -> list[str]:
    with watcher.cursor() as cur:
        cur.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        return [name for (name,) in cur.fetchall()]
