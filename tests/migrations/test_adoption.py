"""Migrations tests: a database made by the hand-run SQL is adopted by stamping the baseline."""

from __future__ import annotations

import uuid

import psycopg2.extensions
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

import migrations
from tests.fixtures.postgres import make_engine
from tests.migrations.catalog import snapshot


def _versions(observer: psycopg2.extensions.connection) -> list[str] | None:
    """The revisions alembic_version records, or None when the table does not exist."""
    with observer.cursor() as cur:
        cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
        row = cur.fetchone()
        assert row is not None
        if not row[0]:
            return None
        cur.execute("SELECT version_num FROM alembic_version ORDER BY version_num")
        return [version for (version,) in cur.fetchall()]


def _insert_session_with_file(observer: psycopg2.extensions.connection) -> str:
    """Commit a session with one uploaded file, as production data; return the session's uuid."""
    session = str(uuid.uuid4())
    with observer.cursor() as cur:
        cur.execute(
            "INSERT INTO user_sessions (uuid, name, email) VALUES (%s, 'Zoë', 'zoe@example.com')",
            (session,),
        )
        cur.execute(
            "INSERT INTO uploaded_files (session_uuid, filename, storage_key, size_bytes, sha256)"
            " VALUES (%s, 'notes.txt', %s, 12, repeat('a', 64))",
            (session, f"uploads/{session}/notes.txt"),
        )
    return session


def _rows_of(observer: psycopg2.extensions.connection, session: str) -> list[tuple[object, ...]]:
    with observer.cursor() as cur:
        cur.execute(
            "SELECT s.name, s.email, f.filename, f.size_bytes"
            " FROM user_sessions s JOIN uploaded_files f ON f.session_uuid = s.uuid"
            " WHERE s.uuid = %s",
            (session,),
        )
        return cur.fetchall()


class TestAdoptingAHandMadeDatabase:
    def test_stamp_then_upgrade_head_keeps_existing_rows(
        self, fresh_database: str, observer: psycopg2.extensions.connection
    ) -> None:
        """Adoption is the README's two commands; the data production already has must survive."""
        session = _insert_session_with_file(observer)
        config = migrations.alembic_config(fresh_database)

        command.stamp(config, "0001_baseline")
        command.upgrade(config, "head")

        assert _rows_of(observer, session) == [("Zoë", "zoe@example.com", "notes.txt", 12)]
        assert _versions(observer) == [ScriptDirectory.from_config(config).get_current_head()]

    def test_stamp_records_the_baseline_and_changes_no_schema(
        self, fresh_database: str, observer: psycopg2.extensions.connection
    ) -> None:
        """Stamping must only write alembic_version: it runs against production, unreviewed."""
        engine = make_engine(fresh_database, poolclass=sa.NullPool)
        try:
            with engine.connect() as connection:
                before = snapshot(connection)
            command.stamp(migrations.alembic_config(fresh_database), "0001_baseline")
            with engine.connect() as connection:
                after = snapshot(connection)
        finally:
            engine.dispose()

        assert before.diff(after, expected_name="hand-made", actual_name="stamped") == ""
        assert _versions(observer) == ["0001_baseline"]

    def test_upgrade_without_stamp_fails_and_leaves_the_database_as_it_was(
        self, fresh_database: str, observer: psycopg2.extensions.connection
    ) -> None:
        """Forgetting the stamp must fail loudly, in one rolled-back transaction, losing nothing."""
        session = _insert_session_with_file(observer)

        with pytest.raises(
            sa.exc.ProgrammingError, match='relation "user_sessions" already exists'
        ):
            command.upgrade(migrations.alembic_config(fresh_database), "head")

        assert _rows_of(observer, session) == [("Zoë", "zoe@example.com", "notes.txt", 12)]
        assert _versions(observer) is None
