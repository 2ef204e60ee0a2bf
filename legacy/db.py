"""Legacy side: get_db_connection(), the one door through which legacy SQL reaches PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import psycopg2.sql

import layer_settings

__all__ = [
    "database_dsn",
    "execute",
    "fetch_all",
    "fetch_batches",
    "fetch_one",
    "get_db_connection",
    "lend_connection",
]

Params = Sequence[Any] | Mapping[str, Any]
Query = str | psycopg2.sql.Composable

# The legacy code returned uuid columns as str: psycopg2's default. A connection
# that SQLAlchemy opened has psycopg2's UUID adapter registered on it, so cursors
# handed out through lend_connection() override it back, per cursor.
_UUID_OID = 2950
_UUID_ARRAY_OID = 2951
_UUID_AS_TEXT = psycopg2.extensions.new_type(
    (_UUID_OID,), "UUID_AS_TEXT", lambda value, _cur: value
)
_UUID_ARRAY_AS_TEXT = psycopg2.extensions.new_array_type(
    (_UUID_ARRAY_OID,), "UUID_ARRAY_AS_TEXT", _UUID_AS_TEXT
)


def database_dsn() -> str:
    """Return the libpq connection string: DATABASE_URL, else the POSTGRES_* variables.

    Parsed by ``layer_settings`` (shared with the ORM side); a SQLAlchemy-style
    URL (``postgresql+psycopg2://``) has its driver suffix dropped, because
    libpq does not know it. A bad value raises ``SettingsError`` (one line).
    """
    return layer_settings.current().database.dsn()


def _connect() -> psycopg2.extensions.connection:
    settings = layer_settings.current()
    dsn = settings.database.dsn()
    # A bound unless the URL gives one: libpq waits for ever by default.
    bound: dict[str, Any] = {}
    if "connect_timeout" not in psycopg2.extensions.parse_dsn(dsn):
        bound["connect_timeout"] = settings.connect_timeout_s
    conn: psycopg2.extensions.connection = psycopg2.connect(dsn, **bound)
    try:
        _pin_time_zone(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _pin_time_zone(conn: psycopg2.extensions.connection) -> None:
    # Naive TIMESTAMP columns meet CURRENT_TIMESTAMP in the session's zone:
    # pin it, so that "now" means UTC on every connection. A SET, not the
    # startup parameter options=-c TimeZone=UTC: PgBouncer refuses that one
    # (or drops it silently with ignore_startup_parameters), while TimeZone
    # set by a statement is a parameter it tracks per client and puts back on
    # whichever server connection serves each transaction (docs/pooler.md).
    # One round trip per new connection, in autocommit: no transaction is left open.
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
    finally:
        if not conn.closed:
            conn.autocommit = False


class _LentConnection:
    """A connection someone else owns, as legacy code sees it.

    Legacy functions commit and close the connection they get; on a lent one
    those calls do nothing, so the lender decides when the transaction ends.
    A failed statement still aborts the lender's transaction (PostgreSQL's
    rule); the exception reaches the lender, which rolls back.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self._conn = conn

    def cursor(self, *args: Any, **kwargs: Any) -> psycopg2.extensions.cursor:
        cur: psycopg2.extensions.cursor = self._conn.cursor(*args, **kwargs)
        psycopg2.extensions.register_type(_UUID_AS_TEXT, cur)
        psycopg2.extensions.register_type(_UUID_ARRAY_AS_TEXT, cur)
        return cur

    def commit(self) -> None:
        """The lender commits."""

    def rollback(self) -> None:
        """The lender rolls back, when the exception reaches it."""

    def close(self) -> None:
        """The lender closes."""

    def __enter__(self) -> _LentConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


_lent: ContextVar[_LentConnection | None] = ContextVar("legacy_lent_connection", default=None)


def get_db_connection() -> psycopg2.extensions.connection:
    """Return a connection for one legacy call.

    Normally a new connection (the caller commits and closes it). Inside
    ``lend_connection()`` it is the lent connection, whose commit and close
    are left to the lender.
    """
    lent = _lent.get()
    if lent is not None:
        return cast(psycopg2.extensions.connection, lent)
    return _connect()


@contextmanager
def lend_connection(conn: psycopg2.extensions.connection) -> Iterator[None]:
    """Make every legacy call in this context (thread or task) run on ``conn``.

    This is the seam through which the compat layer shares one transaction
    between the legacy and ORM paths, and through which tests run legacy
    functions in a transaction they roll back. No legacy function changes.
    """
    token = _lent.set(_LentConnection(conn))
    try:
        yield
    finally:
        _lent.reset(token)


def _run(sql: Query, params: Params, fetch: str) -> Any:
    conn = get_db_connection()
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            if fetch == "one":
                row = cur.fetchone()
                result: Any = None if row is None else dict(row)
            elif fetch == "all":
                result = [dict(row) for row in cur.fetchall()]
            else:
                result = cur.rowcount
        conn.commit()
        return result
    except BaseException:
        _roll_back(conn)
        raise
    finally:
        conn.close()


def _roll_back(conn: psycopg2.extensions.connection) -> None:
    # A connection the server ended is closed already: its rollback would raise
    # InterfaceError ("connection already closed") in place of the error that ended it.
    if not conn.closed:
        conn.rollback()


def fetch_one(sql: Query, params: Params = ()) -> dict[str, Any] | None:
    """Run one statement in its own transaction; return its first row as a dict."""
    return cast(dict[str, Any] | None, _run(sql, params, "one"))


def fetch_all(sql: Query, params: Params = ()) -> list[dict[str, Any]]:
    """Run one statement in its own transaction; return every row as a dict."""
    return cast(list[dict[str, Any]], _run(sql, params, "all"))


# Server-side cursors are named legacy_batches_<n>: unique on a connection that
# streams twice at once, and telling a DBA in pg_cursors whose they are.
_CURSOR_NUMBERS = itertools.count(1)


def fetch_batches(
    sql: Query, params: Params = (), size: int = 10_000
) -> Generator[list[tuple[Any, ...]], None, None]:
    """Run one query in its own transaction; yield its rows as tuples, ``size`` at a time.

    For results too large to hold as a list of dicts: a server-side cursor
    (``DECLARE``, so a SELECT, VALUES or TABLE query) sends one batch per
    round trip, and only that batch is in memory here. The transaction ends
    as fetch_all's does: committed after the last batch, rolled back on an
    error or when the caller stops early. On a lent connection, as for every
    legacy call, the lender commits, rolls back and closes.
    """
    conn = get_db_connection()
    try:
        with conn.cursor(name=f"legacy_batches_{next(_CURSOR_NUMBERS)}") as cur:
            cur.execute(sql, params)
            while rows := cur.fetchmany(size):
                yield rows
        conn.commit()
    except BaseException:
        _roll_back(conn)
        raise
    finally:
        conn.close()


def execute(sql: Query, params: Params = ()) -> int:
    """Run one statement in its own transaction; return how many rows it touched."""
    return cast(int, _run(sql, params, "count"))
