"""Units of work leave nothing on the server session that the next pooled client would inherit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

import compat
from compat import user_sessions
from compat.runtime import Runtime, build_runtime, use_runtime
from compat.session_state import (
    SessionStateLeft,
    leaves_no_session_state,
    single_connection_engine,
)


class _Abort(Exception):
    """Raised to roll a test's unit back."""


@pytest.fixture
def engine(migrated_database_url: str) -> Iterator[sa.Engine]:
    test_engine = single_connection_engine(migrated_database_url)
    yield test_engine
    test_engine.dispose()


def _runtime(engine: sa.Engine, mode: str) -> Runtime:
    return build_runtime(engine=engine, publishers=[], environ={"COMPAT_FLAGS": f"*={mode}"})


class TestLeavesNoSessionState:
    @pytest.mark.parametrize("mode", ["legacy", "shadow", "live", "orm"])
    def test_facade_calls_in_a_unit_leave_no_session_state(
        self, engine: sa.Engine, mode: str
    ) -> None:
        session_uuid = str(uuid.uuid4())
        with use_runtime(_runtime(engine, mode)), leaves_no_session_state(engine):
            user_sessions.count_sessions()
            with pytest.raises(_Abort), compat.transaction():
                user_sessions.insert_session(session_uuid, "Ada", None)
                user_sessions.update_session(session_uuid, {"name": "Grace"})
                user_sessions.get_session(session_uuid)
                raise _Abort

    def test_set_local_leaves_no_session_state(self, engine: sa.Engine) -> None:
        with (
            use_runtime(_runtime(engine, "orm")),
            leaves_no_session_state(engine),
            compat.transaction() as unit,
            unit.dbapi_connection.cursor() as cursor,
        ):
            cursor.execute("SET LOCAL statement_timeout = 1234")
            cursor.execute("SELECT pg_advisory_xact_lock(19)")


class TestCatchesSessionState:
    @pytest.mark.parametrize(
        ("statement", "leftover"),
        [
            ("SET statement_timeout = 1234", "session-level SET statement_timeout = 1234"),
            ("SELECT pg_advisory_lock(19)", "session advisory lock 0/19/1"),
            ("DECLARE held CURSOR WITH HOLD FOR SELECT 1", "cursor WITH HOLD held"),
            ("PREPARE leftover AS SELECT 1", "prepared statement leftover"),
            ("LISTEN compat_flags", "LISTEN compat_flags"),
        ],
    )
    def test_fails_naming_what_a_unit_left_on_the_session(
        self, engine: sa.Engine, statement: str, leftover: str
    ) -> None:
        with use_runtime(_runtime(engine, "orm")):
            with pytest.raises(SessionStateLeft, match=leftover):  # noqa: SIM117
                with leaves_no_session_state(engine):
                    with compat.transaction() as unit, unit.dbapi_connection.cursor() as cursor:
                        cursor.execute(statement)
            engine.dispose()  # the next test gets a clean backend
