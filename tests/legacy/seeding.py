"""Legacy-suite helpers: arrange and inspect rows with plain SQL, not the code under test."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import sqlalchemy as sa
from psycopg2 import sql

__all__ = [
    "UNREACHABLE_URL",
    "Connection",
    "connect",
    "db_now",
    "new_uuid",
    "query_all",
    "query_one",
    "query_value",
    "savepoint",
    "seed_session",
    "seed_upload",
    "sha256_of",
]

Connection = psycopg2.extensions.connection

# Nothing listens on port 1: a call that tries to connect fails at once, so a
# ValueError instead proves that the function gave up before any SQL.
UNREACHABLE_URL = "postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=2"


def new_uuid() -> str:
    """A fresh session uuid, as the application passes it: a lower-case str."""
    return str(uuid.uuid4())


def sha256_of(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def connect(url: str) -> Connection:
    """A plain psycopg2 connection (not autocommit, session time zone UTC) to a test URL."""
    libpq = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg2.connect(libpq, options="-c TimeZone=UTC")


def query_all(conn: Connection, query: str, params: Any = ()) -> list[dict[str, Any]]:
    """Rows as dicts. Cast uuid columns to text in the SQL: SQLAlchemy's connections
    return them as uuid.UUID to any cursor but the legacy layer's."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(query, params)
        return [dict(row) for row in cur.fetchall()]


def query_one(conn: Connection, query: str, params: Any = ()) -> dict[str, Any] | None:
    rows = query_all(conn, query, params)
    assert len(rows) <= 1, f"expected at most one row, got {len(rows)}"
    return rows[0] if rows else None


def query_value(conn: Connection, query: str, params: Any = ()) -> Any:
    with conn.cursor() as cur:
        cur.execute(query, params)
        row = cur.fetchone()
        assert row is not None, "the query returned no row"
        return row[0]


def db_now(conn: Connection) -> datetime:
    """The database's "now" as the naive UTC timestamp that CURRENT_TIMESTAMP writes.

    Inside a transaction this is the transaction's start, constant until it ends.
    """
    now: datetime = query_value(conn, "SELECT LOCALTIMESTAMP")
    return now


def _insert(conn: Connection, table: str, values: Mapping[str, object], returning: str) -> Any:
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(column) for column in values),
        sql.SQL(", ").join(sql.Placeholder(column) for column in values),
        sql.SQL(returning),
    )
    with conn.cursor() as cur:
        cur.execute(query, values)
        row = cur.fetchone()
        assert row is not None
        return row[0]


def seed_session(
    conn: Connection,
    *,
    uuid: str | None = None,
    name: str = "Ada Lovelace",
    email: str | None = "ada@example.com",
    **columns: object,
) -> str:
    """Insert a user_sessions row with plain SQL; any column may be given explicitly."""
    values = {"uuid": uuid or new_uuid(), "name": name, "email": email, **columns}
    session_uuid: str = _insert(conn, "user_sessions", values, "uuid::text")
    return session_uuid


def seed_upload(
    conn: Connection,
    session_uuid: str,
    *,
    filename: str = "notes.txt",
    size_bytes: int = 100,
    storage_key: str | None = None,
    content_type: str | None = "text/plain",
    **columns: object,
) -> int:
    """Insert an uploaded_files row with plain SQL and return its id."""
    values = {
        "session_uuid": session_uuid,
        "filename": filename,
        "storage_key": storage_key or f"uploads/{session_uuid}/{new_uuid()}/{filename}",
        "size_bytes": size_bytes,
        "content_type": content_type,
        "sha256": sha256_of(filename),
        **columns,
    }
    upload_id: int = _insert(conn, "uploaded_files", values, "id")
    return upload_id


@contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """Undo whatever the block did, even a failed statement, so the test can inspect the table.

    This is what a lender does to recover from an expected error without losing
    the rest of its transaction.
    """
    with conn.cursor() as cur:
        cur.execute("SAVEPOINT legacy_test")
    try:
        yield
    finally:
        with conn.cursor() as cur:
            cur.execute("ROLLBACK TO SAVEPOINT legacy_test")
