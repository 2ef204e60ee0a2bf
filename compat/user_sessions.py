"""Compat layer: legacy.user_sessions' functions, routed between the legacy SQL and the ORM."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final
from uuid import UUID

from sqlalchemy.orm import Session

from compat.routing.arguments import optional, text
from compat.routing.declaration import Shape, TouchedRows
from compat.routing.dispatch import facade
from compat.routing.shapes import LegacyShape
from compat.verify import calls
from legacy import user_sessions as legacy
from legacy.user_sessions import SessionOrder, SessionRow, SessionUpdate
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

_THE_SESSION = TouchedRows("user_sessions", "uuid", "session_uuid")
_ITS_UPLOADS = TouchedRows("uploaded_files", "session_uuid", "session_uuid", order_by="id")
_ALL_SESSIONS = TouchedRows("user_sessions")


_SESSION: Final = LegacyShape(SessionRow)
session_row = _SESSION.one


@facade(
    legacy.check_uuid_exists,
    row=_THE_SESSION,
    reads=("user_sessions",),
    shape=Shape.POINT_READ,
    calls=calls.by_session,
)
def check_uuid_exists(db: Session, session_uuid: str) -> bool:
    return UserSessionRepository(db).exists(UUID(session_uuid))


@facade(
    legacy.get_session,
    row=_THE_SESSION,
    reads=("user_sessions",),
    shape=Shape.POINT_READ,
    calls=calls.by_session,
)
def get_session(db: Session, session_uuid: str) -> SessionRow | None:
    return _SESSION.optional(UserSessionRows(db).get_by_uuid(UUID(session_uuid)))


@facade(
    legacy.insert_session, shape=Shape.ROW_WRITE, touches=(_THE_SESSION,), calls=calls.new_sessions
)
def insert_session(
    db: Session,
    session_uuid: str,
    name: str,
    email: str | None,
    ip_address: str | None = None,
    consent_user_data: bool | None = False,
) -> SessionRow:
    created = UserSessionRows(db).create(
        uuid=UUID(session_uuid),
        name=name,
        email=email,
        ip_address=ip_address,
        consent_user_data=consent_user_data,
    )
    return _SESSION.one(created)


@facade(
    legacy.update_session,
    shape=Shape.ROW_WRITE,
    touches=(_THE_SESSION,),
    calls=calls.session_updates,
)
def update_session(
    db: Session, session_uuid: str, data: Annotated[Mapping[str, Any], SessionUpdate]
) -> SessionRow | None:
    return _SESSION.optional(UserSessionRows(db).update(UUID(session_uuid), dict(data)))


@facade(
    legacy.complete_session, shape=Shape.ROW_WRITE, touches=(_THE_SESSION,), calls=calls.by_session
)
def complete_session(db: Session, session_uuid: str) -> bool:
    return UserSessionRepository(db).complete(UUID(session_uuid))


@facade(
    legacy.delete_session,
    shape=Shape.ROW_DELETE,
    touches=(_THE_SESSION, _ITS_UPLOADS),
    calls=calls.by_session_with_uploads,
)
def delete_session(db: Session, session_uuid: str) -> bool:
    return UserSessionRepository(db).delete(UUID(session_uuid))


@facade(
    legacy.count_sessions, reads=("user_sessions",), shape=Shape.AGGREGATE, calls=calls.whole_table
)
def count_sessions(db: Session) -> int:
    return UserSessionRepository(db).count()


# Both paths stream through a server-side cursor, which lives in a transaction.
@facade(
    legacy.list_session_uuids,
    reads=("user_sessions",),
    shape=Shape.SCAN,
    calls=calls.whole_table,
    needs_transaction=True,
)
def list_session_uuids(db: Session) -> set[str]:
    # Streamed: only the str set the legacy contract returns is ever whole in memory.
    texts: set[str] = set()
    for batch in UserSessionRows(db).stream_uuids():
        texts.update(batch)
    return texts


@facade(
    legacy.find_sessions_by_email,
    reads=("user_sessions",),
    shape=Shape.LIST,
    calls=calls.by_email,
    # Legacy matches nothing for None (email = NULL is never true); so does the ORM.
    arguments={"email": optional(text())},
)
def find_sessions_by_email(db: Session, email: str) -> list[SessionRow]:
    return _SESSION.many(UserSessionRows(db).find_by_email(email))


@facade(legacy.list_sessions, reads=("user_sessions",), shape=Shape.PAGE, calls=calls.session_pages)
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
    return _SESSION.many(sessions)


@facade(
    legacy.delete_abandoned_sessions,
    shape=Shape.BULK_WRITE,
    touches=(_ALL_SESSIONS,),
    calls=calls.abandoned_sweeps,
)
def delete_abandoned_sessions(db: Session, older_than_hours: int) -> int:
    return UserSessionRepository(db).delete_abandoned(older_than_hours)
