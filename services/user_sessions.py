"""Service layer: user sessions (create, read, update, complete, page) through the facade."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import compat
from compat import email_verification, user_sessions
from compat.user_sessions import SessionRow
from services import inputs
from services.errors import InvalidInput, SessionAlreadyCompleted, SessionNotFound

__all__ = ["MAX_PAGE_SIZE", "UPDATABLE_FIELDS", "Page", "SessionService"]

T = TypeVar("T")

MAX_PAGE_SIZE: Final = 100
UPDATABLE_FIELDS: Final = frozenset({"name", "email", "consent_user_data"})
"""What a caller may change; completion has its own verb, the IP address is never edited."""
_MAX_NAME_LENGTH: Final = 200


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing and the size of the whole, read from the same snapshot."""

    items: list[T]
    total: int
    limit: int
    offset: int


class SessionService:
    """What routes do with a user session; every database call goes through the compat facade."""

    def create(
        self,
        name: Any,
        email: Any = None,
        *,
        consent_user_data: Any = False,
        ip_address: str | None = None,
    ) -> SessionRow:
        """Start a session under a new uuid and return it as stored.

        The IP address is personal data: it is kept only when the user consented.
        """
        clean_name = inputs.text("name", name, max_length=_MAX_NAME_LENGTH)
        clean_email = inputs.email("email", email)
        consent = inputs.boolean("consent_user_data", consent_user_data)
        return user_sessions.insert_session(
            str(uuid.uuid4()),
            clean_name,
            clean_email,
            ip_address if consent else None,
            consent,
        )

    def get(self, session_uuid: str) -> SessionRow:
        """The session; SessionNotFound when there is none."""
        row = user_sessions.get_session(session_uuid)
        if row is None:
            raise SessionNotFound(session_uuid)
        return row

    def check_uuid_exists(self, session_uuid: str) -> bool:
        """Tell whether a session has this uuid."""
        return user_sessions.check_uuid_exists(session_uuid)

    def update(self, session_uuid: str, changes: Mapping[str, Any]) -> SessionRow:
        """Change some of name, email and consent_user_data; return the updated session.

        A new email invalidates the verification of the old one, in the same
        transaction: a session never shows a verified flag for an address
        nobody verified. Withdrawn consent drops the stored IP address.
        """
        data = self._clean_changes(changes)
        with compat.transaction():
            current = user_sessions.get_session(session_uuid)
            if current is None:
                raise SessionNotFound(session_uuid)
            if data.get("consent_user_data") is False:
                data["ip_address"] = None
            updated = user_sessions.update_session(session_uuid, data)
            if updated is None:  # deleted between the two calls
                raise SessionNotFound(session_uuid)
            if "email" in data and data["email"] != current["email"]:
                email_verification.reset_verification(session_uuid)
                updated = self.get(session_uuid)
        return updated

    def complete(self, session_uuid: str) -> SessionRow:
        """Mark the session completed, once; return it."""
        with compat.transaction():
            if not user_sessions.complete_session(session_uuid):
                if user_sessions.check_uuid_exists(session_uuid):
                    raise SessionAlreadyCompleted(session_uuid)
                raise SessionNotFound(session_uuid)
            return self.get(session_uuid)

    def list_page(self, *, limit: Any = 50, offset: Any = 0) -> Page[SessionRow]:
        """Sessions newest first (ties by uuid), with the total, from one consistent snapshot."""
        size = inputs.integer("limit", limit, minimum=1, maximum=MAX_PAGE_SIZE)
        start = inputs.integer("offset", offset, minimum=0, maximum=2**63 - 1)
        # REPEATABLE READ: the count and the page see the same sessions, even
        # while others are being created.
        with compat.transaction(isolation_level="REPEATABLE READ"):
            items = user_sessions.list_sessions(limit=size, offset=start, order="-created_at")
            total = user_sessions.count_sessions()
        return Page(items=items, total=total, limit=size, offset=start)

    @staticmethod
    def _clean_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(changes, Mapping):
            raise InvalidInput("changes", f"must be an object, not {type(changes).__name__}")
        unknown = sorted(set(changes) - UPDATABLE_FIELDS)
        if unknown:
            raise InvalidInput(
                ", ".join(map(str, unknown)),
                f"cannot be changed; changeable fields are {', '.join(sorted(UPDATABLE_FIELDS))}",
            )
        if not changes:
            raise InvalidInput("changes", "name at least one field to change")
        data: dict[str, Any] = {}
        if "name" in changes:
            data["name"] = inputs.text("name", changes["name"], max_length=_MAX_NAME_LENGTH)
        if "email" in changes:
            data["email"] = inputs.email("email", changes["email"])
        if "consent_user_data" in changes:
            data["consent_user_data"] = inputs.boolean(
                "consent_user_data", changes["consent_user_data"]
            )
        return data
