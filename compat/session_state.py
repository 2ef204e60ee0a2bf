"""Compat layer: a check for services' tests that a unit of work leaves nothing on its session.

Behind PgBouncer in transaction pooling, whatever a transaction leaves on the
server session (a session-level SET, a session advisory lock, a cursor WITH
HOLD, a prepared statement, a LISTEN, a temporary table) is inherited by the
next client's transaction on that server connection. ``session_state`` lists
those things; ``leaves_no_session_state`` compares them before and after a
block, on an engine of one pooled connection, so the check sees the very
backend the block used. See docs/pooler.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import sqlalchemy as sa

from orm.database import create_engine

__all__ = [
    "LAYER_SETTINGS",
    "SessionStateLeft",
    "leaves_no_session_state",
    "session_state",
    "single_connection_engine",
]


class SessionStateLeft(AssertionError):
    """A block left state on its server session; the message names each leftover."""


# The layer's own: SET TIME ZONE 'UTC' on connect, tracked by PgBouncer.
LAYER_SETTINGS: Final = ("TimeZone",)

_STATE_SQL: Final = """
SELECT 'session-level SET ' || name || ' = ' || setting
  FROM pg_settings WHERE source = 'session' AND NOT name = ANY(%(allowed)s)
   -- per transaction by definition (SET TRANSACTION): reported, never inherited
   AND name NOT IN ('transaction_isolation', 'transaction_read_only', 'transaction_deferrable')
UNION ALL
SELECT 'session advisory lock ' || classid || '/' || objid || '/' || objsubid
  FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
UNION ALL
SELECT 'cursor WITH HOLD ' || name FROM pg_cursors WHERE is_holdable
UNION ALL
SELECT 'prepared statement ' || name FROM pg_prepared_statements
UNION ALL
SELECT 'LISTEN ' || channel FROM pg_listening_channels() AS channel
UNION ALL
SELECT 'temporary table ' || relname FROM pg_class
  WHERE relnamespace = pg_my_temp_schema() AND relkind = 'r'
"""


def session_state(dbapi_connection: Any, allowed: tuple[str, ...] = LAYER_SETTINGS) -> set[str]:
    """What the session of ``dbapi_connection`` carries beyond one transaction (a line each)."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute(_STATE_SQL, {"allowed": list(allowed)})
        return {str(row[0]) for row in cursor.fetchall()}


def single_connection_engine(url: sa.URL | str) -> sa.Engine:
    """A layer engine with exactly one pooled connection: every unit runs on the same backend."""
    return create_engine(url, pool_size=1, max_overflow=0)


@contextmanager
def leaves_no_session_state(engine: sa.Engine) -> Iterator[None]:
    """Raise SessionStateLeft (an AssertionError naming each leftover) if the block leaves any.

    ``engine`` must have one pooled connection (``single_connection_engine``);
    with more, the check could look at another backend, and says so.
    """
    before, pid = _look(engine)
    yield
    after, pid_after = _look(engine)
    if pid_after != pid:
        raise SessionStateLeft(
            "the engine has more than one pooled connection, so the check looked at another "
            "backend; build it with compat.session_state.single_connection_engine(url)"
        )
    leaked = sorted(after - before)
    if leaked:
        raise SessionStateLeft(
            "the unit of work left session state behind, which the next client of a "
            "transaction-pooling PgBouncer inherits (docs/pooler.md): " + "; ".join(leaked)
        )


def _look(engine: sa.Engine) -> tuple[set[str], int]:
    with engine.connect() as connection:
        raw: Any = connection.connection.dbapi_connection
        state = session_state(raw)
        pid = int(raw.get_backend_pid())
        connection.rollback()
    return state, pid
