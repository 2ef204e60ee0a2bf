"""One representative call per facade function, with the rows it needs arranged in plain SQL."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2.extensions

import compat  # noqa: F401  (declares every facade function)
from compat.routing.declaration import REGISTRY
from compat.verify.calls import Samples

Arrange = Callable[[psycopg2.extensions.connection], "Call"]


@dataclass(frozen=True)
class Call:
    """Positional and keyword arguments for one facade call."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def new_session(
    conn: psycopg2.extensions.connection,
    *,
    name: str = "Ada Lovelace",
    email: str | None = "ada@example.com",
    created_at: datetime | None = None,
    code: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Insert a session with plain SQL; return its uuid as str."""
    session_uuid = str(uuid.uuid4())
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO user_sessions (uuid, name, email, created_at, verification_code, "
            "verification_expires_at) VALUES (%s, %s, %s, COALESCE(%s, CURRENT_TIMESTAMP), %s, %s)",
            (session_uuid, name, email, created_at, code, expires_at),
        )
    return session_uuid


def new_upload(conn: psycopg2.extensions.connection, session_uuid: str, size: int = 100) -> int:
    """Insert an upload of ``session_uuid`` with plain SQL; return its id."""
    key = f"uploads/{session_uuid}/{uuid.uuid4().hex}.txt"
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO uploaded_files (session_uuid, filename, storage_key, size_bytes, "
            "content_type, sha256) VALUES (%s, 'notes.txt', %s, %s, 'text/plain', %s) "
            "RETURNING id",
            (session_uuid, key, size, "a" * 64),
        )
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def _arrange(key: str) -> Arrange:
    """Seed a session with an upload (plain SQL), then call as `compat verify` would on it.

    The call is the first of the function's declared verify calls that is not
    an edge case, built on the rows just seeded: the registry, not a list
    here, says how each function is called.
    """

    def arrange(conn: psycopg2.extensions.connection) -> Call:
        session_uuid = new_session(conn, email="Mixed.Case@Example.com")
        upload_id = new_upload(conn, session_uuid)
        samples = Samples(
            sessions=(session_uuid,),
            emails=("Mixed.Case@Example.com",),
            uploads=(upload_id,),
            sessions_with_uploads=(session_uuid,),
        )
        builder = REGISTRY[key].calls
        assert builder is not None, f"{key} declares no calls"
        made = next(c for c in builder(samples, 1, random.Random()) if not c.edge)
        return Call(tuple(made.args), dict(made.kwargs))

    return arrange


class _Calls(Mapping[str, Arrange]):
    """Every declared facade function's representative call, looked up in the registry live."""

    def __getitem__(self, key: str) -> Arrange:
        if key not in REGISTRY:
            raise KeyError(key)
        return _arrange(key)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(REGISTRY))

    def __len__(self) -> int:
        return len(REGISTRY)


CALLS: Mapping[str, Arrange] = _Calls()
"""One representative call per facade function (a throwaway one declared in a test too)."""
