"""Parity suite: what a case is (a call, the rows it runs on, what it proves), and its seeding."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg2.extensions

__all__ = [
    "SEEDED_AT",
    "Arrange",
    "Call",
    "Case",
    "Expect",
    "Seed",
    "Tag",
    "after",
    "call",
    "case",
    "fixed_uuid",
    "has_length",
    "returns",
    "row_of",
    "rows_of",
]


class Tag(StrEnum):
    """What a case covers; the coverage meta-test wants more than ``happy`` for every function."""

    HAPPY = "happy"
    MISSING = "missing"
    """The row asked for does not exist."""
    EMPTY = "empty"
    """Nothing to return: an empty table, a limit of zero."""
    NULL = "null"
    """NULL columns, or None arguments."""
    UNICODE = "unicode"
    LONGEST = "longest"
    """The longest or largest value a column or argument takes."""
    TIES = "ties"
    """Rows equal on the ordering column: the tie-breaker decides."""
    PAST_END = "past_end"
    """An offset or a page beyond the last row."""
    NO_MATCH = "no_match"
    """A filter that matches nothing."""
    BOUNDARY = "boundary"
    """A value exactly on a comparison's edge (``<`` against ``<=``)."""
    REPEATED = "repeated"
    """The second of two identical writes (already completed, already deleted)."""
    ALTERNATE_FORM = "alternate_form"
    """The same value spelled otherwise: a uuid in capitals, an aware datetime."""
    BAD_INPUT = "bad_input"
    """Refused before any SQL, alike whichever path would serve."""
    CONSTRAINT = "constraint"
    """A database error: the same psycopg2 class and SQLSTATE on both paths."""


@dataclass(frozen=True, slots=True)
class Call:
    """The arguments of one facade call."""

    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


Arrange = Callable[["Seed"], Call]
"""Seeds a case's rows and returns the call to make on them."""


def call(*args: Any, **kwargs: Any) -> Call:
    """``call(uuid, "Ada")``: the arguments as they would be written at the call site."""
    return Call(args, kwargs)


def fixed_uuid(n: int) -> str:
    """``fixed_uuid(3)`` is 00000000-0000-4000-8000-000000000003: uuids whose order is plain."""
    return f"00000000-0000-4000-8000-{n:012d}"


def after(seed: Callable[[Seed], object], made: Call) -> Arrange:
    """Seed the rows, then make a call whose arguments do not depend on them."""

    def arrange(db: Seed) -> Call:
        seed(db)
        return made

    return arrange


@dataclass(frozen=True, slots=True)
class Expect:
    """What the legacy path must return for the case to exercise what its name says."""

    description: str
    holds: Callable[[Any], bool]


def returns(value: object) -> Expect:
    """Exactly ``value``, type included (``True`` is not ``1``)."""
    return Expect(f"return {value!r}", lambda got: type(got) is type(value) and got == value)


def has_length(length: int) -> Expect:
    return Expect(f"return {length} items", lambda got: len(got) == length)


def row_of(value: object, key: str = "uuid") -> Expect:
    """One row (a dict) whose ``key`` is ``value``."""
    return Expect(
        f"return the row whose {key} is {value!r}",
        lambda got: isinstance(got, dict) and got.get(key) == value,
    )


def rows_of(*values: object, key: str = "uuid") -> Expect:
    """Rows whose ``key`` values are these, in this order."""
    wanted = list(values)
    return Expect(
        f"return the rows {wanted} in this order",
        lambda got: isinstance(got, list) and [row[key] for row in got] == wanted,
    )


@dataclass(frozen=True, slots=True)
class Case:
    """One parity case: a facade function, the state it runs on, and the call.

    ``arrange`` seeds the rows (with plain SQL, on a database cleared for the
    case) and returns the call. ``raises`` is the error both paths must raise
    (``sqlstate`` too, for a database error); ``expect`` what the legacy path
    must return, proving the case reaches the edge it is named for.
    """

    key: str
    name: str
    tags: frozenset[Tag]
    arrange: Arrange
    raises: type[BaseException] | None = None
    sqlstate: str | None = None
    expect: Expect | None = None

    @property
    def id(self) -> str:
        """``user_sessions.list_sessions[ties-by-uuid]``."""
        return f"{self.key}[{self.name}]"


def case(
    key: str,
    name: str,
    tags: set[Tag],
    arrange: Arrange,
    *,
    raises: type[BaseException] | None = None,
    sqlstate: str | None = None,
    expect: Expect | None = None,
) -> Case:
    """Build a Case; ``tags`` is written as a set literal."""
    return Case(key, name, frozenset(tags), arrange, raises, sqlstate, expect)


