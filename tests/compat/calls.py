"""One representative call per facade function, with the rows it needs arranged in plain SQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2.extensions

Arrange = Callable[[psycopg2.extensions.connection], "Call"]


@dataclass(frozen=True)
class Call:
    """Positional and keyword arguments for one facade call."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def new_session(
    conn: psycopg2.extensions.connection,
    *,
    name: str = "Ada Lovelace",
    email: str | None = "ada@example.com",
    created_at: datetime | None = None,
    code: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Insert a session with plain SQL; return its uuid as str."""
    session_uuid = str(uuid.uuid4())
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO user_sessions (uuid, name, email, created_at, verification_code, "
            "verification_expires_at) VALUES (%s, %s, %s, COALESCE(%s, CURRENT_TIMESTAMP), %s, %s)",
            (session_uuid, name, email, created_at, code, expires_at),
        )
    return session_uuid


def new_upload(conn: psycopg2.extensions.connection, session_uuid: str, size: int = 100) -> int:
    """Insert an upload of ``session_uuid`` with plain SQL; return its id."""
    key = f"uploads/{session_uuid}/{uuid.uuid4().hex}.txt"
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO uploaded_files (session_uuid, filename, storage_key, size_bytes, "
            "content_type, sha256) VALUES (%s, 'notes.txt', %s, %s, 'text/plain', %s) "
            "RETURNING id",
            (session_uuid, key, size, "a" * 64),
        )
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def _session_then(*extra: Any, **kwargs: Any) -> Arrange:
    return lambda conn: Call((new_session(conn), *extra), kwargs)


def _upload_id(conn: psycopg2.extensions.connection) -> Call:
    return Call((new_upload(conn, new_session(conn)),))


def _session_with_upload(conn: psycopg2.extensions.connection) -> Call:
    session_uuid = new_session(conn)
    new_upload(conn, session_uuid)
    return Call((session_uuid,))


def _record_upload(conn: psycopg2.extensions.connection) -> Call:
    session_uuid = new_session(conn)
    key = f"uploads/{session_uuid}/{uuid.uuid4().hex}.pdf"
    return Call((session_uuid, "report.pdf", key, 2048, "application/pdf", "b" * 64))


def _with_upload(call: Call) -> Arrange:
    def arrange(conn: psycopg2.extensions.connection) -> Call:
        new_upload(conn, new_session(conn))
        return call

    return arrange


def _with_session(call: Call) -> Arrange:
    def arrange(conn: psycopg2.extensions.connection) -> Call:
        new_session(conn)
        return call

    return arrange


CALLS: dict[str, Arrange] = {
    "user_sessions.check_uuid_exists": _session_then(),
    "user_sessions.get_session": _session_then(),
    "user_sessions.insert_session": lambda conn: Call(
        (str(uuid.uuid4()), "Grace Hopper", "grace@example.com", "10.0.0.1", True)
    ),
    "user_sessions.update_session": _session_then({"name": "Ada King", "email": None}),
    "user_sessions.complete_session": _session_then(),
    "user_sessions.delete_session": _session_with_upload,
    "user_sessions.count_sessions": _with_session(Call()),
    "user_sessions.list_session_uuids": _with_session(Call()),
    "user_sessions.find_sessions_by_email": lambda conn: Call(
        (new_session(conn, email="Mixed.Case@Example.com") and "mixed.case@example.com",)
    ),
    "user_sessions.list_sessions": _with_session(Call(kwargs={"limit": 5, "order": "name"})),
    "user_sessions.delete_abandoned_sessions": lambda conn: Call(
        (new_session(conn, created_at=datetime(2020, 1, 1)) and 24,)
    ),
    "email_verification.get_verification": _session_then(),
    "email_verification.set_verification_code": _session_then(
        "123456", datetime(2030, 1, 1, 12, 0)
    ),
    "email_verification.increment_verification_attempts": _session_then(),
    "email_verification.increment_resend_attempts": _session_then(),
    "email_verification.mark_email_verified": _session_then(),
    "email_verification.reset_verification": _session_then(),
    "email_verification.cleanup_expired_verifications": lambda conn: Call(
        (new_session(conn, code="999999", expires_at=datetime(2020, 1, 1)) and 24,)
    ),
    "uploads.record_upload": _record_upload,
    "uploads.get_upload": _upload_id,
    "uploads.list_uploads": _session_with_upload,
    "uploads.delete_upload": _upload_id,
    "uploads.total_upload_bytes": _session_with_upload,
    "uploads.upload_stats": _with_upload(Call((10,))),
}
