"""Compat layer: legacy.uploads' functions, routed between the legacy SQL and the ORM."""

from __future__ import annotations

from typing import Final
from uuid import UUID

from sqlalchemy.orm import Session

from compat.routing.declaration import Shape, TouchedRows
from compat.routing.dispatch import facade
from compat.routing.shapes import LegacyShape
from compat.verify import calls
from legacy import uploads as legacy
from legacy.uploads import UploadRow, UploadStatsRow
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

_THE_UPLOAD = TouchedRows("uploaded_files", "id", "upload_id", order_by="id")
_BY_STORAGE_KEY = TouchedRows("uploaded_files", "storage_key", "storage_key", order_by="id")


_UPLOAD: Final = LegacyShape(UploadRow)
upload_row = _UPLOAD.one


@facade(
    legacy.record_upload,
    shape=Shape.ROW_WRITE,
    touches=(_BY_STORAGE_KEY,),
    calls=calls.new_uploads,
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
    return _UPLOAD.one(upload)


@facade(
    legacy.get_upload,
    row=_THE_UPLOAD,
    reads=("uploaded_files",),
    shape=Shape.POINT_READ,
    calls=calls.by_upload,
)
def get_upload(db: Session, upload_id: int) -> UploadRow | None:
    upload = UploadedFileRows(db).get_by_id(upload_id)
    return _UPLOAD.optional(upload)


@facade(
    legacy.list_uploads,
    reads=("uploaded_files",),
    shape=Shape.LIST,
    calls=calls.by_session_with_uploads,
)
def list_uploads(db: Session, session_uuid: str) -> list[UploadRow]:
    return _UPLOAD.many(UploadedFileRows(db).list_for_session(UUID(session_uuid)))


@facade(legacy.delete_upload, shape=Shape.ROW_DELETE, touches=(_THE_UPLOAD,), calls=calls.by_upload)
def delete_upload(db: Session, upload_id: int) -> bool:
    return UploadedFileRepository(db).delete(upload_id)


@facade(
    legacy.total_upload_bytes,
    reads=("uploaded_files",),
    shape=Shape.POINT_READ,
    calls=calls.by_session_with_uploads,
)
def total_upload_bytes(db: Session, session_uuid: str) -> int:
    return UploadedFileRepository(db).total_bytes(UUID(session_uuid))


@facade(
    legacy.upload_stats,
    reads=("uploaded_files", "user_sessions"),
    shape=Shape.AGGREGATE,
    calls=calls.stats_pages,
)
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
