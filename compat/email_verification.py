"""Compat layer: legacy.email_verification, routed between the legacy SQL and the ORM."""

from __future__ import annotations

from datetime import datetime
from typing import Final
from uuid import UUID

from sqlalchemy.orm import Session

from compat.routing.arguments import column_text
from compat.routing.declaration import Shape, TouchedRows
from compat.routing.dispatch import facade
from compat.routing.shapes import LegacyShape
from compat.verify import calls
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

_THE_SESSION = TouchedRows("user_sessions", "uuid", "session_uuid")
_ALL_SESSIONS = TouchedRows("user_sessions")


_VERIFICATION: Final = LegacyShape(VerificationRow)
verification_row = _VERIFICATION.one


@facade(
    legacy.get_verification,
    row=_THE_SESSION,
    reads=("user_sessions",),
    shape=Shape.POINT_READ,
    calls=calls.by_session,
)
def get_verification(db: Session, session_uuid: str) -> VerificationRow | None:
    session = EmailVerificationRows(db).get(UUID(session_uuid))
    return None if session is None else _VERIFICATION.one(session)


@facade(
    legacy.set_verification_code,
    shape=Shape.ROW_WRITE,
    touches=(_THE_SESSION,),
    calls=calls.verification_codes,
    # The parameter is named unlike the column it fills.
    arguments={"code": column_text(UserSession.verification_code)},
)
def set_verification_code(db: Session, session_uuid: str, code: str, expires_at: datetime) -> bool:
    return EmailVerificationRepository(db).set_code(UUID(session_uuid), code, expires_at)


@facade(
    legacy.increment_verification_attempts,
    shape=Shape.ROW_WRITE,
    touches=(_THE_SESSION,),
    calls=calls.by_session,
)
def increment_verification_attempts(db: Session, session_uuid: str) -> bool:
    return EmailVerificationRepository(db).increment_attempts(UUID(session_uuid))


@facade(
    legacy.increment_resend_attempts,
    shape=Shape.ROW_WRITE,
    touches=(_THE_SESSION,),
    calls=calls.by_session,
)
def increment_resend_attempts(db: Session, session_uuid: str) -> bool:
    return EmailVerificationRepository(db).increment_resend_attempts(UUID(session_uuid))


@facade(
    legacy.mark_email_verified,
    shape=Shape.ROW_WRITE,
    touches=(_THE_SESSION,),
    calls=calls.by_session,
)
def mark_email_verified(db: Session, session_uuid: str) -> bool:
    return EmailVerificationRepository(db).mark_verified(UUID(session_uuid))


@facade(
    legacy.reset_verification,
    shape=Shape.ROW_WRITE,
    touches=(_THE_SESSION,),
    calls=calls.by_session,
)
def reset_verification(db: Session, session_uuid: str) -> bool:
    return EmailVerificationRepository(db).reset(UUID(session_uuid))


@facade(
    legacy.cleanup_expired_verifications,
    shape=Shape.BULK_WRITE,
    touches=(_ALL_SESSIONS,),
    calls=calls.expiry_sweeps,
)
def cleanup_expired_verifications(db: Session, older_than_hours: int = 24) -> int:
    return EmailVerificationRepository(db).cleanup_expired(older_than_hours)
