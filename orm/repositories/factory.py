"""ORM side: the repositories, bound to the caller's session or standalone (a session per call)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from orm.repositories.email_verification import EmailVerificationRepository
from orm.repositories.uploads import UploadedFileRepository
from orm.repositories.user_sessions import UserSessionRepository

__all__ = [
    "get_email_verification_repository",
    "get_uploaded_file_repository",
    "get_user_session_repository",
]


def get_user_session_repository(session: Session | None = None) -> UserSessionRepository:
    """Sessions' repository: on ``session`` (never committed), else each call commits alone."""
    return UserSessionRepository(session)


def get_email_verification_repository(
    session: Session | None = None,
) -> EmailVerificationRepository:
    """Email verification's repository: on ``session``, else each call commits alone."""
    return EmailVerificationRepository(session)


def get_uploaded_file_repository(session: Session | None = None) -> UploadedFileRepository:
    """Uploads' repository: on ``session``, else each call commits alone."""
    return UploadedFileRepository(session)
