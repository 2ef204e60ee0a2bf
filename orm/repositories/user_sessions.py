"""ORM side: user_sessions, replacing legacy/user_sessions.py operation for operation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Final, Generic, Literal, TypeAlias, TypeVar, get_args

from sqlalchemy import Executable, Row, Text, bindparam, cast, delete, func, select, update

from orm.models import UserSession
from orm.repositories.base import BaseRepository, RowView
from orm.repositories.clock import hours_ago, now
from orm.repositories.mapping import PK_PARAM
from orm.repositories.operation import operation
from orm.repositories.query import Filter, insert_statement

__all__ = [
    "SESSION_ORDERS",
    "UPDATABLE_FIELDS",
    "SessionOrder",
    "UserSessionOperations",
    "UserSessionRepository",
    "UserSessionRows",
]

ReadT = TypeVar("ReadT")
#: How stream_uuids hands out uuids: uuid.UUID, or (the row view) their canonical text.
UuidT = TypeVar("UuidT", uuid.UUID, str)

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


class UserSessionOperations(BaseRepository[UserSession, ReadT], Generic[ReadT, UuidT]):
    """Chat sessions, the rows of user_sessions: every operation, whichever view reads return.

    Use ``UserSessionRepository`` (instances) or ``UserSessionRows`` (rows).
    Inherited and meant for use here: ``create_many(rows)`` and ``count()``.
    Every ``session_uuid`` is a ``uuid.UUID`` or its text in any spelling
    PostgreSQL accepts. ``exists`` and ``delete`` are BaseRepository's,
    restated only to type their argument.
    """

    model = UserSession
    key_argument = "session_uuid"
    #: What stream_uuids selects: the uuids, or their text.
    _uuids: ClassVar[Executable]

    @operation
    def get_by_uuid(self, session_uuid: uuid.UUID | str) -> ReadT | None:
        """The session, or None when there is none."""
        key = self._key(session_uuid, "get_by_uuid")
        return self._one(self._model.get_by_id, {PK_PARAM: key})

    @operation
    def exists(self, session_uuid: uuid.UUID | str, /) -> bool:
        """Whether the session exists."""
        key = self._key(session_uuid, "exists")
        return bool(self._scalar(self._model.exists, {PK_PARAM: key}))

    @operation
    def create(self, /, *, session_uuid: uuid.UUID | str | None = None, **values: Any) -> ReadT:
        """Insert a session from column values; return it as stored, with its defaults.

        The key is ``uuid=`` (the column) or ``session_uuid=`` (as the rest of
        the API names it), not both. Legacy insert_session passes uuid, name,
        email, ip_address and consent_user_data.
        """
        if session_uuid is not None:
            if "uuid" in values:
                raise ValueError(
                    f"{self._where('create')}: give the key once, as uuid= or as "
                    f"session_uuid=, not both"
                )
            values["uuid"] = self._key(session_uuid, "create")
        keys, params = self._model.set_values(values, self._where("create"))
        created = self._one(insert_statement(self._model, keys), params)
        assert created is not None  # INSERT ... RETURNING returns the row or raises
        return created

    @operation
    def update(self, session_uuid: uuid.UUID | str, data: Mapping[str, Any]) -> ReadT | None:
        """Set some of name, email, ip_address, consent_user_data, completed_at; return the row.

        updated_at becomes CURRENT_TIMESTAMP, even when ``data`` is empty. None
        when the session does not exist; any other key raises ValueError.
        """
        unknown = set(data) - UPDATABLE_FIELDS
        if unknown:
            raise ValueError(
                f"{self._where('update')}: cannot update {sorted(unknown)}; "
                f"updatable fields are {sorted(UPDATABLE_FIELDS)}"
            )
        return super().update(session_uuid, data)

    @operation
    def delete(self, session_uuid: uuid.UUID | str, /) -> bool:
        """Delete the session for good (the database cascades to its uploads); False if missing."""
        key = self._key(session_uuid, "delete")
        return self._rowcount(self._model.delete, {PK_PARAM: key}) == 1

    @operation
    def complete(self, session_uuid: uuid.UUID | str) -> bool:
        """Set completed_at, once. False when the session is missing or already completed."""
        key = self._key(session_uuid, "complete")
        return self._rowcount(_COMPLETE, {"session_uuid": key}) == 1

    @operation
    def list_uuids(self) -> set[UuidT]:
        """The uuid of every session."""
        found: set[UuidT] = set()
        for batch in self.stream_uuids():
            found.update(batch)
        return found

    @operation
    def stream_uuids(self) -> Iterator[Sequence[UuidT]]:
        """The uuid of every session, in batches of up to 10,000, read through a server-side cursor.

        The row view streams their canonical text (lower case, hyphenated),
        built by the server: no UUID object per row. Memory stays flat however
        many sessions there are. Consume it to the end while the session is open.
        """
        return self._stream_scalars(self._uuids, {})

    @operation
    def find_by_email(self, email: str) -> list[ReadT]:
        """Sessions whose email matches ignoring case; oldest first (NULLs last), ties by uuid."""
        return self._all(_FIND_BY_EMAIL, {"email": email})

    @operation
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
    ) -> list[ReadT]:
        """One page of sessions.

        Filters combine with AND: ``verified`` on is_email_verified,
        ``completed`` on whether completed_at is set, ``created_after <=
        created_at < created_before``. ``order`` is a column, descending with
        a leading ``-``; NULLs sort last and ties are broken by uuid ascending.
        """
        if order not in SESSION_ORDERS:
            raise ValueError(
                f"{self._where('list_sessions')}: order must be one of "
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
        statement, params = self._select(
            "list_sessions",
            filters,
            order=order,
            limit=limit,
            offset=offset,
            after=None,
            count=False,
        )
        return self._all(statement, params)

    @operation
    def delete_abandoned(self, older_than_hours: int) -> int:
        """Delete sessions never completed and created over N hours ago; return how many."""
        return self._rowcount(_DELETE_ABANDONED, {"hours": older_than_hours})


class UserSessionRepository(UserSessionOperations[UserSession, uuid.UUID]):
    """Chat sessions as UserSession instances; ``rows`` is the same on rows of columns.

    ``get_user_session_repository()`` or ``UserSessionRepository()`` commits
    each call on its own; ``UserSessionRepository(session)`` runs in the
    caller's session. ``UserSessionRepository.get_by_uuid(key)`` on the
    class is a standalone call too.
    """

    _uuids = _LIST_UUIDS

    @property
    def rows(self) -> UserSessionRows:
        """The row view on the same session (or standalone, as this one is)."""
        return UserSessionRows(self._session)


class UserSessionRows(RowView[UserSession], UserSessionOperations[Row[Any], str]):
    """Chat sessions as rows of user_sessions' columns (uuids stream as text): the compat path."""

    _uuids = _LIST_UUID_TEXTS
