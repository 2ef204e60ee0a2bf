"""compat.transaction(): both paths share one connection and one transaction, whatever the flags."""

from __future__ import annotations

import contextlib
import uuid

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

import compat
from compat import uploads, user_sessions
from tests.fixtures.layer import Layer


def committed_session(observer: psycopg2.extensions.connection, name: str = "Ada") -> str:
    session_uuid = str(uuid.uuid4())
    with observer.cursor() as cur:
        cur.execute(
            "INSERT INTO user_sessions (uuid, name, email) VALUES (%s, %s, 'ada@example.com')",
            (session_uuid, name),
        )
    return session_uuid


def committed_row(
    observer: psycopg2.extensions.connection, session_uuid: str
) -> tuple[str, bool] | None:
    with observer.cursor() as cur:
        cur.execute(
            "SELECT name, completed_at IS NOT NULL FROM user_sessions WHERE uuid = %s",
            (session_uuid,),
        )
        row = cur.fetchone()
    return None if row is None else (row[0], row[1])


def backends_in_transaction(observer: psycopg2.extensions.connection) -> list[int]:
    with observer.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'"
        )
        return [pid for (pid,) in cur.fetchall()]


MIXED = {"user_sessions.update_session": "legacy", "user_sessions.complete_session": "orm"}


class TestMixedUnitOfWork:
    def test_commits_a_legacy_write_and_an_orm_write_to_the_same_row_together(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        committed_layer.set_flags(MIXED)
        session_uuid = committed_session(observer)
        with compat.transaction() as unit:
            # A second connection would wait on the first one's row lock:
            # fail fast instead of hanging if that ever regresses.
            unit.connection.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            user_sessions.update_session(session_uuid, {"name": "Ada King"})
            assert user_sessions.complete_session(session_uuid) is True
            assert backends_in_transaction(observer) == [unit.dbapi_connection.get_backend_pid()]
            assert committed_row(observer, session_uuid) == ("Ada", False)
        assert committed_row(observer, session_uuid) == ("Ada King", True)

    def test_an_orm_read_after_a_legacy_write_sees_the_write(self, committed_layer: Layer) -> None:
        committed_layer.set_flags(
            {"user_sessions.update_session": "legacy", "user_sessions.get_session": "orm"}
        )
        with compat.transaction():
            session_uuid = str(uuid.uuid4())
            user_sessions.insert_session(session_uuid, "Ada", None)
            user_sessions.get_session(session_uuid)
            user_sessions.update_session(session_uuid, {"name": "Ada King"})
            row = user_sessions.get_session(session_uuid)
            assert row is not None
            assert row["name"] == "Ada King"

    def test_rolls_back_both_paths_when_the_block_raises(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        committed_layer.set_flags(MIXED)
        session_uuid = committed_session(observer)
        with pytest.raises(RuntimeError, match="midway"), compat.transaction():
            user_sessions.update_session(session_uuid, {"name": "Ada King"})
            user_sessions.complete_session(session_uuid)
            raise RuntimeError("midway")
        assert committed_row(observer, session_uuid) == ("Ada", False)

    def test_a_nested_unit_recovers_from_an_orm_constraint_violation_keeping_earlier_work(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        committed_layer.set_flags(
            {"user_sessions.update_session": "legacy", "user_sessions.insert_session": "orm"}
        )
        session_uuid = committed_session(observer)
        with compat.transaction():
            user_sessions.update_session(session_uuid, {"name": "Ada King"})
            with pytest.raises(psycopg2.errors.UniqueViolation), compat.transaction():
                user_sessions.insert_session(session_uuid, "Duplicate", None)
            assert user_sessions.check_uuid_exists(session_uuid)
        assert committed_row(observer, session_uuid) == ("Ada King", False)

    def test_a_failure_outside_a_nested_unit_refuses_further_calls_naming_it(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        committed_layer.set_flags({"user_sessions.insert_session": "orm"})
        session_uuid = committed_session(observer)
        with pytest.raises(compat.UnitOfWorkAborted) as raised, compat.transaction():
            with pytest.raises(psycopg2.errors.UniqueViolation):
                user_sessions.insert_session(session_uuid, "Duplicate", None)
            user_sessions.count_sessions()
        assert "user_sessions.insert_session raised UniqueViolation (SQLSTATE 23505)" in str(
            raised.value
        )

    def test_a_swallowed_failure_cannot_be_committed_silently(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = committed_session(observer)
        other = str(uuid.uuid4())
        with pytest.raises(compat.UnitOfWorkAborted), compat.transaction():
            user_sessions.insert_session(other, "Grace", None)
            with contextlib.suppress(psycopg2.errors.UniqueViolation):
                user_sessions.insert_session(session_uuid, "Duplicate", None)
        assert committed_row(observer, other) is None


class TestOutsideAUnitOfWork:
    def test_each_call_commits_on_its_own(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        committed_layer.set_flags({"user_sessions.insert_session": "orm"})
        session_uuid = str(uuid.uuid4())
        user_sessions.insert_session(session_uuid, "Ada", None)
        assert committed_row(observer, session_uuid) == ("Ada", False)

    def test_a_failed_call_leaves_nothing_behind_and_the_next_call_works(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = committed_session(observer)
        with pytest.raises(psycopg2.errors.ForeignKeyViolation):
            uploads.record_upload(str(uuid.uuid4()), "a.txt", "k", 1, None, "0" * 64)
        assert user_sessions.check_uuid_exists(session_uuid) is True

    def test_connections_go_back_to_the_pool(self, committed_layer: Layer) -> None:
        for _ in range(3):
            user_sessions.count_sessions()
        pool = committed_layer.engine.pool
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
