"""Session uuids as arguments: a uuid.UUID or its text, read as PostgreSQL reads it, else refused.

Legacy code passes uuids as text and PostgreSQL parses them; the repositories
take the same text and must accept exactly what PostgreSQL accepts, refusing
the rest with a ValueError before any SQL, so a bad uuid never aborts the
caller's transaction with a DataError.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Row
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from orm.models import Base
from orm.repositories import (
    EmailVerificationRepository,
    UploadedFileRepository,
    UserSessionRepository,
    as_uuid,
)
from tests.orm.rows import add_session, add_upload, mapped_values, value

KEY = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")


def postgresql_reads(engine: sa.Engine, text: str) -> uuid.UUID | None:
    """The uuid PostgreSQL reads from ``text``, or None when it refuses it."""
    with engine.connect() as conn:
        try:
            read = conn.execute(sa.text("SELECT CAST(:t AS uuid)"), {"t": text}).scalar_one()
        except DataError:
            return None
    return uuid.UUID(str(read))


def python_reads(text: str) -> uuid.UUID | None:
    try:
        return as_uuid(text, "test", "session_uuid")
    except ValueError:
        return None


@st.composite
def uuid_like_text(draw: st.DrawFn) -> str:
    """A uuid's text in some spelling, sometimes damaged by one character."""
    digits = draw(st.uuids()).hex
    text = ""
    for i in range(0, 32, 4):
        text += digits[i : i + 4]
        if i < 28 and draw(st.booleans()):
            text += "-"
    if draw(st.booleans()):
        text = text.upper()
    if draw(st.booleans()):
        text = "{" + text + "}"
    damage = draw(st.sampled_from(["none", "drop", "insert", "replace"]))
    if damage == "none":
        return text
    at = draw(st.integers(0, len(text) - 1))
    char = draw(st.sampled_from(list("-{} 0aFgz:\n\t")))
    if damage == "drop":
        return text[:at] + text[at + 1 :]
    if damage == "insert":
        return text[:at] + char + text[at:]
    return text[:at] + char + text[at + 1 :]


class TestAsUuid:
    @pytest.mark.parametrize(
        "text",
        [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
        ],
    )
    def test_reads_every_spelling_postgresql_documents(self, text: str) -> None:
        assert as_uuid(text, "test", "session_uuid") == KEY

    @pytest.mark.parametrize(
        "text",
        [
            "",
            " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\n",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "urn:uuid:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
            "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
        ],
    )
    def test_refuses_what_postgresql_refuses_naming_where_and_argument(self, text: str) -> None:
        with pytest.raises(ValueError, match=r"^Repo\.get: session_uuid .* is not a uuid"):
            as_uuid(text, "Repo.get", "session_uuid")

    def test_refuses_a_value_that_is_neither_uuid_nor_text(self) -> None:
        with pytest.raises(TypeError, match=r"Repo\.get: session_uuid takes a uuid\.UUID or its"):
            as_uuid(KEY.int, "Repo.get", "session_uuid")  # type: ignore[arg-type]

    def test_returns_a_uuid_as_it_is(self) -> None:
        assert as_uuid(KEY, "test", "session_uuid") is KEY

    @given(text=uuid_like_text())
    def test_accepts_exactly_what_postgresql_accepts(self, engine: sa.Engine, text: str) -> None:
        assert python_reads(text) == postgresql_reads(engine, text)


# Every repository method that takes a session uuid, called with it (other arguments fixed).
SessionCall = Callable[[Session, Any], object]
CALLS: dict[str, SessionCall] = {
    "UserSessionRepository.get_by_uuid": lambda s, k: UserSessionRepository(s).get_by_uuid(k),
    "UserSessionRepository.get_by_id": lambda s, k: UserSessionRepository(s).get_by_id(k),
    "UserSessionRepository.exists": lambda s, k: UserSessionRepository(s).exists(k),
    "UserSessionRepository.update": lambda s, k: UserSessionRepository(s).update(k, {}),
    "UserSessionRepository.complete": lambda s, k: UserSessionRepository(s).complete(k),
    "UserSessionRepository.delete": lambda s, k: UserSessionRepository(s).delete(k),
    "UserSessionRepository.rows.get_by_uuid": (
        lambda s, k: UserSessionRepository(s).rows.get_by_uuid(k)
    ),
    "UploadedFileRepository.list_for_session": (
        lambda s, k: UploadedFileRepository(s).list_for_session(k)
    ),
    "UploadedFileRepository.total_bytes": lambda s, k: UploadedFileRepository(s).total_bytes(k),
    "EmailVerificationRepository.get": lambda s, k: EmailVerificationRepository(s).get(k),
    "EmailVerificationRepository.set_code": (
        lambda s, k: EmailVerificationRepository(s).set_code(k, "123456", datetime(2030, 1, 1))
    ),
    "EmailVerificationRepository.increment_attempts": (
        lambda s, k: EmailVerificationRepository(s).increment_attempts(k)
    ),
    "EmailVerificationRepository.increment_resend_attempts": (
        lambda s, k: EmailVerificationRepository(s).increment_resend_attempts(k)
    ),
    "EmailVerificationRepository.mark_verified": (
        lambda s, k: EmailVerificationRepository(s).mark_verified(k)
    ),
    "EmailVerificationRepository.reset": lambda s, k: EmailVerificationRepository(s).reset(k),
}


def comparable(result: object) -> object:
    """A call's result with instances and rows as dicts of their values."""
    if isinstance(result, list):
        return [comparable(item) for item in result]
    if isinstance(result, Row):
        return dict(result._mapping)
    if isinstance(result, Base):
        return mapped_values(result)
    return result


class TestEveryMethodTakingASessionUuid:
    @pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
    def test_does_with_the_upper_case_text_what_it_does_with_the_uuid(
        self, connection: sa.Connection, call: SessionCall
    ) -> None:
        key = add_session(connection)
        add_upload(connection, key, size_bytes=3)
        results = []
        for argument in (key, str(key).upper()):
            savepoint = connection.begin_nested()  # both calls start from the same state
            with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
                results.append(comparable(call(session, argument)))
            savepoint.rollback()
        assert results[0] == results[1]
        assert results[0] not in (None, False, [])  # the session was found

    @pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
    def test_refuses_malformed_text_naming_itself_before_any_sql(
        self, session: Session, connection: sa.Connection, call: SessionCall
    ) -> None:
        name = next(key for key, known in CALLS.items() if known is call)
        method = name.rsplit(".", 1)[1]
        repository = name.split(".", 1)[0]
        if ".rows." in name:
            repository = "UserSessionRows"
        with pytest.raises(ValueError, match=rf"^{repository}\.{method}: session_uuid 'x-y'"):
            call(session, "x-y")
        assert value(connection, "SELECT 1") == 1  # the transaction was not aborted

    def test_record_takes_the_session_uuid_as_text(
        self, session: Session, connection: sa.Connection
    ) -> None:
        key = add_session(connection)
        recorded = UploadedFileRepository(session).record(
            f"{{{key}}}", "a.txt", f"k/{key}", 1, None, "0" * 64
        )
        assert recorded.session_uuid == key

    def test_create_takes_a_uuid_column_as_text(
        self, session: Session, connection: sa.Connection
    ) -> None:
        key = add_session(connection)
        created = UploadedFileRepository(session).create(
            session_uuid=key.hex,
            filename="a.txt",
            storage_key=f"k/{key}",
            size_bytes=1,
            sha256="0" * 64,
        )
        assert created.session_uuid == key
