"""Compat layer: run one side (legacy or ORM) of a facade call in a unit of work.

A database error surfaces as psycopg2's class whichever side ran. A side run
"isolated" runs in a savepoint that is always rolled back and never raises:
its outcome is recorded (the candidate of a compared call, and each side in
parity and `compat verify`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import psycopg2
import sqlalchemy as sa

from compat.errors import UnitOfWorkAborted
from compat.routing.declaration import FacadeFunction, Kind
from compat.routing.unit_of_work import SavepointFailed, UnitOfWork, unwrap
from compat.shadow.observation import Outcome, Side

__all__ = ["row_locks", "run_isolated", "run_side", "touched_rows"]


def run_side(
    spec: FacadeFunction,
    side: Side,
    unit: UnitOfWork,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> Any:
    """Run one side of ``spec`` in ``unit``; a database error surfaces as psycopg2's class."""
    unit.open()
    if side is Side.LEGACY:
        return spec.legacy(*args, **kwargs)
    with unit.call_session() as session:
        try:
            return spec.orm(session, *args, **kwargs)
        except sa.exc.DBAPIError as error:
            raise unwrap(error) from error


def run_isolated(
    spec: FacadeFunction,
    side: Side,
    unit: UnitOfWork,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    budget_ms: int = 0,
    read_state: Callable[[UnitOfWork], Any] | None = None,
    first: str = "",
) -> Outcome:
    """Run one side in a savepoint that is always rolled back; never raise, record instead.

    For a write, the rows it touched are read back inside the savepoint, and
    ``read_state`` (when given) reads whatever else should be compared, such
    as whole tables. With ``budget_ms``, a statement timeout bounds the run
    (undone with the savepoint). The one error raised is a lost connection:
    nothing else can run in the unit then. ``first`` is SQL sent with the
    SAVEPOINT, before it (row_locks).
    """
    started = time.perf_counter()
    try:
        with unit.rolled_back_savepoint(budget_ms, first):
            value = run_side(spec, side, unit, args, kwargs)
            seconds = time.perf_counter() - started
            rows = touched_rows(spec, unit, args, kwargs) if spec.kind is Kind.WRITE else None
            state = None if read_state is None else read_state(unit)
    except SavepointFailed as failed:
        # Not the candidate's: the unit's transaction failed opening its savepoint.
        raise failed.error from failed
    except UnitOfWorkAborted:
        raise  # the unit was already aborted: nothing ran
    except Exception as error:  # a candidate's failure is recorded, never raised
        if unit.connection.invalidated:
            # The server ended the connection (a restart, say): the serving side
            # would fail next with a vaguer error, so the caller gets this one.
            raise
        # (Only now: .connection on an invalidated Connection tries to reconnect.)
        raw = unit.connection.connection.dbapi_connection
        if raw is None or raw.closed:
            # A legacy candidate's psycopg2 error went past SQLAlchemy: tell it, so
            # that the pool discards the connection, and raise it as above.
            unit.connection.invalidate(error)
            raise
        return Outcome(side, error=unwrap(error), seconds=time.perf_counter() - started)
    return Outcome(side, value=value, seconds=seconds, rows=rows, state=state)


def row_locks(
    spec: FacadeFunction, unit: UnitOfWork, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> str:
    """``SELECT ... FOR UPDATE`` of the rows a write will touch, values quoted, ready to send.

    A compared write sends it with its candidate's SAVEPOINT (no extra round
    trip): the candidate's own row locks are released with its rolled-back
    savepoint, while these, taken in the unit's transaction, hold until it
    ends, so no other writer can change the rows between the candidate and
    the serving side.
    """
    named = spec.arguments(args, kwargs)
    statements = [
        (sql, {"value": named[rows.argument]} if rows.argument else {})
        for rows in spec.touches
        if (sql := rows.lock_sql()) is not None
    ]
    if not statements:
        return ""
    with unit.dbapi_connection.cursor() as cursor:
        return "; ".join(cursor.mogrify(sql, values).decode() for sql, values in statements)


def touched_rows(
    spec: FacadeFunction, unit: UnitOfWork, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> list[list[dict[str, Any]]]:
    """The rows each declared ``TouchedRows`` names, as dicts, read on the unit's connection.

    Read with a plain psycopg2 cursor: SQLAlchemy's execution machinery cost
    more CPU than the read itself, twice per compared write. Both sides' rows
    are read alike, so their types agree.
    """
    named = spec.arguments(args, kwargs)
    raw = unit.dbapi_connection
    found = []
    with raw.cursor() as cursor:
        for rows in spec.touches:
            # Always a mapping: the compiled SQL escapes a literal % as %%.
            parameters = {"value": named[rows.argument]} if rows.argument else {}
            try:
                cursor.execute(rows.sql(), parameters)
            except psycopg2.Error as error:
                # (SQLAlchemy's typing knows no psycopg2 classes, hence Any.)
                dialect: Any = unit.connection.dialect
                if raw.closed or dialect.is_disconnect(error, raw, cursor):
                    # Lost: tell SQLAlchemy, as its own execution would have, so that the
                    # pool discards the connection and the caller hears of it.
                    unit.connection.invalidate(error)
                raise
            names = [column.name for column in cursor.description or ()]
            found.append([dict(zip(names, row, strict=True)) for row in cursor.fetchall()])
    return found
