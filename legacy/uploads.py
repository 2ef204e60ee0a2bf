"""Legacy side: metadata of the files a session uploaded to object storage, in plain SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Final, TypedDict, cast

from legacy.db import execute, fetch_all, fetch_one

__all__ = [
    "UploadRow",
    "UploadStatsRow",
    "delete_upload",
    "get_upload",
    "list_uploads",
    "record_upload",
    "total_upload_bytes",
    "upload_stats",
]


class UploadRow(TypedDict):
    """One uploaded_files row as psycopg2 returns it."""

    id: int
    session_uuid: str
    filename: str
    storage_key: str
    size_bytes: int
    content_type: str | None
    sha256: str
    uploaded_at: datetime
    deleted_at: datetime | None


class UploadStatsRow(TypedDict):
    """Live uploads of one session, summed up."""

    session_uuid: str
    name: str
    file_count: int
    total_bytes: int
    last_upload_at: datetime


COLUMNS: Final = ", ".join(UploadRow.__annotations__)


def record_upload(
    session_uuid: str,
    filename: str,
    storage_key: str,
    size_bytes: int,
    content_type: str | None,
    sha256: str,
) -> UploadRow:
    """Record an uploaded file's metadata and return the stored row."""
    row = fetch_one(
        f"INSERT INTO uploaded_files "
        f"(session_uuid, filename, storage_key, size_bytes, content_type, sha256) "
        f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}",
        (session_uuid, filename, storage_key, size_bytes, content_type, sha256),
    )
    return cast(UploadRow, row)


def get_upload(upload_id: int) -> UploadRow | None:
    """Return a live (not deleted) upload, or None."""
    row = fetch_one(
        f"SELECT {COLUMNS} FROM uploaded_files WHERE id = %s AND deleted_at IS NULL", (upload_id,)
    )
    return cast(UploadRow | None, row)


def list_uploads(session_uuid: str) -> list[UploadRow]:
    """Return a session's live uploads, oldest first (ties by id)."""
    rows = fetch_all(
        f"SELECT {COLUMNS} FROM uploaded_files WHERE session_uuid = %s AND deleted_at IS NULL "
        f"ORDER BY uploaded_at, id",
        (session_uuid,),
    )
    return cast(list[UploadRow], rows)


def delete_upload(upload_id: int) -> bool:
    """Soft-delete an upload. False when it is missing or already deleted."""
    count = execute(
        "UPDATE uploaded_files SET deleted_at = CURRENT_TIMESTAMP "
        "WHERE id = %s AND deleted_at IS NULL",
        (upload_id,),
    )
    return count == 1


def total_upload_bytes(session_uuid: str) -> int:
    """Sum the sizes of a session's live uploads (0 when there are none)."""
    row = fetch_one(
        "SELECT COALESCE(SUM(size_bytes), 0)::bigint AS total FROM uploaded_files "
        "WHERE session_uuid = %s AND deleted_at IS NULL",
        (session_uuid,),
    )
    return int(row["total"]) if row else 0


def upload_stats(limit: int = 20) -> list[UploadStatsRow]:
    """Per session with live uploads: count, bytes and latest upload; biggest first."""
    rows = fetch_all(
        "SELECT f.session_uuid, s.name, count(*) AS file_count, "
        "SUM(f.size_bytes)::bigint AS total_bytes, max(f.uploaded_at) AS last_upload_at "
        "FROM uploaded_files f JOIN user_sessions s ON s.uuid = f.session_uuid "
        "WHERE f.deleted_at IS NULL "
        "GROUP BY f.session_uuid, s.name "
        "ORDER BY total_bytes DESC, f.session_uuid ASC "
        "LIMIT %s",
        (limit,),
    )
    return cast(list[UploadStatsRow], rows)
