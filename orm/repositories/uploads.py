"""ORM side: metadata of the files a session uploaded, replacing legacy/uploads.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import BigInteger, Row, bindparam, cast, func, insert, select

from orm.models import UploadedFile, UserSession
from orm.repositories.base import BaseRepository

__all__ = ["UploadStats", "UploadedFileRepository"]


@dataclass(frozen=True, slots=True)
class UploadStats:
    """Live uploads of one session, summed up."""

    session_uuid: uuid.UUID
    name: str
    file_count: int
    total_bytes: int
    last_upload_at: datetime


_LIVE = UploadedFile.deleted_at.is_(None)
_OF_SESSION = UploadedFile.session_uuid == bindparam(
    "session_uuid", type_=UploadedFile.session_uuid.type
)

_RECORD: Final = (
    insert(UploadedFile)
    .values(
        session_uuid=bindparam("set_session_uuid", type_=UploadedFile.session_uuid.type),
        filename=bindparam("set_filename", type_=UploadedFile.filename.type),
        storage_key=bindparam("set_storage_key", type_=UploadedFile.storage_key.type),
        size_bytes=bindparam("set_size_bytes", type_=UploadedFile.size_bytes.type),
        content_type=bindparam("set_content_type", type_=UploadedFile.content_type.type),
        sha256=bindparam("set_sha256", type_=UploadedFile.sha256.type),
    )
    .returning(UploadedFile)
)
_LIST_FOR_SESSION: Final = (
    select(UploadedFile)
    .where(_OF_SESSION, _LIVE)
    .order_by(UploadedFile.uploaded_at, UploadedFile.id)
)
_TOTAL_BYTES: Final = select(
    cast(func.coalesce(func.sum(UploadedFile.size_bytes), 0), BigInteger)
).where(_OF_SESSION, _LIVE)

_total = cast(func.sum(UploadedFile.size_bytes), BigInteger).label("total_bytes")
_STATS: Final = (
    select(
        UploadedFile.session_uuid,
        UserSession.name,
        func.count().label("file_count"),
        _total,
        func.max(UploadedFile.uploaded_at).label("last_upload_at"),
    )
    .join(UserSession, UserSession.uuid == UploadedFile.session_uuid)
    .where(_LIVE)
    .group_by(UploadedFile.session_uuid, UserSession.name)
    .order_by(_total.desc(), UploadedFile.session_uuid.asc())
    .limit(bindparam("limit"))
)


class UploadedFileRepository(BaseRepository[UploadedFile]):
    """Uploaded files' metadata; deleting one is a soft delete (deleted_at), hidden from reads.

    Inherited and meant for use here: ``get_by_id(id)`` (live uploads only)
    and ``delete(id)`` (soft; False when missing or already deleted).
    """

    model = UploadedFile

    def record(
        self,
        session_uuid: uuid.UUID,
        filename: str,
        storage_key: str,
        size_bytes: int,
        content_type: str | None,
        sha256: str,
    ) -> UploadedFile:
        """Record an uploaded file's metadata and return the stored row."""
        params = self._record_params(
            "record", session_uuid, filename, storage_key, size_bytes, content_type, sha256
        )
        recorded = self._one(_RECORD, params)
        assert recorded is not None  # INSERT ... RETURNING returns the row or raises
        return recorded

    def record_row(
        self,
        session_uuid: uuid.UUID,
        filename: str,
        storage_key: str,
        size_bytes: int,
        content_type: str | None,
        sha256: str,
    ) -> Row[Any]:
        """``record`` returning the stored row as columns."""
        params = self._record_params(
            "record_row", session_uuid, filename, storage_key, size_bytes, content_type, sha256
        )
        recorded = self._row(_RECORD, params)
        assert recorded is not None  # INSERT ... RETURNING returns the row or raises
        return recorded

    def _record_params(
        self,
        method: str,
        session_uuid: uuid.UUID,
        filename: str,
        storage_key: str,
        size_bytes: int,
        content_type: str | None,
        sha256: str,
    ) -> dict[str, Any]:
        self._check(
            method,
            session_uuid=session_uuid,
            filename=filename,
            storage_key=storage_key,
            size_bytes=size_bytes,
            content_type=content_type,
            sha256=sha256,
        )
        return {
            "set_session_uuid": session_uuid,
            "set_filename": filename,
            "set_storage_key": storage_key,
            "set_size_bytes": size_bytes,
            "set_content_type": content_type,
            "set_sha256": sha256,
        }

    def list_for_session(self, session_uuid: uuid.UUID) -> list[UploadedFile]:
        """A session's live uploads, oldest first (ties by id)."""
        self._check("list_for_session", session_uuid=session_uuid)
        return self._all(_LIST_FOR_SESSION, {"session_uuid": session_uuid})

    def list_rows_for_session(self, session_uuid: uuid.UUID) -> Sequence[Row[Any]]:
        """``list_for_session`` as rows of columns."""
        self._check("list_rows_for_session", session_uuid=session_uuid)
        return self._rows(_LIST_FOR_SESSION, {"session_uuid": session_uuid})

    def total_bytes(self, session_uuid: uuid.UUID) -> int:
        """The sizes of a session's live uploads, summed (0 when there are none)."""
        self._check("total_bytes", session_uuid=session_uuid)
        return int(self._scalar(_TOTAL_BYTES, {"session_uuid": session_uuid}))

    def stats(self, limit: int = 20) -> list[UploadStats]:
        """Per session with live uploads: count, bytes and latest upload; biggest first.

        Ties on bytes are broken by session uuid ascending.
        """
        if limit < 0:
            raise ValueError(f"{self._where('stats')}: limit must not be negative, not {limit}")
        return [
            UploadStats(
                row.session_uuid, row.name, row.file_count, row.total_bytes, row.last_upload_at
            )
            for row in self._rows(_STATS, {"limit": limit})
        ]
