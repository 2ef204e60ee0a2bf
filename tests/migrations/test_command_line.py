"""Migrations tests: the `alembic` command line, configured by pyproject.toml, as in the README."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2.extensions
import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[2]


def _alembic(*args: str, database: str) -> subprocess.CompletedProcess[str]:
    """Run `alembic ARGS` from the repository root with DATABASE_URL naming ``database``."""
    # The URL an operator would export: libpq's form, no SQLAlchemy driver.
    url = sa.make_url(database).set(drivername="postgresql").render_as_string(hide_password=False)
    env = {name: value for name, value in os.environ.items() if name != "ALEMBIC_CONFIG"}
    env["DATABASE_URL"] = url
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"`alembic {' '.join(args)}` exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


class TestAlembicCommandLine:
    def test_upgrade_head_then_check_finds_nothing(self, empty_database: str) -> None:
        """The README's commands must work as written: upgrade a new database, then check it."""
        upgrade = _alembic("upgrade", "head", database=empty_database)
        check = _alembic("check", database=empty_database)

        assert "Running upgrade  -> 0001_baseline" in upgrade.stderr
        assert "No new upgrade operations detected" in check.stdout

    def test_stamp_baseline_then_upgrade_head_adopts_a_hand_made_database(
        self, fresh_database: str, observer: psycopg2.extensions.connection
    ) -> None:
        """Production was made by hand-run SQL: the README's adoption must keep its rows."""
        session = str(uuid.uuid4())
        with observer.cursor() as cur:
            cur.execute(
                "INSERT INTO user_sessions (uuid, name) VALUES (%s, 'adopted by the CLI')",
                (session,),
            )

        _alembic("stamp", "0001_baseline", database=fresh_database)
        _alembic("upgrade", "head", database=fresh_database)

        with observer.cursor() as cur:
            cur.execute("SELECT name FROM user_sessions WHERE uuid = %s", (session,))
            assert cur.fetchall() == [("adopted by the CLI",)]