SEEDED_AT = datetime(2023, 6, 1, 12, 0)
"""When seeded rows were created and last updated, unless a case says otherwise."""


class Seed:
    """Arranges a case's rows with plain SQL on the test's transaction, never through the layer.

    Columns the case does not name get the schema's defaults, but for the
    sessions' timestamps (SEEDED_AT).
    """

    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self.conn = conn

    def clear(self) -> None:
        """Start from empty tables (the test's transaction is rolled back afterwards)."""
        with self.conn.cursor() as cur:
            cur.execute("DELETE FROM uploaded_files")
            cur.execute("DELETE FROM user_sessions")

    def session(
        self,
        session_uuid: str | None = None,
        *,
        name: str = "Ada Lovelace",
        email: str | None = "ada@example.com",
        created_at: datetime | None = SEEDED_AT,
        updated_at: datetime | None = SEEDED_AT,
        completed_at: datetime | None = None,
        ip_address: str | None = None,
        consent_user_data: bool | None = False,
        verification_code: str | None = None,
        verification_attempts: int = 0,
        verification_expires_at: datetime | None = None,
        is_email_verified: bool = False,
        resend_attempts: int = 0,
        last_resend_at: datetime | None = None,
        raw_created_at: str | None = None,
    ) -> str:
        """Insert a session; return its uuid (a new random one unless given).

        Both timestamps default to SEEDED_AT, long before the test's
        transaction: a write that sets updated_at to CURRENT_TIMESTAMP then
        visibly changes it. ``raw_created_at`` is an SQL expression for
        created_at, for times relative to the transaction's
        (``CURRENT_TIMESTAMP - INTERVAL '24 hours'``); it is code written in a
        case, never data.
        """
        session_uuid = session_uuid or str(uuid.uuid4())
        created = raw_created_at or "%(created_at)s"
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO user_sessions (uuid, name, email, created_at, updated_at, "
                "completed_at, ip_address, consent_user_data, verification_code, "
                "verification_attempts, verification_expires_at, is_email_verified, "
                "resend_attempts, last_resend_at) "
                f"VALUES (%(uuid)s, %(name)s, %(email)s, {created}, %(updated_at)s, "
                "%(completed_at)s, "
                "%(ip_address)s, %(consent_user_data)s, %(verification_code)s, "
                "%(verification_attempts)s, %(verification_expires_at)s, "
                "%(is_email_verified)s, %(resend_attempts)s, %(last_resend_at)s)",
                {
                    "uuid": session_uuid,
                    "name": name,
                    "email": email,
                    "created_at": created_at,
                    "updated_at": updated_at,
                    "completed_at": completed_at,
                    "ip_address": ip_address,
                    "consent_user_data": consent_user_data,
                    "verification_code": verification_code,
                    "verification_attempts": verification_attempts,
                    "verification_expires_at": verification_expires_at,
                    "is_email_verified": is_email_verified,
                    "resend_attempts": resend_attempts,
                    "last_resend_at": last_resend_at,
                },
            )
        return session_uuid

    def upload(
        self,
        session_uuid: str,
        *,
        upload_id: int | None = None,
        filename: str = "notes.txt",
        storage_key: str | None = None,
        size_bytes: int = 100,
        content_type: str | None = "text/plain",
        sha256: str = "a" * 64,
        uploaded_at: datetime | None = None,
        deleted_at: datetime | None = None,
    ) -> int:
        """Insert an upload of ``session_uuid``; return its id (from the sequence unless given)."""
        key = storage_key or f"uploads/{session_uuid}/{uuid.uuid4().hex}/{filename}"
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO uploaded_files (id, session_uuid, filename, storage_key, size_bytes, "
                "content_type, sha256, uploaded_at, deleted_at) VALUES ("
                "COALESCE(%(id)s, nextval('uploaded_files_id_seq')), %(session_uuid)s, "
                "%(filename)s, %(storage_key)s, %(size_bytes)s, %(content_type)s, %(sha256)s, "
                "COALESCE(%(uploaded_at)s, CURRENT_TIMESTAMP), %(deleted_at)s) RETURNING id",
                {
                    "id": upload_id,
                    "session_uuid": session_uuid,
                    "filename": filename,
                    "storage_key": key,
                    "size_bytes": size_bytes,
                    "content_type": content_type,
                    "sha256": sha256,
                    "uploaded_at": uploaded_at,
                    "deleted_at": deleted_at,
                },
            )
            row = cur.fetchone()
        assert row is not None
        return int(row[0])

    def absent_upload_id(self) -> int:
        """An id no upload has (nor will get from the sequence during the test)."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT COALESCE(max(id), 0) + 1000000 FROM uploaded_files")
            row = cur.fetchone()
        assert row is not None
        return int(row[0])
