"""Legacy side: the email-verification columns of user_sessions, in plain SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Final, TypedDict, cast

from legacy.db import execute, fetch_one

__all__ = [
    "VerificationRow",
    "cleanup_expired_verifications",
    "get_verification",
    "increment_resend_attempts",
    "increment_verification_attempts",
    "mark_email_verified",
    "reset_verification",
    "set_verification_code",
]


class VerificationRow(TypedDict):
    """A session's email-verification state as psycopg2 returns it."""

    uuid: str
    email: str | None
    verification_code: str | None
    verification_attempts: int
    max_verification_attempts: int
    verification_expires_at: datetime | None
    is_email_verified: bool
    resend_attempts: int
    max_resend_attempts: int
    last_resend_at: datetime | None


COLUMNS: Final = ", ".join(VerificationRow.__annotations__)


def _update(assignments: str, session_uuid: str, *values: object) -> bool:
    count = execute(
        f"UPDATE user_sessions SET {assignments}, updated_at = CURRENT_TIMESTAMP WHERE uuid = %s",
        (*values, session_uuid),
    )
    return count == 1


def get_verification(session_uuid: str) -> VerificationRow | None:
    """Return the session's verification state, or None when there is no such session."""
    row = fetch_one(f"SELECT {COLUMNS} FROM user_sessions WHERE uuid = %s", (session_uuid,))
    return cast(VerificationRow | None, row)


def set_verification_code(session_uuid: str, code: str, expires_at: datetime) -> bool:
    """Store a new code and its expiry; reset the attempts and the verified flag."""
    return _update(
        "verification_code = %s, verification_expires_at = %s, "
        "verification_attempts = 0, is_email_verified = FALSE",
        session_uuid,
        code,
        expires_at,
    )


def increment_verification_attempts(session_uuid: str) -> bool:
    """Count one more attempt at entering the code."""
    return _update("verification_attempts = verification_attempts + 1", session_uuid)


def increment_resend_attempts(session_uuid: str) -> bool:
    """Count one more resend of the code and remember when it happened."""
    return _update(
        "resend_attempts = resend_attempts + 1, last_resend_at = CURRENT_TIMESTAMP", session_uuid
    )


def mark_email_verified(session_uuid: str) -> bool:
    """Mark the email verified and clear the code and its expiry."""
    return _update(
        "is_email_verified = TRUE, verification_code = NULL, verification_expires_at = NULL",
        session_uuid,
    )


def reset_verification(session_uuid: str) -> bool:
    """Clear the code, its expiry, both attempt counters, last_resend_at and the verified flag."""
    return _update(
        "verification_code = NULL, verification_expires_at = NULL, verification_attempts = 0, "
        "resend_attempts = 0, last_resend_at = NULL, is_email_verified = FALSE",
        session_uuid,
    )


def cleanup_expired_verifications(older_than_hours: int = 24) -> int:
    """Clear code and expiry of unverified sessions whose code expired over N hours ago."""
    return execute(
        "UPDATE user_sessions SET verification_code = NULL, verification_expires_at = NULL, "
        "updated_at = CURRENT_TIMESTAMP "
        "WHERE NOT is_email_verified "
        "AND verification_expires_at < CURRENT_TIMESTAMP - %s * INTERVAL '1 hour'",
        (older_than_hours,),
    )
