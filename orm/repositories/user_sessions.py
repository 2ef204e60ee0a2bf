"""ORM side: user_sessions, replacing legacy/user_sessions.py operation for operation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal, TypeAlias, get_args

from sqlalchemy import Row, Text, bindparam, cast, delete, func, select, update

from orm.models import UserSession
from orm.repositories.base import BaseRepository
from orm.repositories.clock import hours_ago, now
from orm.repositories.mapping import PK_PARAM
from orm.repositories.query import Filter

__all__ = ["SESSION_ORDERS", "UPDATABLE_FIELDS", "SessionOrder", "UserSessionRepository"]

SessionOrder: TypeAlias = Literal["created_at", "-created_at", "name", "-name", "email", "-email"]
SESSION_ORDERS: Final[frozenset[str]] = frozenset(get_args(SessionOrder))
UPDATABLE_FIELDS: Final = frozenset(
    {"name", "email", "ip_address", "consent_user_data", "completed_at"}
)

_BY_UUID = UserSession.uuid == bindparam("session_uuid", type_=UserSession.uuid.type)

_COMPLETE = (
    update(UserSession)
    .where(_BY_UUID, UserSession.completed_at.is_(None))
    .values(completed_at=now(), updated_at=now())
)
_LIST_UUIDS = select(UserSession.uuid)
# As text in the server: psycopg2 then builds each str in C, no UUID object per row.
_LIST_UUID_TEXTS = select(cast(UserSession.uuid, Text))
_FIND_BY_EMAIL = (
    select(UserSession)
    .where(func.lower(UserSession.email) == func.lower(bindparam("email", type_=Text)))
    .order_by(UserSession.created_at.asc().nulls_last(), UserSession.uuid.asc())
)
_DELETE_ABANDONED = delete(UserSession).where(
    UserSession.completed_at.is_(None), UserSession.created_at < hours_ago("hours")
)


class UserSessionRepository(BaseRepository[UserSession]):
    """Chat sessions: the rows of user_sessions.

    Inherited and meant for use here: ``exists(uuid)``, ``create(**columns)``
    (legacy insert_session passes uuid, name, email, ip_address,
    consent_user_data), ``create_many(rows)``, ``delete(uuid)`` (for good; the
    database cascades to the uploads) and ``count()``.
    """

    model = UserSession

    def get_by_uuid(self, session_uuid: uuid.UUID) -> UserSession | None:
        """The session, or None when there is none."""
        self._check_key(session_uuid, "get_by_uuid")
        return self._one(self._model.get_by_id, {PK_PARAM: session_uuid})

    def update(self, session_uuid: uuid.UUID, data: Mapping[str, Any], /) -> UserSession | None:
        """Set some of name, email, ip_address, consent_user_data, completed_at; return the row.

        updated_at becomes CURRENT_TIMESTAMP, even when ``data`` is empty. None
        when the session does not exist; any other key raises ValueError.
        """
        self._check_updatable(data, "update")
        return super().update(session_uuid, data)

    def update_row(self, session_uuid: uuid.UUID, data: Mapping[str, Any], /) -> Row[Any] | None:
        """``update`` returning the new row as columns (see BaseRepository.get_row)."""
        self._check_updatable(data, "update_row")
        return super().update_row(session_uuid, data)

    def _check_updatable(self, data: Mapping[str, Any], method: str) -> None:
        unknown = set(data) - UPDATABLE_FIELDS
        if unknown:
            raise ValueError(
                f"{self._where(method)}: cannot update {sorted(unknown)}; "
                f"updatable fields are {sorted(UPDATABLE_FIELDS)}"
            )

    def complete(self, session_uuid: uuid.UUID) -> bool:
        """Set completed_at, once. False when the session is missing or already completed."""
        self._check_key(session_uuid, "complete")
        return self._rowcount(_COMPLETE, {"session_uuid": session_uuid}) == 1

    def list_uuids(self) -> set[uuid.UUID]:
        """The uuid of every session."""
        found: set[uuid.UUID] = set()
        for batch in self.stream_uuids():
            found.update(batch)
        return found

    def stream_uuids(self) -> Iterator[Sequence[uuid.UUID]]:
        """The uuid of every session, in batches of up to 10,000, read through a server-side cursor.

        Memory stays flat however many sessions there are. Consume it to the
        end while the session is open.
        """
        return self._stream_scalars(_LIST_UUIDS, {})

    def stream_uuid_texts(self) -> Iterator[Sequence[str]]:
        """``stream_uuids`` in the canonical text form (lower case, hyphenated), for str callers."""
        return self._stream_scalars(_LIST_UUID_TEXTS, {})

    def find_by_email(self, email: str) -> list[UserSession]:
        """Sessions whose email matches ignoring case; oldest first (NULLs last), ties by uuid."""
        return self._all(_FIND_BY_EMAIL, {"email": email})

    def find_rows_by_email(self, email: str) -> Sequence[Row[Any]]:
        """``find_by_email`` as rows of columns."""
        return self._rows(_FIND_BY_EMAIL, {"email": email})

    def list_sessions(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        verified: bool | None = None,
        completed: bool | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        order: SessionOrder = "-created_at",
    ) -> list[UserSession]:
        """One page of sessions.

        Filters combine with AND: ``verified`` on is_email_verified,
        ``completed`` on whether completed_at is set, ``created_after <=
        created_at < created_before``. ``order`` is a column, descending with
        a leading ``-``; NULLs sort last and ties are broken by uuid ascending.
        """
        filters = self._session_filters(
            "list_sessions", verified, completed, created_after, created_before, order
        )
        return self.list(filters, order=order, limit=limit, offset=offset)

    def list_session_rows(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        verified: bool | None = None,
        completed: bool | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        order: SessionOrder = "-created_at",
    ) -> Sequence[Row[Any]]:
        """``list_sessions`` as rows of columns."""
        filters = self._session_filters(
            "list_session_rows", verified, completed, created_after, created_before, order
        )
        return self.list_rows(filters, order=order, limit=limit, offset=offset)

    def _session_filters(
        self,
        method: str,
        verified: bool | None,
        completed: bool | None,
        created_after: datetime | None,
        created_before: datetime | None,
        order: str,
    ) -> list[Filter]:
        if order not in SESSION_ORDERS:
            raise ValueError(
                f"{self._where(method)}: order must be one of "
                f"{sorted(SESSION_ORDERS)}, not {order!r}"
            )
        filters: list[Filter] = []
        if verified is not None:
            filters.append(Filter("is_email_verified", "eq", verified))
        if completed is not None:
            filters.append(Filter("completed_at", "is_null", not completed))
        if created_after is not None:
            filters.append(Filter("created_at", "ge", created_after))
        if created_before is not None:
            filters.append(Filter("created_at", "lt", created_before))
        return filters

    def delete_abandoned(self, older_than_hours: int) -> int:
        """Delete sessions never completed and created over N hours ago; return how many."""
        return self._rowcount(_DELETE_ABANDONED, {"hours": older_than_hours})
