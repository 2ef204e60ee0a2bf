"""ORM-suite helpers: arrange and inspect rows with plain SQL, never through the code under test."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

__all__ = [
    "add_session",
    "add_upload",
    "db_now",
    "mapped_values",
    "session_row",
    "upload_row",
    "value",
]


def db_now(conn: sa.Connection) -> datetime:
    """CURRENT_TIMESTAMP (the transaction's start) as the naive UTC time the columns store."""
    now: datetime = value(conn, "SELECT CURRENT_TIMESTAMP::timestamp")
    return now


def value(conn: sa.Connection, sql: str, **params: Any) -> Any:
    """The one value a query returns."""
    return conn.execute(sa.text(sql), params).scalar_one()


def add_session(conn: sa.Connection, **columns: Any) -> uuid.UUID:
    """Insert a user_sessions row (a fresh uuid and name unless given); return its uuid."""
    values = {"uuid": uuid.uuid4(), "name": "Ann", **columns}
    conn.execute(
        sa.text(
            f"INSERT INTO user_sessions ({', '.join(values)}) "
            f"VALUES ({', '.join(':' + key for key in values)})"
        ),
        values,
    )
    return uuid.UUID(str(values["uuid"]))


def add_upload(conn: sa.Connection, session_uuid: uuid.UUID, **columns: Any) -> int:
    """Insert an uploaded_files row of this session (a unique storage key); return its id."""
    filename = columns.pop("filename", "notes.txt")
    values = {
        "session_uuid": session_uuid,
        "filename": filename,
        "storage_key": f"uploads/{session_uuid}/{uuid.uuid4()}/{filename}",
        "size_bytes": 1,
        "content_type": "text/plain",
        "sha256": "0" * 64,
        **columns,
    }
    return int(
        conn.execute(
            sa.text(
                f"INSERT INTO uploaded_files ({', '.join(values)}) "
                f"VALUES ({', '.join(':' + key for key in values)}) RETURNING id"
            ),
            values,
        ).scalar_one()
    )


def session_row(conn: sa.Connection, session_uuid: uuid.UUID) -> dict[str, Any] | None:
    """The user_sessions row as a dict, or None."""
    row = (
        conn.execute(sa.text("SELECT * FROM user_sessions WHERE uuid = :u"), {"u": session_uuid})
        .mappings()
        .one_or_none()
    )
    return None if row is None else dict(row)


def upload_row(conn: sa.Connection, upload_id: int) -> dict[str, Any] | None:
    """The uploaded_files row as a dict (deleted or not), or None."""
    row = (
        conn.execute(sa.text("SELECT * FROM uploaded_files WHERE id = :id"), {"id": upload_id})
        .mappings()
        .one_or_none()
    )
    return None if row is None else dict(row)


def mapped_values(instance: object) -> dict[str, Any]:
    """Every mapped column attribute of an instance, read now: by column name."""
    mapper = sa.inspect(instance).mapper
    return {prop.columns[0].name: getattr(instance, prop.key) for prop in mapper.column_attrs}
