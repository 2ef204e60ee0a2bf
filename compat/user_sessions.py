"""Compat layer: legacy.user_sessions' functions, routed between the legacy SQL and the ORM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Row
from sqlalchemy.orm import Session

from compat.routing.arguments import choice
from compat.routing.declaration import Kind, Rows
from compat.routing.dispatch import facade
from compat.routing.shapes import legacy_dicts
from legacy import user_sessions as legacy
from legacy.user_sessions import SessionOrder, SessionRow
from orm.models import UserSession
from orm.repositories.user_sessions import UserSessionRepository, UserSessionRows

__all__ = [
    "SessionRow",
    "check_uuid_exists",
    "complete_session",
    "count_sessions",
    "delete_abandoned_sessions",
    "delete_session",
    "find_sessions_by_email",
    "get_session",
    "insert_session",
    "list_session_uuids",
    "list_sessions",
    "session_row",
    "update_session",
]

_THE_SESSION = Rows("user_sessions", "uuid", "session_uuid")
_ITS_UPLOADS = Rows("uploaded_files", "session_uuid", "session_uuid", order_by="id")
_ALL_SESSIONS = Rows("user_sessions")


def session_row(session: UserSession | Row[Any]) -> SessionRow:
    """A UserSession (or a row of its columns) as the legacy code returned it: uuid as str."""
    if isinstance(session, Row):
        return _session_rows([session])[0]
    return {
        "uuid": str(session.uuid),
        "name": session.name,
        "email": session.email,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "completed_at": session.completed_at,
        "ip_address": session.ip_address,
        "consent_user_data": session.consent_user_data,
        "verification_code": session.verification_code,
        "verification_attempts": session.verification_attempts,
        "max_verification_attempts": session.max_verification_attempts,
        "verification_expires_at": session.verification_expires_at,
        "is_email_verified": session.is_email_verified,
        "resend_attempts": session.resend_attempts,
        "max_resend_attempts": session.max_resend_attempts,
        "last_resend_at": session.last_resend_at,
    }


def _session_rows(rows: Sequence[Row[Any]]) -> list[SessionRow]:
    # The repositories' row views select the model's columns, which are
    # named and typed as the legacy SessionRow; parity checks that they agree.
    return cast(list[SessionRow], legacy_dicts(rows, ("uuid",)))


def _optional_row(session: UserSession | Row[Any] | None) -> SessionRow | None:
    return None if session is None else session_row(session)


@facade(legacy.check_uuid_exists, kind=Kind.READ)
def check_uuid_exists(db: Session, session_uuid: str) -> bool:
    return UserSessionRepository(db).exists(UUID(session_uuid))


@facade(legacy.get_session, kind=Kind.READ)
def get_session(db: Session, session_uuid: str) -> SessionRow | None:
    return _optional_row(UserSessionRows(db).get_by_uuid(UUID(session_uuid)))


@facade(legacy.insert_session, kind=Kind.WRITE, touches=(_THE_SESSION,))
def insert_session(
    db: Session,
    session_uuid: str,
    name: str,
    email: str | None,
    ip_address: str | None = None,
    consent_user_data: bool = False,
) -> SessionRow:
    created = UserSessionRows(db).create(
        uuid=UUID(session_uuid),
        name=name,
        email=email,
        ip_address=ip_address,
        consent_user_data=consent_user_data,
    )
    return session_row(created)


@facade(legacy.update_session, kind=Kind.WRITE, touches=(_THE_SESSION,))
def update_session(db: Session, session_uuid: str, data: Mapping[str, Any]) -> SessionRow | None:
    return _optional_row(UserSessionRows(db).update(UUID(session_uuid), dict(data)))


@facade(legacy.complete_session, kind=Kind.WRITE, touches=(_THE_SESSION,))
def complete_session(db: Session, session_uuid: str) -> bool:
    return UserSessionRepository(db).complete(UUID(session_uuid))


@facade(legacy.delete_session, kind=Kind.WRITE, touches=(_THE_SESSION, _ITS_UPLOADS))
def delete_session(db: Session, session_uuid: str) -> bool:
    return UserSessionRepository(db).delete(UUID(session_uuid))


@facade(legacy.count_sessions, kind=Kind.READ)
def count_sessions(db: Session) -> int:
    return UserSessionRepository(db).count()


# Both paths stream through a server-side cursor, which lives in a transaction.
@facade(legacy.list_session_uuids, kind=Kind.READ, needs_transaction=True)
def list_session_uuids(db: Session) -> set[str]:
    # Streamed: only the str set the legacy contract returns is ever whole in memory.
    texts: set[str] = set()
    for batch in UserSessionRows(db).stream_uuids():
        texts.update(batch)
    return texts


@facade(legacy.find_sessions_by_email, kind=Kind.READ)
def find_sessions_by_email(db: Session, email: str) -> list[SessionRow]:
    return _session_rows(UserSessionRows(db).find_by_email(email))


@facade(legacy.list_sessions, kind=Kind.READ, arguments={"order": choice(legacy.ORDERS)})
def list_sessions(
    db: Session,
    *,
    limit: int = 50,
    offset: int = 0,
    verified: bool | None = None,
    completed: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    order: SessionOrder = "-created_at",
) -> list[SessionRow]:
    sessions = UserSessionRows(db).list_sessions(
        limit=limit,
        offset=offset,
        verified=verified,
        completed=completed,
        created_after=created_after,
        created_before=created_before,
        order=order,
    )
    return _session_rows(sessions)


@facade(legacy.delete_abandoned_sessions, kind=Kind.WRITE, touches=(_ALL_SESSIONS,))
def delete_abandoned_sessions(db: Session, older_than_hours: int) -> int:
    return UserSessionRepository(db).delete_abandoned(older_than_hours)
