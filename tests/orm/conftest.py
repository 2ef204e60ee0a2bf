"""ORM-suite fixtures: a Session on the test's rolled-back transaction, repositories on it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from orm.database import dispose_engine
from orm.repositories import (
    EmailVerificationRepository,
    UploadedFileRepository,
    UserSessionRepository,
)
from tests.fixtures.postgres import make_engine


@pytest.fixture
def session(connection: sa.Connection) -> Iterator[Session]:
    """An ORM session inside the test's transaction; its commits are savepoints, all rolled back."""
    with Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as orm_session:
        yield orm_session


@pytest.fixture
def empty_tables(connection: sa.Connection) -> sa.Connection:
    """The test's transaction with user_sessions and uploaded_files emptied (rolled back later).

    For tests of whole-table operations (counts, sweeps, stats), which must
    not see what another run may have committed to the shared database.
    """
    connection.execute(sa.text("DELETE FROM user_sessions"))  # uploads follow: ON DELETE CASCADE
    return connection


@pytest.fixture
def user_sessions(session: Session) -> UserSessionRepository:
    return UserSessionRepository(session)


@pytest.fixture
def verification(session: Session) -> EmailVerificationRepository:
    return EmailVerificationRepository(session)


@pytest.fixture
def uploads(session: Session) -> UploadedFileRepository:
    return UploadedFileRepository(session)


@pytest.fixture
def standalone(fresh_database: str) -> Iterator[str]:
    """A fresh database that orm.database's lazily built engine points at, for standalone calls.

    The engine is thrown away before the test (it may point at another
    database) and after it (its pooled connections would keep the clone alive).
    """
    dispose_engine()
    try:
        yield fresh_database
    finally:
        dispose_engine()


@contextlib.contextmanager
def autocommit_connection(url: str) -> Iterator[sa.Connection]:
    """An autocommit connection to ``url``, on an engine of its own disposed after."""
    engine = make_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


@pytest.fixture
def outside(fresh_database: str) -> Iterator[sa.Connection]:
    """An autocommit connection to the fresh database: arranges and sees only committed rows."""
    with autocommit_connection(fresh_database) as conn:
        yield conn
