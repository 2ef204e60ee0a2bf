"""Legacy side: user_sessions as the application reads and writes it today, in plain SQL."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal, TypedDict, cast

from psycopg2 import sql

from legacy.db import execute, fetch_all, fetch_batches, fetch_one

__all__ = [
    "ORDERS",
    "UPDATABLE_FIELDS",
    "SessionOrder",
    "SessionRow",
    "SessionUpdate",
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
    "update_session",
]


class SessionRow(TypedDict):
    """One user_sessions row as psycopg2 returns it (uuid as str, naive datetimes)."""

    uuid: str
    name: str
    email: str | None
    created_at: datetime | None
    updated_at: datetime | None
    completed_at: datetime | None
    ip_address: str | None
    consent_user_data: bool | None
    verification_code: str | None
    verification_attempts: int
    max_verification_attempts: int
    verification_expires_at: datetime | None
    is_email_verified: bool
    resend_attempts: int
    max_resend_attempts: int
    last_resend_at: datetime | None


SessionOrder = Literal["created_at", "-created_at", "name", "-name", "email", "-email"]

COLUMNS: Final = ", ".join(SessionRow.__annotations__)


class SessionUpdate(TypedDict, total=False):
    """What update_session may change: some of these fields, typed as the row stores them."""

    name: str
    email: str | None
    ip_address: str | None
    consent_user_data: bool | None
    completed_at: datetime | None


UPDATABLE_FIELDS: Final = frozenset(SessionUpdate.__annotations__)
ORDERS: Final[Mapping[str, str]] = {
    "created_at": "created_at ASC NULLS LAST",
    "-created_at": "created_at DESC NULLS LAST",
    "name": "name ASC NULLS LAST",
    "-name": "name DESC NULLS LAST",
    "email": "email ASC NULLS LAST",
    "-email": "email DESC NULLS LAST",
}


def check_uuid_exists(session_uuid: str) -> bool:
    """Tell whether a session with this uuid exists."""
    row = fetch_one("SELECT EXISTS (SELECT 1 FROM user_sessions WHERE uuid = %s)", (session_uuid,))
    return bool(row and row["exists"])


def get_session(session_uuid: str) -> SessionRow | None:
    """Return the session's row, or None when there is none."""
    row = fetch_one(f"SELECT {COLUMNS} FROM user_sessions WHERE uuid = %s", (session_uuid,))
    return cast(SessionRow | None, row)


def insert_session(
    session_uuid: str,
    name: str,
    email: str | None,
    ip_address: str | None = None,
    consent_user_data: bool | None = False,
) -> SessionRow:
    """Insert a new session and return the row as stored (with its defaults)."""
    row = fetch_one(
        f"INSERT INTO user_sessions (uuid, name, email, ip_address, consent_user_data) "
        f"VALUES (%s, %s, %s, %s, %s) RETURNING {COLUMNS}",
        (session_uuid, name, email, ip_address, consent_user_data),
    )
    return cast(SessionRow, row)


def update_session(
    session_uuid: str, data: Annotated[Mapping[str, Any], SessionUpdate]
) -> SessionRow | None:
    """Update some of name, email, ip_address, consent_user_data, completed_at.

    Sets updated_at to the transaction's time. Returns the updated row, or None
    when the session does not exist. Any other key raises ValueError.
    """
    values = data
    unknown = set(values) - UPDATABLE_FIELDS
    if unknown:
        raise ValueError(
            f"update_session: cannot update {sorted(unknown)}; "
            f"updatable fields are {sorted(UPDATABLE_FIELDS)}"
        )
    fields = sorted(values)
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(field), sql.Placeholder(field)) for field in fields
    ]
    assignments.append(sql.SQL("updated_at = CURRENT_TIMESTAMP"))
    query = sql.SQL("UPDATE user_sessions SET {} WHERE uuid = %(uuid)s RETURNING {}").format(
        sql.SQL(", ").join(assignments), sql.SQL(COLUMNS)
    )
    row = fetch_one(query, {**{field: values[field] for field in fields}, "uuid": session_uuid})
    return cast(SessionRow | None, row)


def complete_session(session_uuid: str) -> bool:
    """Set completed_at, once. False when the session is missing or already completed."""
    count = execute(
        "UPDATE user_sessions SET completed_at = CURRENT_TIMESTAMP, updated_at = CURRENT_TIMESTAMP "
        "WHERE uuid = %s AND completed_at IS NULL",
        (session_uuid,),
    )
    return count == 1


def delete_session(session_uuid: str) -> bool:
    """Delete the session (its uploads go with it). False when it did not exist."""
    return execute("DELETE FROM user_sessions WHERE uuid = %s", (session_uuid,)) == 1


def count_sessions() -> int:
    """Count every session."""
    row = fetch_one("SELECT count(*) AS count FROM user_sessions")
    return int(row["count"]) if row else 0


def list_session_uuids() -> set[str]:
    """Return the uuid of every session.

    Streamed in batches of 10,000 (the one change made to legacy code for the
    migration, for memory: fetch_all held every row as a dict, ~790 MB for a
    million sessions); the result, a set of str, is the same.
    """
    uuids: set[str] = set()
    for rows in fetch_batches("SELECT uuid FROM user_sessions"):
        uuids.update(session_uuid for (session_uuid,) in rows)
    return uuids


def find_sessions_by_email(email: str) -> list[SessionRow]:
    """Return the sessions whose email matches, ignoring case, oldest first (ties by uuid)."""
    rows = fetch_all(
        f"SELECT {COLUMNS} FROM user_sessions WHERE lower(email) = lower(%s) "
        f"ORDER BY created_at ASC NULLS LAST, uuid ASC",
        (email,),
    )
    return cast(list[SessionRow], rows)


def list_sessions(
    *,
    limit: int = 50,
    offset: int = 0,
    verified: bool | None = None,
    completed: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    order: SessionOrder = "-created_at",
) -> list[SessionRow]:
    """Return one page of sessions.

    Filters combine with AND: ``verified`` on is_email_verified, ``completed``
    on whether completed_at is set, ``created_after <= created_at <
    created_before``. ``order`` is a column, descending with a leading ``-``;
    NULLs sort last and ties are broken by uuid ascending.
    """
    if order not in ORDERS:
        raise ValueError(f"list_sessions: order must be one of {sorted(ORDERS)}, not {order!r}")
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if verified is not None:
        conditions.append("is_email_verified = %(verified)s")
        params["verified"] = verified
    if completed is not None:
        conditions.append("completed_at IS NOT NULL" if completed else "completed_at IS NULL")
    if created_after is not None:
        conditions.append("created_at >= %(created_after)s")
        params["created_after"] = created_after
    if created_before is not None:
        conditions.append("created_at < %(created_before)s")
        params["created_before"] = created_before
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    rows = fetch_all(
        f"SELECT {COLUMNS} FROM user_sessions {where}"
        f"ORDER BY {ORDERS[order]}, uuid ASC LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    return cast(list[SessionRow], rows)


def delete_abandoned_sessions(older_than_hours: int) -> int:
    """Delete sessions never completed and created more than N hours ago; return how many."""
    return execute(
        "DELETE FROM user_sessions WHERE completed_at IS NULL "
        "AND created_at < CURRENT_TIMESTAMP - %s * INTERVAL '1 hour'",
        (older_than_hours,),
    )
