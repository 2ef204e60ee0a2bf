"""Served-call counts: every call a side served is counted, kept while the database is away,
and stored once it is back; a connection fault is not an error of the side."""

from __future__ import annotations

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import sqlalchemy as sa

from compat.flags.modes import Mode
from compat.shadow.observation import Side
from compat.shadow.served import ServedTally
from tests.compat.test_flags import closed_port_engine
from tests.fixtures.layer import Layer

KEY = "user_sessions.get_session"


def stored(observer: psycopg2.extensions.connection) -> list[tuple[object, ...]]:
    with observer.cursor() as cur:
        cur.execute(
            "SELECT key, mode, side, sum(calls)::int, sum(errors)::int, sum(faults)::int "
            "FROM compat_served_rollups GROUP BY key, mode, side ORDER BY key, mode, side"
        )
        return cur.fetchall()


class TestServedTally:
    def test_counts_a_lost_connection_as_a_fault_not_an_error(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        tally = ServedTally(lambda: committed_layer.engine)
        tally.count(KEY, Mode.ORM, Side.ORM, None)
        tally.count(KEY, Mode.ORM, Side.ORM, psycopg2.errors.DivisionByZero())
        tally.count(
            KEY,
            Mode.ORM,
            Side.ORM,
            psycopg2.OperationalError("server closed the connection unexpectedly"),
        )
        assert tally.flush()
        assert stored(observer) == [(KEY, "orm", "orm", 3, 1, 1)]
        assert tally.close(5.0)

    def test_keeps_its_counts_while_the_database_is_away_and_stores_them_once_back(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        away = closed_port_engine()
        tally = ServedTally(lambda: away, flush_seconds=3600)
        for _ in range(3):
            tally.count(KEY, Mode.LEGACY, Side.LEGACY, None)
        assert not tally.flush()
        tally.count(KEY, Mode.LEGACY, Side.LEGACY, psycopg2.errors.UniqueViolation())
        assert sum(calls for calls, _, _ in tally.snapshot().values()) == 4
        assert stored(observer) == []

        tally.store_to(lambda: committed_layer.engine)
        assert tally.flush()
        assert stored(observer) == [(KEY, "legacy", "legacy", 4, 1, 0)]
        assert tally.snapshot() == {}
        assert tally.close(5.0)
        away.dispose()

    def test_adds_to_what_other_processes_stored_in_the_same_minute(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        first, second = (ServedTally(lambda: committed_layer.engine) for _ in range(2))
        first.count(KEY, Mode.ORM, Side.ORM, None)
        second.count(KEY, Mode.ORM, Side.ORM, sa.exc.SQLAlchemyError("not a database error"))
        assert first.flush()
        assert second.flush()
        assert stored(observer) == [(KEY, "orm", "orm", 2, 1, 0)]

    def test_closing_stores_the_last_counts(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        tally = ServedTally(lambda: committed_layer.engine, flush_seconds=3600)
        tally.count(KEY, Mode.SHADOW, Side.LEGACY, None)
        assert tally.close(5.0)
        assert stored(observer) == [(KEY, "shadow", "legacy", 1, 0, 0)]
