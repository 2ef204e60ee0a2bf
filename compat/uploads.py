"""Compat layer: legacy.uploads' functions, routed between the legacy SQL and the ORM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Row
from sqlalchemy.orm import Session

from compat.routing.arguments import integer
from compat.routing.declaration import Kind, Rows
from compat.routing.dispatch import facade
from compat.routing.shapes import legacy_dicts
from legacy import uploads as legacy
from legacy.uploads import UploadRow, UploadStatsRow
from orm.models import UploadedFile
from orm.repositories.uploads import UploadedFileRepository, UploadedFileRows

__all__ = [
    "UploadRow",
    "UploadStatsRow",
    "delete_upload",
    "get_upload",
    "list_uploads",
    "record_upload",
    "total_upload_bytes",
    "upload_row",
    "upload_stats",
]

_THE_UPLOAD = Rows("uploaded_files", "id", "upload_id", order_by="id")
_BY_STORAGE_KEY = Rows("uploaded_files", "storage_key", "storage_key", order_by="id")


def upload_row(upload: UploadedFile | Row[Any]) -> UploadRow:
    """An UploadedFile (or a row of its columns) as the legacy code returned it: uuid as str."""
    if isinstance(upload, Row):
        return _upload_rows([upload])[0]
    return {
        "id": upload.id,
        "session_uuid": str(upload.session_uuid),
        "filename": upload.filename,
        "storage_key": upload.storage_key,
        "size_bytes": upload.size_bytes,
        "content_type": upload.content_type,
        "sha256": upload.sha256,
        "uploaded_at": upload.uploaded_at,
        "deleted_at": upload.deleted_at,
    }


def _upload_rows(rows: Sequence[Row[Any]]) -> list[UploadRow]:
    # The row view selects UploadedFile's columns, named and typed as the
    # legacy UploadRow; parity checks that they agree.
    return cast(list[UploadRow], legacy_dicts(rows, ("session_uuid",)))


@facade(
    legacy.record_upload,
    kind=Kind.WRITE,
    touches=(_BY_STORAGE_KEY,),
    # The candidate's insert draws a value from the sequence even though its
    # savepoint is rolled back, so the serving path's id is always the next one.
    volatile=frozenset({"id"}),
)
def record_upload(
    db: Session,
    session_uuid: str,
    filename: str,
    storage_key: str,
    size_bytes: int,
    content_type: str | None,
    sha256: str,
) -> UploadRow:
    upload = UploadedFileRows(db).record(
        session_uuid=UUID(session_uuid),
        filename=filename,
        storage_key=storage_key,
        size_bytes=size_bytes,
        content_type=content_type,
        sha256=sha256,
    )
    return upload_row(upload)


@facade(legacy.get_upload, kind=Kind.READ)
def get_upload(db: Session, upload_id: int) -> UploadRow | None:
    upload = UploadedFileRows(db).get_by_id(upload_id)
    return None if upload is None else upload_row(upload)


@facade(legacy.list_uploads, kind=Kind.READ)
def list_uploads(db: Session, session_uuid: str) -> list[UploadRow]:
    return _upload_rows(UploadedFileRows(db).list_for_session(UUID(session_uuid)))


@facade(legacy.delete_upload, kind=Kind.WRITE, touches=(_THE_UPLOAD,))
def delete_upload(db: Session, upload_id: int) -> bool:
    return UploadedFileRepository(db).delete(upload_id)


@facade(legacy.total_upload_bytes, kind=Kind.READ)
def total_upload_bytes(db: Session, session_uuid: str) -> int:
    return UploadedFileRepository(db).total_bytes(UUID(session_uuid))


@facade(legacy.upload_stats, kind=Kind.READ, arguments={"limit": integer(0)})
def upload_stats(db: Session, limit: int = 20) -> list[UploadStatsRow]:
    return [
        {
            "session_uuid": str(stat.session_uuid),
            "name": stat.name,
            "file_count": stat.file_count,
            "total_bytes": stat.total_bytes,
            "last_upload_at": stat.last_upload_at,
        }
        for stat in UploadedFileRepository(db).stats(limit)
    ]
