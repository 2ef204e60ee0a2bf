"""Factory repositories: bound to the caller's session (never commit) or standalone (commit)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2.extensions
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orm.repositories import (
    EmailVerificationRepository,
    UploadedFileRepository,
    UserSessionRepository,
    get_email_verification_repository,
    get_uploaded_file_repository,
    get_user_session_repository,
)
from tests.fixtures.postgres import make_engine
from tests.orm.rows import add_session, session_row


def observed(observer: psycopg2.extensions.connection, sql: str, *params: object) -> Any:
    """The one value a query returns, as a connection outside the test's transactions sees it."""
    with observer.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    assert row is not None
    return row[0]


def sessions_named(observer: psycopg2.extensions.connection, name: str) -> int:
    return int(observed(observer, "SELECT count(*) FROM user_sessions WHERE name = %s", name))


@pytest.fixture
def own_session(fresh_database: str) -> Iterator[Session]:
    """A session on the fresh database that the test, as the caller, commits or not."""
    engine = make_engine(fresh_database, poolclass=sa.NullPool)
    try:
        with Session(engine, expire_on_commit=False) as orm_session:
            yield orm_session
    finally:
        engine.dispose()


class TestFactories:
    def test_each_builds_its_repository(self, session: Session) -> None:
        assert isinstance(get_user_session_repository(session), UserSessionRepository)
        assert isinstance(get_email_verification_repository(session), EmailVerificationRepository)
        assert isinstance(get_uploaded_file_repository(session), UploadedFileRepository)


class TestBoundRepositories:
    def test_run_in_the_callers_session(self, session: Session, connection: sa.Connection) -> None:
        created = get_user_session_repository(session).create(uuid=uuid.uuid4(), name="Ann")
        assert created in session
        assert session_row(connection, created.uuid) is not None

    def test_share_the_callers_transaction_across_repositories(
        self, session: Session, connection: sa.Connection
    ) -> None:
        key = get_user_session_repository(session).create(uuid=uuid.uuid4(), name="Ann").uuid
        assert get_email_verification_repository(session).mark_verified(key) is True
        assert (session_row(connection, key) or {})["is_email_verified"] is True

    def test_never_commit(
        self, own_session: Session, observer: psycopg2.extensions.connection
    ) -> None:
        name = f"bound-{uuid.uuid4()}"
        repository = get_user_session_repository(own_session)
        key = repository.create(uuid=uuid.uuid4(), name=name).uuid
        repository.complete(key)
        repository.create_many([{"uuid": uuid.uuid4(), "name": name}])
        assert sessions_named(observer, name) == 0
        own_session.rollback()
        assert sessions_named(observer, name) == 0

    def test_leave_the_commit_to_the_caller(
        self, own_session: Session, observer: psycopg2.extensions.connection
    ) -> None:
        name = f"bound-{uuid.uuid4()}"
        get_user_session_repository(own_session).create(uuid=uuid.uuid4(), name=name)
        own_session.commit()
        assert sessions_named(observer, name) == 1


class TestStandaloneRepositories:
    def test_commit_each_call_on_its_own(
        self, standalone: str, observer: psycopg2.extensions.connection
    ) -> None:
        name = f"standalone-{uuid.uuid4()}"
        repository = get_user_session_repository()
        key = repository.create(uuid=uuid.uuid4(), name=name).uuid
        assert sessions_named(observer, name) == 1
        assert repository.complete(key) is True
        completed = "SELECT completed_at IS NOT NULL FROM user_sessions WHERE uuid = %s"
        assert observed(observer, completed, str(key)) is True

    def test_commit_nothing_of_a_call_that_fails(
        self, standalone: str, observer: psycopg2.extensions.connection, outside: sa.Connection
    ) -> None:
        taken = add_session(outside)
        name = f"standalone-{uuid.uuid4()}"
        rows = [{"uuid": uuid.uuid4(), "name": name} for _ in range(3)]
        with pytest.raises(IntegrityError):
            get_user_session_repository().create_many([*rows, {"uuid": taken, "name": name}])
        assert sessions_named(observer, name) == 0

    def test_work_again_after_a_call_that_failed(
        self, standalone: str, outside: sa.Connection
    ) -> None:
        taken = add_session(outside)
        repository = get_user_session_repository()
        with pytest.raises(IntegrityError):
            repository.create(uuid=taken, name="Again")
        assert repository.exists(taken) is True

    def test_bulk_inserts_are_committed(
        self, standalone: str, observer: psycopg2.extensions.connection
    ) -> None:
        name = f"standalone-{uuid.uuid4()}"
        rows = [{"uuid": uuid.uuid4(), "name": name} for _ in range(3)]
        assert get_user_session_repository().create_many(rows) == 3
        assert sessions_named(observer, name) == 3
