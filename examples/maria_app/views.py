"""Example application: the JSON shape of each answer (what a client may see of a row)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from compat.uploads import UploadRow
from compat.user_sessions import SessionRow
from services import CheckResult, IssuedCode, Page

__all__ = ["check_result", "issued_code", "session", "session_page", "upload", "uploads"]

Json = dict[str, Any]


def _time(value: datetime | None) -> str | None:
    # The data layer returns naive datetimes holding UTC: say so on the wire.
    return None if value is None else value.isoformat() + "Z"


def session(row: SessionRow) -> Json:
    """A session as its owner sees it: never the pending code, never the stored IP address."""
    return {
        "uuid": row["uuid"],
        "name": row["name"],
        "email": row["email"],
        "consent_user_data": row["consent_user_data"],
        "created_at": _time(row["created_at"]),
        "updated_at": _time(row["updated_at"]),
        "completed_at": _time(row["completed_at"]),
        "email_verified": row["is_email_verified"],
        "verification": {
            "code_pending": row["verification_code"] is not None,
            "expires_at": _time(row["verification_expires_at"]),
            "attempts": row["verification_attempts"],
            "max_attempts": row["max_verification_attempts"],
            "resend_attempts": row["resend_attempts"],
            "max_resend_attempts": row["max_resend_attempts"],
            "last_resend_at": _time(row["last_resend_at"]),
        },
    }


def session_page(page: Page[SessionRow]) -> Json:
    """One page of sessions, with what a client needs to ask for the next."""
    return {
        "items": [session(row) for row in page.items],
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    }


def upload(row: UploadRow) -> Json:
    """An upload's metadata."""
    return {
        "id": row["id"],
        "session_uuid": row["session_uuid"],
        "filename": row["filename"],
        "storage_key": row["storage_key"],
        "size_bytes": row["size_bytes"],
        "content_type": row["content_type"],
        "sha256": row["sha256"],
        "uploaded_at": _time(row["uploaded_at"]),
    }


def uploads(rows: list[UploadRow]) -> Json:
    """A session's uploads, oldest first."""
    return {"items": [upload(row) for row in rows]}


def issued_code(issued: IssuedCode) -> Json:
    """That a code was sent, and until when it is good; never the code."""
    return {
        "session_uuid": issued.session_uuid,
        "expires_at": _time(issued.expires_at),
        "resend_attempts": issued.resend_attempts,
        "max_resend_attempts": issued.max_resend_attempts,
    }


def check_result(result: CheckResult) -> Json:
    """The outcome of one attempt at the code."""
    return {"verified": result.verified, "attempts_remaining": result.attempts_remaining}
