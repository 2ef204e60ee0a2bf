"""Compat layer: legacy.email_verification, routed between the legacy SQL and the ORM."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Row
from sqlalchemy.orm import Session

from compat.routing.declaration import Kind, Rows
from compat.routing.dispatch import facade
from compat.routing.shapes import legacy_dicts
from legacy import email_verification as legacy
from legacy.email_verification import VerificationRow
from orm.models import UserSession
from orm.repositories.email_verification import EmailVerificationRepository, EmailVerificationRows

__all__ = [
    "VerificationRow",
    "cleanup_expired_verifications",
    "get_verification",
    "increment_resend_attempts",
    "increment_verification_attempts",
    "mark_email_verified",
    "reset_verification",
    "set_verification_code",
    "verification_row",
]

_THE_SESSION = Rows("user_sessions", "uuid", "session_uuid")
_ALL_SESSIONS = Rows("user_sessions")


def verification_row(session: UserSession | Row[Any]) -> VerificationRow:
    """A session's verification state (an instance, or a row of its columns) as legacy gave it."""
    if isinstance(session, Row):
        # The row view's get() selects exactly the legacy VerificationRow's columns.
        return cast(VerificationRow, legacy_dicts([session], ("uuid",))[0])
    return {
        "uuid": str(session.uuid),
        "email": session.email,
        "verification_code": session.verification_code,
        "verification_attempts": session.verification_attempts,
        "max_verification_attempts": session.max_verification_attempts,
        "verification_expires_at": session.verification_expires_at,
        "is_email_verified": session.is_email_verified,
        "resend_attempts": session.resend_attempts,
        "max_resend_attempts": session.max_resend_attempts,
        "last_resend_at": session.last_resend_at,
    }


@facade(legacy.get_verification, kind=Kind.READ)
def get_verification(db: Session, session_uuid: str) -> VerificationRow | None:
    session = EmailVerificationRows(db).get(UUID(session_uuid))
    return None if session is None else verification_row(session)


@facade(legacy.set_verification_code, kind=Kind.WRITE, touches=(_THE_SESSION,))
def set_verification_code(db: Session, session_uuid: str, code: str, expires_at: datetime) -> bool:
    return EmailVerificationRepository(db).set_code(UUID(session_uuid), code, expires_at)


@facade(legacy.increment_verification_attempts, kind=Kind.WRITE, touches=(_THE_SESSION,))
def increment_verification_attempts(db: Session, session_uuid: str) -> bool:
    return EmailVerificationRepository(db).increment_attempts(UUID(session_uuid))


@facade(legacy.increment_resend_attempts, kind=Kind.WRITE, touches=(_THE_SESSION,))
def increment_resend_attempts(db: Session, session_uuid: str) -> bool:
    return EmailVerificationRepository(db).increment_resend_attempts(UUID(session_uuid))


@facade(legacy.mark_email_verified, kind=Kind.WRITE, touches=(_THE_SESSION,))
def mark_email_verified(db: Session, session_uuid: str) -> bool:
    return EmailVerificationRepository(db).mark_verified(UUID(session_uuid))


@facade(legacy.reset_verification, kind=Kind.WRITE, touches=(_THE_SESSION,))
def reset_verification(db: Session, session_uuid: str) -> bool:
    return EmailVerificationRepository(db).reset(UUID(session_uuid))


@facade(legacy.cleanup_expired_verifications, kind=Kind.WRITE, touches=(_ALL_SESSIONS,))
def cleanup_expired_verifications(db: Session, older_than_hours: int = 24) -> int:
    return EmailVerificationRepository(db).cleanup_expired(older_than_hours)
