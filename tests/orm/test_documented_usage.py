"""The repository usage our integration notes document works exactly as written.

Each call below is copied from the notes (``repo = get_user_session_repository()``,
``UserSessionRepository.get_by_uuid(session_uuid)``, ...): through the factory,
standalone (a session per call) or bound to a session the caller opened with
``get_db_session()``, and as class-level calls that open, commit and close a
session of their own. Session uuids are passed as ``uuid.UUID`` and as text.
What was committed is read back with plain SQL by an autocommit observer
connection, never through the code under test.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg2.extensions
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from orm.database import get_db_session
from orm.models import UserSession
from orm.repositories import (
    EmailVerificationRepository,
    UploadedFileRepository,
    UserSessionRepository,
    get_email_verification_repository,
    get_uploaded_file_repository,
    get_user_session_repository,
)
from tests.orm.rows import add_session, add_upload, mapped_values

pytestmark = [pytest.mark.committed, pytest.mark.usefixtures("standalone")]

SHA = "cd" * 32


def committed(observer: psycopg2.extensions.connection, key: uuid.UUID) -> dict[str, Any] | None:
    """The session's name and email as committed, or None when no committed row has that uuid."""
    with observer.cursor() as cursor:
        cursor.execute("SELECT name, email FROM user_sessions WHERE uuid = %s", (str(key),))
        row = cursor.fetchone()
    return None if row is None else {"name": row[0], "email": row[1]}


def committed_value(observer: psycopg2.extensions.connection, sql: str, *params: object) -> Any:
    """The one value a query returns from the committed state."""
    with observer.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    assert row is not None
    return row[0]


def assert_usable(instance: UserSession, observer: psycopg2.extensions.connection) -> None:
    """Every attribute reads after the call returned, without a session behind the instance."""
    state = sa.inspect(instance)
    assert state.detached
    assert not state.expired_attributes
    assert not state.unloaded
    values = mapped_values(instance)  # reads every mapped attribute
    assert committed(observer, instance.uuid) == {"name": values["name"], "email": values["email"]}


SPELLINGS = {
    "uuid-object": lambda key: key,
    "canonical": str,
    "upper-case": lambda key: str(key).upper(),
    "no-hyphens": lambda key: key.hex,
    "braces": lambda key: "{" + str(key) + "}",
}
MALFORMED = ["", "not-a-uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", " " + str(uuid.UUID(int=1))]


