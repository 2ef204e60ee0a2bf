"""Instances a repository returns stay readable after the call and after their session closed.

The first ORM version of this layer returned instances whose session had
committed and closed: reading any attribute raised DetachedInstanceError.
Each repository method that returns instances is called here standalone (its
own session, committed and closed before the call returns) and every mapped
attribute is read afterwards, then compared with the committed row.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from orm.database import get_db_session
from orm.models import Base, UploadedFile, UserSession
from orm.repositories import (
    Filter,
    UploadStats,
    get_email_verification_repository,
    get_uploaded_file_repository,
    get_user_session_repository,
)
from tests.fixtures.postgres import make_engine
from tests.orm.rows import add_session, add_upload, mapped_values, session_row, upload_row

pytestmark = pytest.mark.usefixtures("standalone")


def committed_row(outside: sa.Connection, instance: Base) -> dict[str, Any] | None:
    """The instance's row as committed, read with plain SQL."""
    if isinstance(instance, UserSession):
        return session_row(outside, instance.uuid)
    assert isinstance(instance, UploadedFile)
    return upload_row(outside, instance.id)


def assert_readable(outside: sa.Connection, *instances: Base) -> None:
    """Each instance is detached, has nothing left to load, and reads as its committed row."""
    assert instances
    for instance in instances:
        state = sa.inspect(instance)
        assert state.detached
        assert not state.expired_attributes
        assert not state.unloaded
        assert mapped_values(instance) == committed_row(outside, instance)


class TestUserSessionRepository:
    def test_get_by_uuid(self, outside: sa.Connection) -> None:
        key = add_session(outside, email="ann@example.com")
        found = get_user_session_repository().get_by_uuid(key)
        assert found is not None
        assert_readable(outside, found)

    def test_get_by_id(self, outside: sa.Connection) -> None:
        found = get_user_session_repository().get_by_id(add_session(outside))
        assert found is not None
        assert_readable(outside, found)

    def test_create(self, outside: sa.Connection) -> None:
        created = get_user_session_repository().create(uuid=uuid.uuid4(), name="Ann", email=None)
        assert_readable(outside, created)

    def test_update(self, outside: sa.Connection) -> None:
        key = add_session(outside, name="Ann")
        updated = get_user_session_repository().update(key, {"name": "Bea"})
        assert updated is not None
        assert updated.name == "Bea"
        assert_readable(outside, updated)

    def test_find_by_email(self, outside: sa.Connection) -> None:
        email = f"{uuid.uuid4()}@example.com"
        add_session(outside, email=email)
        add_session(outside, email=email.upper())
        assert_readable(outside, *get_user_session_repository().find_by_email(email))

    def test_list_sessions(self, outside: sa.Connection) -> None:
        add_session(outside, completed_at=datetime(2024, 1, 1))
        add_session(outside)
        assert_readable(outside, *get_user_session_repository().list_sessions(order="name"))

    def test_list(self, outside: sa.Connection) -> None:
        keys = [add_session(outside) for _ in range(2)]
        found = get_user_session_repository().list([Filter("uuid", "in", keys)], limit=10)
        assert_readable(outside, *found)


class TestEmailVerificationRepository:
    def test_get(self, outside: sa.Connection) -> None:
        key = add_session(outside, verification_code="123456")
        found = get_email_verification_repository().get(key)
        assert found is not None
        assert_readable(outside, found)


class TestUploadedFileRepository:
    def test_record(self, outside: sa.Connection) -> None:
        owner = add_session(outside)
        recorded = get_uploaded_file_repository().record(
            owner, "a.txt", f"uploads/{owner}/a.txt", 3, "text/plain", "0" * 64
        )
        assert_readable(outside, recorded)

    def test_get_by_id(self, outside: sa.Connection) -> None:
        found = get_uploaded_file_repository().get_by_id(add_upload(outside, add_session(outside)))
        assert found is not None
        assert_readable(outside, found)

    def test_list_for_session(self, outside: sa.Connection) -> None:
        owner = add_session(outside)
        add_upload(outside, owner)
        add_upload(outside, owner)
        assert_readable(outside, *get_uploaded_file_repository().list_for_session(owner))

    def test_create(self, outside: sa.Connection) -> None:
        owner = add_session(outside)
        created = get_uploaded_file_repository().create(
            session_uuid=owner,
            filename="b.txt",
            storage_key=f"uploads/{owner}/b.txt",
            size_bytes=1,
            sha256="1" * 64,
        )
        assert_readable(outside, created)

    def test_update(self, outside: sa.Connection) -> None:
        upload = add_upload(outside, add_session(outside))
        updated = get_uploaded_file_repository().update(upload, {"filename": "renamed.txt"})
        assert updated is not None
        assert_readable(outside, updated)

    def test_list(self, outside: sa.Connection) -> None:
        owner = add_session(outside)
        add_upload(outside, owner)
        found = get_uploaded_file_repository().list([Filter("session_uuid", "eq", owner)])
        assert_readable(outside, *found)

    def test_stats_are_plain_values(self, outside: sa.Connection) -> None:
        owner = add_session(outside, name="Ann")
        add_upload(outside, owner, size_bytes=5)
        found = get_uploaded_file_repository().stats()
        assert [(row.session_uuid, row.name, row.total_bytes) for row in found] == [
            (owner, "Ann", 5)
        ]
        assert all(type(row) is UploadStats for row in found)


class TestCallersSession:
    """A bound repository's instances outlive the caller's session too."""

    def test_instances_stay_readable_after_the_unit_of_work_commits_and_closes(
        self, outside: sa.Connection
    ) -> None:
        key = add_session(outside)
        with get_db_session() as session:
            found = get_user_session_repository(session).get_by_uuid(key)
        assert found is not None
        assert_readable(outside, found)

    def test_an_update_hands_back_the_new_values_for_an_instance_loaded_earlier(
        self, fresh_database: str, outside: sa.Connection
    ) -> None:
        key = add_session(outside, name="Ann")
        engine = make_engine(fresh_database, poolclass=sa.NullPool)
        try:
            with Session(engine, expire_on_commit=False) as session:
                repository = get_user_session_repository(session)
                earlier = repository.get_by_uuid(key)
                updated = repository.update(key, {"name": "Bea"})
                session.commit()
        finally:
            engine.dispose()
        assert updated is earlier
        assert updated is not None
        assert updated.name == "Bea"
        assert_readable(outside, updated)

    def test_a_write_that_returns_a_flag_leaves_instances_loaded_earlier_readable(
        self, fresh_database: str, outside: sa.Connection
    ) -> None:
        key = add_session(outside)
        engine = make_engine(fresh_database, poolclass=sa.NullPool)
        try:
            with Session(engine, expire_on_commit=False) as session:
                repository = get_user_session_repository(session)
                earlier = repository.get_by_uuid(key)
                assert repository.complete(key) is True
                session.commit()
        finally:
            engine.dispose()
        assert earlier is not None
        state = sa.inspect(earlier)
        assert state.detached
        assert not state.expired_attributes
        assert earlier.completed_at is None  # as loaded: a flag-returning write refreshes nothing
