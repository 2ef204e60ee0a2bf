"""Row views: their repositories' operations returning rows of columns, on real PostgreSQL.

The compat layer builds the legacy dicts from these rows, so each read here
must give the columns of the table, named and valued as the committed row;
an instance method's result and its row view's result must agree.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Row
from sqlalchemy.orm import Session

from orm.repositories import (
    EmailVerificationRepository,
    EmailVerificationRows,
    UploadedFileRepository,
    UploadedFileRows,
    UserSessionOperations,
    UserSessionRepository,
    UserSessionRows,
)
from orm.repositories.operation import Operation
from tests.orm.rows import add_session, add_upload, session_row, upload_row

SHA = "ef" * 32


def as_dict(row: Row[Any] | None) -> dict[str, Any] | None:
    return None if row is None else dict(row._mapping)


@pytest.fixture
def session_rows(session: Session) -> UserSessionRows:
    return UserSessionRows(session)


@pytest.fixture
def upload_rows(session: Session) -> UploadedFileRows:
    return UploadedFileRows(session)


class TestUserSessionRows:
    def test_get_by_uuid_returns_the_row_as_stored(
        self, session_rows: UserSessionRows, connection: sa.Connection
    ) -> None:
        key = add_session(connection, email="ann@example.com", ip_address="10.0.0.1")
        found = session_rows.get_by_uuid(str(key))
        assert isinstance(found, Row)
        assert as_dict(found) == session_row(connection, key)

    def test_get_by_uuid_is_none_for_a_missing_session(self, session_rows: UserSessionRows) -> None:
        assert session_rows.get_by_uuid(uuid.uuid4()) is None

    def test_create_returns_the_stored_row_with_its_defaults(
        self, session_rows: UserSessionRows, connection: sa.Connection
    ) -> None:
        key = uuid.uuid4()
        created = session_rows.create(uuid=key, name="Ann", email=None)
        assert as_dict(created) == session_row(connection, key)

    def test_update_returns_the_new_row(
        self, session_rows: UserSessionRows, connection: sa.Connection
    ) -> None:
        key = add_session(connection, name="Ann")
        updated = session_rows.update(key, {"name": "Bea"})
        assert as_dict(updated) == session_row(connection, key)
        assert updated is not None
        assert updated.name == "Bea"

    def test_update_refuses_a_field_legacy_does_not_update(
        self, session_rows: UserSessionRows, connection: sa.Connection
    ) -> None:
        with pytest.raises(ValueError, match=r"UserSessionRows\.update: cannot update"):
            session_rows.update(add_session(connection), {"verification_code": "123456"})

    def test_find_by_email_returns_rows_in_the_repositorys_order(
        self, session: Session, session_rows: UserSessionRows, connection: sa.Connection
    ) -> None:
        email = f"{uuid.uuid4()}@example.com"
        add_session(connection, email=email, created_at=datetime(2024, 1, 2))
        add_session(connection, email=email.upper(), created_at=datetime(2024, 1, 1))
        rows = session_rows.find_by_email(email)
        instances = UserSessionRepository(session).find_by_email(email)
        assert [row.uuid for row in rows] == [instance.uuid for instance in instances]
        assert [as_dict(row) for row in rows] == [
            session_row(connection, instance.uuid) for instance in instances
        ]

    def test_list_sessions_returns_the_same_page_as_rows(
        self, session: Session, session_rows: UserSessionRows, empty_tables: sa.Connection
    ) -> None:
        for name in ("Cy", "Ann", "Bea"):
            add_session(empty_tables, name=name)
        rows = session_rows.list_sessions(order="name", limit=2)
        instances = UserSessionRepository(session).list_sessions(order="name", limit=2)
        assert [row.name for row in rows] == ["Ann", "Bea"]
        assert [row.uuid for row in rows] == [instance.uuid for instance in instances]

    def test_stream_uuids_yields_the_canonical_text(
        self, session_rows: UserSessionRows, empty_tables: sa.Connection
    ) -> None:
        keys = {add_session(empty_tables) for _ in range(2)}
        texts = [text for batch in session_rows.stream_uuids() for text in batch]
        assert sorted(texts) == sorted(str(key) for key in keys)

    def test_rows_of_a_repository_run_in_its_session(
        self, session: Session, connection: sa.Connection
    ) -> None:
        repository = UserSessionRepository(session)
        created = repository.create(uuid=uuid.uuid4(), name="Ann")
        row = repository.rows.get_by_uuid(created.uuid)  # flushed first, as a read would be
        assert row is not None
        assert row.name == "Ann"


class TestUploadedFileRows:
    def test_record_returns_the_stored_row(
        self, upload_rows: UploadedFileRows, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        recorded = upload_rows.record(str(owner), "a.txt", f"k/{owner}", 3, None, SHA)
        assert isinstance(recorded, Row)
        assert as_dict(recorded) == upload_row(connection, recorded.id)

    def test_get_by_id_and_list_for_session_return_live_rows(
        self, upload_rows: UploadedFileRows, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        live = add_upload(connection, owner)
        add_upload(connection, owner, deleted_at=datetime(2024, 1, 1))
        assert as_dict(upload_rows.get_by_id(live)) == upload_row(connection, live)
        assert [as_dict(row) for row in upload_rows.list_for_session(owner)] == [
            upload_row(connection, live)
        ]

    def test_rows_of_a_repository_share_its_session(
        self, session: Session, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        upload = add_upload(connection, owner)
        assert UploadedFileRepository(session).rows.total_bytes(owner) == 1
        assert UploadedFileRepository(session).rows.get_by_id(upload) is not None


class TestEmailVerificationRows:
    def test_rows_of_a_repository_share_its_session(
        self, session: Session, connection: sa.Connection
    ) -> None:
        key = add_session(connection, verification_code="123456")
        state = EmailVerificationRepository(session).rows.get(key)
        assert isinstance(state, Row)
        assert state.verification_code == "123456"

    def test_get_returns_the_verification_state_alone(
        self, session: Session, connection: sa.Connection
    ) -> None:
        key = add_session(connection, email="ann@example.com", verification_code="123456")
        state = EmailVerificationRows(session).get(str(key))
        assert state is not None
        stored = session_row(connection, key)
        assert stored is not None
        assert as_dict(state) == {column: stored[column] for column in state._fields}
        assert set(state._fields) == {
            "uuid",
            "email",
            "verification_code",
            "verification_attempts",
            "max_verification_attempts",
            "verification_expires_at",
            "is_email_verified",
            "resend_attempts",
            "max_resend_attempts",
            "last_resend_at",
        }

    def test_the_instance_view_returns_the_whole_session(
        self, session: Session, connection: sa.Connection
    ) -> None:
        key = add_session(connection, name="Ann")
        found = EmailVerificationRepository(session).get(key)
        assert found is not None
        assert found.name == "Ann"


class TestOperations:
    """@operation: one method, callable on an instance and (standalone) on the class."""

    def test_the_row_view_inherits_each_operation_once(self) -> None:
        for name in ("get_by_uuid", "create", "update", "list_sessions", "stream_uuids"):
            assert name not in vars(UserSessionRows)
            assert name not in vars(UserSessionRepository)
            assert isinstance(vars(UserSessionOperations)[name], Operation)

    def test_no_twin_row_methods_remain(self) -> None:
        twins = {"get_row", "create_row", "update_row", "list_rows", "record_row", "get_state"}
        twins |= {"list_rows_for_session", "find_rows_by_email", "list_session_rows"}
        twins |= {"stream_uuid_texts"}
        for view in (UserSessionRows, UploadedFileRows, EmailVerificationRows):
            assert twins.isdisjoint(dir(view))
        for repository in (UserSessionRepository, UploadedFileRepository):
            assert twins.isdisjoint(dir(repository))

    def test_keeps_the_docstring_and_names_itself(self) -> None:
        descriptor = vars(UserSessionOperations)["get_by_uuid"]
        assert descriptor.__doc__ == "The session, or None when there is none."
        assert repr(descriptor) == "<repository operation get_by_uuid>"

    def test_on_an_instance_binds_to_that_instance(self, session: Session) -> None:
        repository = UserSessionRepository(session)
        assert repository.get_by_uuid.__self__ is repository  # type: ignore[attr-defined]
