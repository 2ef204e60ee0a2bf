"""ORM side: email verification on user_sessions, replacing legacy/email_verification.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Final, TypeVar

from sqlalchemy import (
    DateTime,
    Executable,
    Row,
    String,
    Update,
    bindparam,
    false,
    not_,
    null,
    select,
    true,
    update,
)

from orm.models import UserSession
from orm.repositories.base import BaseRepository, RowView
from orm.repositories.clock import hours_ago, now
from orm.repositories.mapping import PK_PARAM
from orm.repositories.operation import operation

__all__ = [
    "EmailVerificationOperations",
    "EmailVerificationRepository",
    "EmailVerificationRows",
]

ReadT = TypeVar("ReadT")


def _set(**values: Any) -> Update:
    """UPDATE one session (by :session_uuid), stamping updated_at, as every legacy write does."""
    return (
        update(UserSession)
        .where(UserSession.uuid == bindparam("session_uuid", type_=UserSession.uuid.type))
        .values(**values, updated_at=now())
    )


_BY_KEY = UserSession.uuid == bindparam(PK_PARAM, type_=UserSession.uuid.type)
_SESSION: Final = select(UserSession).where(_BY_KEY)
# What the row view's get() reads: the legacy VerificationRow's columns alone.
_STATE: Final = select(
    UserSession.uuid,
    UserSession.email,
    UserSession.verification_code,
    UserSession.verification_attempts,
    UserSession.max_verification_attempts,
    UserSession.verification_expires_at,
    UserSession.is_email_verified,
    UserSession.resend_attempts,
    UserSession.max_resend_attempts,
    UserSession.last_resend_at,
).where(_BY_KEY)

_SET_CODE: Final = _set(
    verification_code=bindparam("code", type_=String(6)),
    verification_expires_at=bindparam("expires_at", type_=DateTime),
    verification_attempts=0,
    is_email_verified=false(),
)
_INCREMENT_ATTEMPTS: Final = _set(verification_attempts=UserSession.verification_attempts + 1)
_INCREMENT_RESEND_ATTEMPTS: Final = _set(
    resend_attempts=UserSession.resend_attempts + 1, last_resend_at=now()
)
_MARK_VERIFIED: Final = _set(
    is_email_verified=true(), verification_code=null(), verification_expires_at=null()
)
_RESET: Final = _set(
    verification_code=null(),
    verification_expires_at=null(),
    verification_attempts=0,
    resend_attempts=0,
    last_resend_at=null(),
    is_email_verified=false(),
)
_CLEANUP_EXPIRED: Final = (
    update(UserSession)
    .where(
        not_(UserSession.is_email_verified),
        UserSession.verification_expires_at < hours_ago("hours"),
    )
    .values(verification_code=null(), verification_expires_at=null(), updated_at=now())
)


class EmailVerificationOperations(BaseRepository[UserSession, ReadT]):
    """A session's email verification: its code, attempts, resends and verified flag.

    Use ``EmailVerificationRepository`` (instances) or ``EmailVerificationRows``
    (rows). Every write sets updated_at to CURRENT_TIMESTAMP and returns False
    when the session does not exist. Every ``session_uuid`` is a
    ``uuid.UUID`` or its text in any spelling PostgreSQL accepts.
    """

    model = UserSession
    key_argument = "session_uuid"
    #: What get() selects: the whole session, or (row view) the verification state.
    _get: ClassVar[Executable]

    @operation
    def get(self, session_uuid: uuid.UUID | str) -> ReadT | None:
        """The session's verification state, or None when there is no such session.

        An instance: the whole session, whose verification columns are the
        state. A row (row view): uuid, email and the verification columns alone.
        """
        return self._one(self._get, {PK_PARAM: self._key(session_uuid, "get")})

    @operation
    def set_code(self, session_uuid: uuid.UUID | str, code: str, expires_at: datetime) -> bool:
        """Store a new code and its expiry; reset the attempts and the verified flag."""
        return self._write(
            "set_code", _SET_CODE, session_uuid, {"code": code, "expires_at": expires_at}
        )

    @operation
    def increment_attempts(self, session_uuid: uuid.UUID | str) -> bool:
        """Count one more attempt at entering the code."""
        return self._write("increment_attempts", _INCREMENT_ATTEMPTS, session_uuid)

    @operation
    def increment_resend_attempts(self, session_uuid: uuid.UUID | str) -> bool:
        """Count one more resend of the code and remember when it happened."""
        return self._write("increment_resend_attempts", _INCREMENT_RESEND_ATTEMPTS, session_uuid)

    @operation
    def mark_verified(self, session_uuid: uuid.UUID | str) -> bool:
        """Mark the email verified and clear the code and its expiry."""
        return self._write("mark_verified", _MARK_VERIFIED, session_uuid)

    @operation
    def reset(self, session_uuid: uuid.UUID | str) -> bool:
        """Clear code, expiry, both attempt counters, last_resend_at and the verified flag."""
        return self._write("reset", _RESET, session_uuid)

    @operation
    def cleanup_expired(self, older_than_hours: int = 24) -> int:
        """Clear code and expiry of unverified sessions whose code expired over N hours ago."""
        return self._rowcount(_CLEANUP_EXPIRED, {"hours": older_than_hours})

    def _write(
        self,
        method: str,
        statement: Executable,
        session_uuid: uuid.UUID | str,
        params: dict[str, Any] | None = None,
    ) -> bool:
        key = self._key(session_uuid, method)
        return self._rowcount(statement, {**(params or {}), "session_uuid": key}) == 1


class EmailVerificationRepository(EmailVerificationOperations[UserSession]):
    """Email verification returning UserSession instances; ``rows`` is the same on rows."""

    _get = _SESSION

    @property
    def rows(self) -> EmailVerificationRows:
        """The row view on the same session (or standalone, as this one is)."""
        return EmailVerificationRows(self._session)


class EmailVerificationRows(RowView[UserSession], EmailVerificationOperations[Row[Any]]):
    """Email verification returning rows: get() reads the VerificationRow's columns alone."""

    _get = _STATE