class TestFactoryStandalone:
    """``repo = get_user_session_repository()``: each call commits on its own."""

    def test_create_commits_the_session(self, observer: psycopg2.extensions.connection) -> None:
        repo = get_user_session_repository()
        created = repo.create(session_uuid=uuid.uuid4(), name="User Name", email="user@example.com")
        assert committed(observer, created.uuid) == {
            "name": "User Name",
            "email": "user@example.com",
        }
        assert_usable(created, observer)

    def test_create_takes_the_session_uuid_as_text(
        self, observer: psycopg2.extensions.connection
    ) -> None:
        key = uuid.uuid4()
        repo = get_user_session_repository()
        created = repo.create(session_uuid=str(key).upper(), name="User Name", email=None)
        assert created.uuid == key
        assert committed(observer, key) == {"name": "User Name", "email": None}

    def test_create_still_takes_the_column_name_uuid(
        self, observer: psycopg2.extensions.connection
    ) -> None:
        key = uuid.uuid4()
        get_user_session_repository().create(uuid=key, name="User Name", email="user@example.com")
        assert committed(observer, key) is not None

    def test_create_refuses_both_uuid_and_session_uuid_before_any_sql(
        self, observer: psycopg2.extensions.connection
    ) -> None:
        key = uuid.uuid4()
        repo = get_user_session_repository()
        with pytest.raises(ValueError, match=r"create: give the key once, as uuid= or as session_"):
            repo.create(session_uuid=key, uuid=key, name="User Name", email="user@example.com")
        assert committed(observer, key) is None

    @pytest.mark.parametrize("spell", SPELLINGS.values(), ids=SPELLINGS.keys())
    def test_get_by_uuid_takes_a_uuid_or_its_text(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection, spell: Any
    ) -> None:
        key = add_session(outside, name="User Name", email="user@example.com")
        repo = get_user_session_repository()
        for session_uuid in (key, spell(key)):
            user_session = repo.get_by_uuid(session_uuid)
            assert user_session is not None
            assert user_session.uuid == key
            assert_usable(user_session, observer)

    def test_get_by_uuid_is_none_for_a_missing_session(self) -> None:
        session_uuid = str(uuid.uuid4())
        assert get_user_session_repository().get_by_uuid(session_uuid) is None

    def test_update_by_keyword_commits_the_new_values(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        key = add_session(outside, name="User Name", email="user@example.com")
        uuid_str = str(key)
        repo = get_user_session_repository()
        updated = repo.update(
            session_uuid=uuid_str, data={"name": "New Name", "email": "new@example.com"}
        )
        assert updated is not None
        assert committed(observer, key) == {"name": "New Name", "email": "new@example.com"}
        assert_usable(updated, observer)

    def test_update_by_position_commits_the_new_values(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        key = add_session(outside, name="User Name")
        repo = get_user_session_repository()
        repo.update(key.hex, {"name": "New Name", "email": "new@example.com"})
        assert committed(observer, key) == {"name": "New Name", "email": "new@example.com"}

    def test_update_is_none_for_a_missing_session(self) -> None:
        uuid_str = str(uuid.uuid4())
        repo = get_user_session_repository()
        assert repo.update(session_uuid=uuid_str, data={"name": "New Name"}) is None

    def test_delete_is_true_and_commits_then_false(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = add_session(outside)
        repo = get_user_session_repository()
        assert repo.delete(session_uuid) is True
        assert committed(observer, session_uuid) is None
        assert repo.delete(session_uuid) is False

    def test_delete_takes_the_session_uuid_as_text(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        key = add_session(outside)
        session_uuid = str(key)
        assert get_user_session_repository().delete(session_uuid) is True
        assert committed(observer, key) is None

    def test_a_failed_call_commits_nothing_and_the_next_one_works(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        taken = add_session(outside, name="User Name")
        repo = get_user_session_repository()
        with pytest.raises(IntegrityError):
            repo.create(session_uuid=taken, name="Another Name", email="user@example.com")
        assert committed(observer, taken) == {"name": "User Name", "email": None}
        assert repo.get_by_uuid(str(taken)) is not None


class TestFactoryInTheCallersSession:
    """``get_user_session_repository(session)`` inside ``with get_db_session() as session``."""

    def test_create_is_committed_when_the_block_ends(
        self, observer: psycopg2.extensions.connection
    ) -> None:
        key = uuid.uuid4()
        with get_db_session() as session:
            repo = get_user_session_repository(session)
            created = repo.create(session_uuid=str(key), name="User Name", email="user@example.com")
            assert committed(observer, key) is None  # the caller owns the commit
        assert committed(observer, key) == {"name": "User Name", "email": "user@example.com"}
        assert_usable(created, observer)

    def test_nothing_is_committed_when_the_block_raises(
        self, observer: psycopg2.extensions.connection
    ) -> None:
        key = uuid.uuid4()
        with (
            pytest.raises(RuntimeError, match="the caller changed its mind"),
            get_db_session() as session,
        ):
            get_user_session_repository(session).create(
                session_uuid=key, name="User Name", email="user@example.com"
            )
            raise RuntimeError("the caller changed its mind")
        assert committed(observer, key) is None

    @pytest.mark.parametrize("spell", SPELLINGS.values(), ids=SPELLINGS.keys())
    def test_every_call_takes_a_uuid_or_its_text(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection, spell: Any
    ) -> None:
        key = add_session(outside, name="User Name", email="user@example.com")
        session_uuid = spell(key)
        with get_db_session() as session:
            repo = get_user_session_repository(session)
            user_session = repo.get_by_uuid(session_uuid)
            assert user_session is not None
            assert repo.exists(session_uuid) is True
            repo.update(session_uuid=session_uuid, data={"name": "New Name"})
            assert committed(observer, key) == {"name": "User Name", "email": "user@example.com"}
        assert committed(observer, key) == {"name": "New Name", "email": "user@example.com"}
        with get_db_session() as session:
            assert get_user_session_repository(session).delete(session_uuid) is True
        assert committed(observer, key) is None

    def test_instances_outlive_the_callers_session(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        key = add_session(outside, name="User Name", email="user@example.com")
        with get_db_session() as session:
            user_session = get_user_session_repository(session).get_by_uuid(str(key))
        assert user_session is not None
        assert_usable(user_session, observer)

    @pytest.mark.parametrize("text", MALFORMED)
    def test_a_malformed_uuid_is_a_value_error_that_leaves_the_transaction_usable(
        self, observer: psycopg2.extensions.connection, text: str
    ) -> None:
        key = uuid.uuid4()
        with get_db_session() as session:
            repo = get_user_session_repository(session)
            repo.create(session_uuid=key, name="User Name", email=None)
            with pytest.raises(
                ValueError, match=r"UserSessionRepository\.get_by_uuid: session_uuid .* not a uuid"
            ):
                repo.get_by_uuid(text)
        # No DataError from the server: the transaction was not aborted and committed.
        assert committed(observer, key) == {"name": "User Name", "email": None}


class TestClassLevelCalls:
    """``UserSessionRepository.get_by_uuid(session_uuid)``: a session of its own per call."""

    def test_create_commits_and_returns_a_usable_instance(
        self, observer: psycopg2.extensions.connection
    ) -> None:
        user_session = UserSessionRepository.create(
            session_uuid=uuid.uuid4(), name="User Name", email="user@example.com"
        )
        assert committed(observer, user_session.uuid) == {
            "name": "User Name",
            "email": "user@example.com",
        }
        assert_usable(user_session, observer)

    @pytest.mark.parametrize("spell", SPELLINGS.values(), ids=SPELLINGS.keys())
    def test_get_by_uuid_takes_a_uuid_or_its_text(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection, spell: Any
    ) -> None:
        key = add_session(outside, name="User Name", email="user@example.com")
        for session_uuid in (key, spell(key)):
            user_session = UserSessionRepository.get_by_uuid(session_uuid)
            assert user_session is not None
            assert_usable(user_session, observer)

    def test_get_by_uuid_is_none_for_a_missing_session(self) -> None:
        assert UserSessionRepository.get_by_uuid(uuid.uuid4()) is None

    def test_exists_takes_a_uuid_or_its_text(self, outside: sa.Connection) -> None:
        session_uuid = add_session(outside)
        assert UserSessionRepository.exists(session_uuid) is True
        assert UserSessionRepository.exists(str(session_uuid)) is True
        assert UserSessionRepository.exists(str(uuid.uuid4())) is False

    def test_update_commits_the_new_values(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        key = add_session(outside, name="User Name", email="user@example.com")
        uuid_str = str(key)
        UserSessionRepository.update(
            session_uuid=uuid_str, data={"name": "New Name", "email": "new@example.com"}
        )
        assert committed(observer, key) == {"name": "New Name", "email": "new@example.com"}

    def test_delete_commits_and_says_whether_it_deleted(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = add_session(outside)
        success = UserSessionRepository.delete(session_uuid)
        assert success is True
        assert committed(observer, session_uuid) is None
        assert UserSessionRepository.delete(str(session_uuid)) is False

    def test_each_call_commits_before_it_returns(
        self, observer: psycopg2.extensions.connection
    ) -> None:
        key = uuid.uuid4()
        UserSessionRepository.create(
            session_uuid=str(key), name="User Name", email="user@example.com"
        )
        assert committed(observer, key) is not None
        UserSessionRepository.update(session_uuid=key, data={"name": "New Name"})
        assert committed(observer, key) == {"name": "New Name", "email": "user@example.com"}

    def test_a_failed_call_commits_nothing(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        taken = add_session(outside, name="User Name")
        with pytest.raises(IntegrityError):
            UserSessionRepository.create(session_uuid=taken, name="Another", email=None)
        assert committed(observer, taken) == {"name": "User Name", "email": None}

    @pytest.mark.parametrize("text", MALFORMED)
    def test_a_malformed_uuid_is_a_value_error_naming_method_and_argument(self, text: str) -> None:
        with pytest.raises(
            ValueError, match=r"UserSessionRepository\.exists: session_uuid .* is not a uuid"
        ):
            UserSessionRepository.exists(text)

    def test_instance_calls_still_run_in_the_instances_session(
        self, observer: psycopg2.extensions.connection
    ) -> None:
        key = uuid.uuid4()
        with get_db_session() as session:
            UserSessionRepository(session).create(session_uuid=key, name="User Name", email=None)
            assert committed(observer, key) is None
        assert committed(observer, key) is not None


class TestUploadsTakeTheSessionUuidAsText:
    """UploadedFileRepository's calls that take a session uuid, with its text."""

    def test_record_lists_and_sums_by_the_text_of_the_session_uuid(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        key = add_session(outside)
        session_uuid = str(key).upper()
        recorded = UploadedFileRepository.record(
            session_uuid, "notes.txt", f"uploads/{key}/notes.txt", 12, "text/plain", SHA
        )
        stored = "SELECT session_uuid FROM uploaded_files WHERE id = %s"
        assert committed_value(observer, stored, recorded.id) == str(key)
        assert [upload.id for upload in UploadedFileRepository.list_for_session(key.hex)] == [
            recorded.id
        ]
        assert get_uploaded_file_repository().total_bytes(session_uuid) == 12

    def test_inside_the_callers_session(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        key = add_session(outside)
        upload = add_upload(outside, key, size_bytes=5)
        with get_db_session() as session:
            uploads = get_uploaded_file_repository(session)
            assert [found.id for found in uploads.list_for_session(f"{{{key}}}")] == [upload]
            assert uploads.total_bytes(str(key)) == 5

    @pytest.mark.parametrize("text", MALFORMED)
    def test_a_malformed_session_uuid_is_a_value_error(self, text: str) -> None:
        with pytest.raises(
            ValueError, match=r"UploadedFileRepository\.total_bytes: session_uuid .* not a uuid"
        ):
            UploadedFileRepository.total_bytes(text)


class TestEmailVerificationTakesTheSessionUuidAsText:
    """EmailVerificationRepository's calls, with the session uuid's text."""

    def test_set_code_and_mark_verified_commit(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        key = add_session(outside)
        session_uuid = key.hex.upper()
        assert EmailVerificationRepository.set_code(session_uuid, "123456", datetime(2030, 1, 1))
        code = "SELECT verification_code FROM user_sessions WHERE uuid = %s"
        assert committed_value(observer, code, str(key)) == "123456"
        assert get_email_verification_repository().mark_verified(str(key)) is True
        verified = "SELECT is_email_verified FROM user_sessions WHERE uuid = %s"
        assert committed_value(observer, verified, str(key)) is True

    def test_get_returns_a_usable_instance(
        self, outside: sa.Connection, observer: psycopg2.extensions.connection
    ) -> None:
        key = add_session(outside, name="User Name", verification_code="654321")
        with get_db_session() as session:
            found = get_email_verification_repository(session).get(str(key))
        assert found is not None
        assert found.verification_code == "654321"
        assert_usable(found, observer)

    @pytest.mark.parametrize("text", MALFORMED)
    def test_a_malformed_session_uuid_is_a_value_error(self, text: str) -> None:
        with pytest.raises(
            ValueError, match=r"EmailVerificationRepository\.reset: session_uuid .* not a uuid"
        ):
            EmailVerificationRepository.reset(text)
