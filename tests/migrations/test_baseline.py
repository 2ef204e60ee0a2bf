"""Migrations tests: the baseline revision builds exactly the schema legacy/schema.sql builds."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

import migrations
from tests.fixtures.postgres import make_engine
from tests.migrations.catalog import SchemaSnapshot, snapshot


def _snapshot_of(url: str) -> SchemaSnapshot:
    engine = make_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return snapshot(connection)
    finally:
        engine.dispose()


class TestBaselineMatchesSchemaSql:
    def test_baseline_builds_exactly_what_schema_sql_builds(
        self, fresh_database: str, empty_database: str
    ) -> None:
        """Production was built by schema.sql: one built by Alembic must not differ from it."""
        engine = make_engine(empty_database, poolclass=sa.NullPool)
        try:
            # A lent connection inside a transaction: env.py migrates on it and
            # leaves the commit to us (engine.begin commits on leaving).
            with engine.begin() as connection:
                config = migrations.alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "0001_baseline")
        finally:
            engine.dispose()

        diff = _snapshot_of(fresh_database).diff(
            _snapshot_of(empty_database),
            expected_name="legacy/schema.sql",
            actual_name="alembic upgrade 0001_baseline",
        )

        assert not diff, f"The baseline revision differs from legacy/schema.sql:\n{diff}"


class TestCatalogComparison:
    def test_snapshot_sees_every_object_schema_sql_creates(self, connection: sa.Connection) -> None:
        """Snapshots that see nothing compare equal, so a snapshot must see all schema.sql makes."""
        schema = snapshot(connection)

        assert {line.split(":")[0] for line in schema.tables} == {"uploaded_files", "user_sessions"}
        assert len(schema.columns) == 25
        assert {line.split(":")[0] for line in schema.indexes} == {
            "uploaded_files.idx_uploaded_files_session_uuid_uploaded_at",
            "uploaded_files.uploaded_files_pkey",
            "uploaded_files.uploaded_files_storage_key_key",
            "user_sessions.idx_user_sessions_completed_at",
            "user_sessions.idx_user_sessions_consent_user_data",
            "user_sessions.idx_user_sessions_created_at",
            "user_sessions.idx_user_sessions_email",
            "user_sessions.idx_user_sessions_is_email_verified",
            "user_sessions.idx_user_sessions_is_email_verified_completed_at",
            "user_sessions.idx_user_sessions_pending_verification_expiry",
            "user_sessions.idx_user_sessions_updated_at",
            "user_sessions.idx_user_sessions_verification_expires_at",
            "user_sessions.user_sessions_pkey",
        }
        assert {line.split(":")[0] for line in schema.constraints} >= {
            "uploaded_files.uploaded_files_pkey",
            "uploaded_files.uploaded_files_session_uuid_fkey",
            "uploaded_files.uploaded_files_size_bytes_check",
            "uploaded_files.uploaded_files_storage_key_key",
            "user_sessions.user_sessions_pkey",
        }
        assert schema.sequences == (
            "uploaded_files_id_seq: bigint start 1 increment 1 min 1 max 9223372036854775807"
            " cache 1 NO CYCLE OWNED BY uploaded_files.id",
        )

    @pytest.mark.parametrize(
        ("drift", "reported"),
        [
            pytest.param(
                "ALTER TABLE user_sessions ALTER COLUMN max_resend_attempts SET DEFAULT 5",
                "+user_sessions.max_resend_attempts: integer NOT NULL DEFAULT 5",
                id="changed-default",
            ),
            pytest.param(
                "ALTER TABLE user_sessions ALTER COLUMN name DROP NOT NULL",
                "+user_sessions.name: text NULL",
                id="dropped-not-null",
            ),
            pytest.param(
                "ALTER TABLE user_sessions ALTER COLUMN verification_code TYPE VARCHAR(8)",
                "+user_sessions.verification_code: character varying(8) NULL",
                id="longer-varchar",
            ),
            pytest.param(
                "ALTER TABLE uploaded_files ALTER COLUMN uploaded_at TYPE TIMESTAMPTZ",
                "+uploaded_files.uploaded_at: timestamp with time zone NOT NULL"
                " DEFAULT CURRENT_TIMESTAMP",
                id="aware-timestamp",
            ),
            pytest.param(
                "DROP INDEX idx_user_sessions_pending_verification_expiry;"
                " CREATE INDEX idx_user_sessions_pending_verification_expiry"
                " ON user_sessions (verification_expires_at)",
                "+user_sessions.idx_user_sessions_pending_verification_expiry:"
                " CREATE INDEX idx_user_sessions_pending_verification_expiry"
                " ON public.user_sessions USING btree (verification_expires_at)",
                id="index-lost-its-predicate",
            ),
            pytest.param(
                "ALTER TABLE uploaded_files RENAME CONSTRAINT uploaded_files_size_bytes_check"
                " TO size_bytes_not_negative",
                "+uploaded_files.size_bytes_not_negative: c CHECK ((size_bytes >= 0))",
                id="renamed-check",
            ),
            pytest.param(
                "ALTER TABLE uploaded_files DROP CONSTRAINT uploaded_files_session_uuid_fkey,"
                " ADD CONSTRAINT uploaded_files_session_uuid_fkey"
                " FOREIGN KEY (session_uuid) REFERENCES user_sessions (uuid)",
                "+uploaded_files.uploaded_files_session_uuid_fkey:"
                " f FOREIGN KEY (session_uuid) REFERENCES user_sessions(uuid)",
                id="foreign-key-lost-cascade",
            ),
            pytest.param(
                "ALTER SEQUENCE uploaded_files_id_seq AS integer",
                "+uploaded_files_id_seq: integer start 1 increment 1 min 1 max 2147483647",
                id="narrower-sequence",
            ),
            pytest.param(
                "ALTER TABLE user_sessions DROP COLUMN ip_address;"
                " ALTER TABLE user_sessions ADD COLUMN ip_address TEXT",
                "last_resend_at, ip_address",
                id="column-order",
            ),
            pytest.param(
                "CREATE TABLE stray (id INTEGER)",
                "+stray: kind r, persistence p",
                id="extra-table",
            ),
            pytest.param(
                "CREATE TYPE mode AS ENUM ('legacy', 'orm')",
                "+mode: enum ('legacy', 'orm')",
                id="extra-enum",
            ),
        ],
    )
    def test_comparison_reports_drift(
        self, connection: sa.Connection, drift: str, reported: str
    ) -> None:
        """A comparison that cannot fail proves nothing: each kind of drift must show."""
        before = snapshot(connection)
        connection.execute(sa.text(drift))  # rolled back with the test's transaction

        diff = before.diff(snapshot(connection), expected_name="schema.sql", actual_name="drifted")

        assert reported in diff, f"the drift is missing from the diff:\n{diff}"

    def test_identical_schemas_give_an_empty_diff(self, connection: sa.Connection) -> None:
        """An empty diff is the pass signal, so reading the same schema twice must give one."""
        assert (
            snapshot(connection).diff(snapshot(connection), expected_name="a", actual_name="b")
            == ""
        )
