"""Service layer: the files a session uploaded (record their metadata, list them)."""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

import psycopg2.errors

import compat
from compat import uploads, user_sessions
from compat.uploads import UploadRow
from services import inputs
from services.errors import DuplicateUpload, InvalidInput, SessionNotFound

__all__ = ["UploadService"]

_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_MAX_SIZE: Final = 2**63 - 1


class UploadService:
    """Records and lists upload metadata; the bytes themselves live in object storage."""

    def record(
        self,
        session_uuid: str,
        *,
        filename: Any,
        size_bytes: Any,
        sha256: Any,
        content_type: Any = None,
        storage_key: Any = None,
    ) -> UploadRow:
        """Record one uploaded file of the session and return the stored row.

        Without ``storage_key`` one is made from the session and a random id,
        never from the file name (which may be personal).
        """
        clean_name = inputs.text("filename", filename, max_length=255)
        size = inputs.integer("size_bytes", size_bytes, minimum=0, maximum=_MAX_SIZE)
        if not isinstance(sha256, str) or _SHA256.fullmatch(sha256.lower()) is None:
            raise InvalidInput("sha256", "must be 64 hexadecimal digits")
        kind = None if content_type is None else inputs.text("content_type", content_type)
        key = (
            f"sessions/{session_uuid}/{uuid.uuid4().hex}"
            if storage_key is None
            else inputs.text("storage_key", storage_key, max_length=1024)
        )
        try:
            with compat.transaction():
                if not user_sessions.check_uuid_exists(session_uuid):
                    raise SessionNotFound(session_uuid)
                return uploads.record_upload(
                    session_uuid, clean_name, key, size, kind, sha256.lower()
                )
        except psycopg2.errors.ForeignKeyViolation:
            raise SessionNotFound(session_uuid) from None  # deleted since the check
        except psycopg2.errors.UniqueViolation:
            raise DuplicateUpload(key) from None

    def list_for_session(self, session_uuid: str) -> list[UploadRow]:
        """The session's live uploads, oldest first; SessionNotFound when there is no session."""
        with compat.transaction():
            if not user_sessions.check_uuid_exists(session_uuid):
                raise SessionNotFound(session_uuid)
            return uploads.list_uploads(session_uuid)
