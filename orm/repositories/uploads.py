"""ORM side: metadata of the files a session uploaded, replacing legacy/uploads.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

from sqlalchemy import BigInteger, Row, bindparam, cast, func, insert, select

from orm.models import UploadedFile, UserSession
from orm.repositories.base import BaseRepository, RowView
from orm.repositories.operation import operation
from orm.repositories.uuids import as_uuid

__all__ = ["UploadStats", "UploadedFileOperations", "UploadedFileRepository", "UploadedFileRows"]

ReadT = TypeVar("ReadT")


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


class UploadedFileOperations(BaseRepository[UploadedFile, ReadT]):
    """Uploaded files' metadata: every operation, whichever view reads return.

    Use ``UploadedFileRepository`` (instances) or ``UploadedFileRows`` (rows).
    Deleting one is a soft delete (deleted_at), hidden from reads. Inherited
    and meant for use here: ``get_by_id(id)`` (live uploads only) and
    ``delete(id)`` (soft; False when missing or already deleted). Every
    ``session_uuid`` is a ``uuid.UUID`` or its text in any spelling
    PostgreSQL accepts.
    """

    model = UploadedFile

    @operation
    def record(
        self,
        session_uuid: uuid.UUID | str,
        filename: str,
        storage_key: str,
        size_bytes: int,
        content_type: str | None,
        sha256: str,
    ) -> ReadT:
        """Record an uploaded file's metadata and return the stored row."""
        # Bound as set_<column>, the names _RECORD's parameters have.
        _, params = self._model.set_values(
            {
                "session_uuid": session_uuid,
                "filename": filename,
                "storage_key": storage_key,
                "size_bytes": size_bytes,
                "content_type": content_type,
                "sha256": sha256,
            },
            self._where("record"),
        )
        recorded = self._one(_RECORD, params)
        assert recorded is not None  # INSERT ... RETURNING returns the row or raises
        return recorded

    @operation
    def list_for_session(self, session_uuid: uuid.UUID | str) -> list[ReadT]:
        """A session's live uploads, oldest first (ties by id)."""
        key = self._session_key(session_uuid, "list_for_session")
        return self._all(_LIST_FOR_SESSION, {"session_uuid": key})

    @operation
    def total_bytes(self, session_uuid: uuid.UUID | str) -> int:
        """The sizes of a session's live uploads, summed (0 when there are none)."""
        key = self._session_key(session_uuid, "total_bytes")
        return int(self._scalar(_TOTAL_BYTES, {"session_uuid": key}))

    @operation
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

    def _session_key(self, session_uuid: uuid.UUID | str, method: str) -> uuid.UUID:
        """The session_uuid argument as a UUID (its text parsed), before any SQL runs."""
        if type(session_uuid) is uuid.UUID:
            return session_uuid
        return as_uuid(session_uuid, self._where(method), "session_uuid")


class UploadedFileRepository(UploadedFileOperations[UploadedFile]):
    """Uploaded files' metadata as UploadedFile instances; ``rows`` is the same on rows."""

    @property
    def rows(self) -> UploadedFileRows:
        """The row view on the same session (or standalone, as this one is)."""
        return UploadedFileRows(self._session)


class UploadedFileRows(RowView[UploadedFile], UploadedFileOperations[Row[Any]]):
    """Uploaded files' metadata as rows of uploaded_files' columns: the compat path."""
