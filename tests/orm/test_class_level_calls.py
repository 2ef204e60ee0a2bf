"""Every repository operation, called on its class, is a standalone call that commits.

``UploadedFileRepository.total_bytes(key)`` opens a session of its own, commits
it and closes it (``@operation``). Each case here arranges rows with plain SQL
on an autocommit connection, makes one class-level call and checks what it
returned and, for a write, that another connection sees it committed. The
list of cases must name every operation of the three repositories, so a new
operation gets a case here.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from orm.database import dispose_engine
from orm.repositories import (
    BaseRepository,
    EmailVerificationRepository,
    Filter,
    Operation,
    UploadedFileRepository,
    UserSessionRepository,
)
from tests.fixtures.postgres import PgServer
from tests.orm.conftest import autocommit_connection
from tests.orm.rows import add_session, add_upload, value

pytestmark = pytest.mark.committed

Sessions = UserSessionRepository
Uploads = UploadedFileRepository
Verification = EmailVerificationRepository
REPOSITORIES: tuple[type[BaseRepository[Any]], ...] = (Sessions, Uploads, Verification)


@pytest.fixture(scope="module")
def outside(pg_server: PgServer) -> Iterator[sa.Connection]:
    """One database clone for the module, which the standalone calls' engine points at.

    Every case arranges rows of its own (new uuids), so the cases can share it.
    """
    name = f"class_level_calls_{uuid.uuid4().hex[:12]}"
    with (
        pytest.MonkeyPatch.context() as patch,
        pg_server.janitor(name, template=pg_server.template),
    ):
        url = pg_server.url(name)
        patch.setenv("DATABASE_URL", url)
        dispose_engine()
        try:
            with autocommit_connection(url) as conn:
                yield conn
        finally:
            dispose_engine()


def column(conn: sa.Connection, table: str, name: str, where: str, **params: Any) -> Any:
    return value(conn, f"SELECT {name} FROM {table} WHERE {where}", **params)


def gone(conn: sa.Connection, key: uuid.UUID) -> bool:
    return not value(conn, "SELECT count(*) FROM user_sessions WHERE uuid = :k", k=key)


@dataclass(frozen=True)
class Case:
    """One class-level call: arrange, call, check (given the connection and the result)."""

    repository: type[BaseRepository[Any]]
    operation: str
    run: Callable[[sa.Connection], None]

    @property
    def id(self) -> str:
        return f"{self.repository.__name__}.{self.operation}"


def _sessions_cases() -> list[Case]:
    def get_by_id(conn: sa.Connection) -> None:
        key = add_session(conn, name="Ann")
        found = Sessions.get_by_id(key)
        assert found is not None
        assert found.name == "Ann"

    def get_by_uuid(conn: sa.Connection) -> None:
        key = add_session(conn, name="Bea")
        found = Sessions.get_by_uuid(str(key))
        assert found is not None
        assert found.name == "Bea"

    def exists(conn: sa.Connection) -> None:
        assert Sessions.exists(add_session(conn)) is True

    def create(conn: sa.Connection) -> None:
        key = uuid.uuid4()
        assert Sessions.create(session_uuid=key, name="Cy").uuid == key
        assert column(conn, "user_sessions", "name", "uuid = :k", k=key) == "Cy"

    def create_many(conn: sa.Connection) -> None:
        keys = [uuid.uuid4(), uuid.uuid4()]
        assert Sessions.create_many([{"uuid": key, "name": "Di"} for key in keys]) == 2
        assert not any(gone(conn, key) for key in keys)

    def update(conn: sa.Connection) -> None:
        key = add_session(conn, name="Ed")
        updated = Sessions.update(key, {"name": "Flo"})
        assert updated is not None
        assert updated.name == "Flo"
        assert column(conn, "user_sessions", "name", "uuid = :k", k=key) == "Flo"

    def delete(conn: sa.Connection) -> None:
        key = add_session(conn)
        assert Sessions.delete(key) is True
        assert gone(conn, key)

    def count(conn: sa.Connection) -> None:
        key = add_session(conn)
        assert Sessions.count([Filter("uuid", "eq", key)]) == 1

    def list_(conn: sa.Connection) -> None:
        keys = sorted(add_session(conn) for _ in range(2))
        assert [found.uuid for found in Sessions.list([Filter("uuid", "in", keys)])] == keys

    def complete(conn: sa.Connection) -> None:
        key = add_session(conn)
        assert Sessions.complete(key) is True
        assert column(conn, "user_sessions", "completed_at", "uuid = :k", k=key) is not None

    def list_uuids(conn: sa.Connection) -> None:
        key = add_session(conn)
        assert key in Sessions.list_uuids()

    def stream_uuids(conn: sa.Connection) -> None:
        key = add_session(conn)
        assert key in {found for batch in Sessions.stream_uuids() for found in batch}

    def find_by_email(conn: sa.Connection) -> None:
        email = f"{uuid.uuid4().hex}@example.com"
        key = add_session(conn, email=email)
        assert [found.uuid for found in Sessions.find_by_email(email.upper())] == [key]

    def list_sessions(conn: sa.Connection) -> None:
        key = add_session(conn, created_at=datetime(2999, 1, 1))
        assert [found.uuid for found in Sessions.list_sessions(limit=1)] == [key]

    def delete_abandoned(conn: sa.Connection) -> None:
        key = add_session(conn, created_at=datetime(2000, 1, 1))
        assert Sessions.delete_abandoned(24) >= 1
        assert gone(conn, key)

    return [
        Case(Sessions, name.rstrip("_"), run) for name, run in locals().items() if callable(run)
    ]


def _uploads_cases() -> list[Case]:
    def upload(conn: sa.Connection, **columns: Any) -> tuple[uuid.UUID, int]:
        key = add_session(conn)
        return key, add_upload(conn, key, **columns)

    def get_by_id(conn: sa.Connection) -> None:
        _, upload_id = upload(conn, filename="a.txt")
        found = Uploads.get_by_id(upload_id)
        assert found is not None
        assert found.filename == "a.txt"

    def exists(conn: sa.Connection) -> None:
        assert Uploads.exists(upload(conn)[1]) is True

    def create(conn: sa.Connection) -> None:
        key = add_session(conn)
        created = Uploads.create(
            session_uuid=key,
            filename="b.txt",
            storage_key=f"k/{key}",
            size_bytes=3,
            sha256="0" * 64,
        )
        assert column(conn, "uploaded_files", "filename", "id = :i", i=created.id) == "b.txt"

    def create_many(conn: sa.Connection) -> None:
        key = add_session(conn)
        rows = [
            {"session_uuid": key, "filename": "c.txt", "storage_key": f"k/{key}/{n}",
             "size_bytes": n, "sha256": "0" * 64}
            for n in range(3)
        ]  # fmt: skip
        assert Uploads.create_many(rows) == 3
        assert column(conn, "uploaded_files", "count(*)", "session_uuid = :k", k=key) == 3

    def update(conn: sa.Connection) -> None:
        _, upload_id = upload(conn)
        updated = Uploads.update(upload_id, {"filename": "d.txt"})
        assert updated is not None
        assert updated.filename == "d.txt"
        assert column(conn, "uploaded_files", "filename", "id = :i", i=upload_id) == "d.txt"

    def delete(conn: sa.Connection) -> None:
        _, upload_id = upload(conn)
        assert Uploads.delete(upload_id) is True
        assert column(conn, "uploaded_files", "deleted_at", "id = :i", i=upload_id) is not None

    def count(conn: sa.Connection) -> None:
        key, _ = upload(conn)
        assert Uploads.count([Filter("session_uuid", "eq", key)]) == 1

    def list_(conn: sa.Connection) -> None:
        key, upload_id = upload(conn)
        assert [found.id for found in Uploads.list([Filter("session_uuid", "eq", key)])] == [
            upload_id
        ]

    def record(conn: sa.Connection) -> None:
        key = add_session(conn)
        recorded = Uploads.record(key, "e.txt", f"k/{key}", 4, None, "0" * 64)
        assert column(conn, "uploaded_files", "size_bytes", "id = :i", i=recorded.id) == 4

    def list_for_session(conn: sa.Connection) -> None:
        key, upload_id = upload(conn)
        assert [found.id for found in Uploads.list_for_session(key)] == [upload_id]

    def total_bytes(conn: sa.Connection) -> None:
        key, _ = upload(conn, size_bytes=7)
        assert Uploads.total_bytes(key) == 7

    def stats(conn: sa.Connection) -> None:
        key, _ = upload(conn, size_bytes=10**12)  # more than any other case's
        assert [found.session_uuid for found in Uploads.stats(1)] == [key]

    return [
        Case(Uploads, name.rstrip("_"), run)
        for name, run in locals().items()
        if callable(run) and name != "upload"
    ]


def _verification_cases() -> list[Case]:
    def state(conn: sa.Connection, key: uuid.UUID, name: str) -> Any:
        return column(conn, "user_sessions", name, "uuid = :k", k=key)

    def get_by_id(conn: sa.Connection) -> None:
        key = add_session(conn, verification_code="111111")
        found = Verification.get_by_id(key)
        assert found is not None
        assert found.verification_code == "111111"

    def exists(conn: sa.Connection) -> None:
        assert Verification.exists(add_session(conn)) is True

    def create(conn: sa.Connection) -> None:
        key = uuid.uuid4()
        Verification.create(uuid=key, name="Gil", verification_code="222222")
        assert state(conn, key, "verification_code") == "222222"

    def create_many(conn: sa.Connection) -> None:
        key = uuid.uuid4()
        assert Verification.create_many([{"uuid": key, "name": "Hal"}]) == 1
        assert not gone(conn, key)

    def update(conn: sa.Connection) -> None:
        key = add_session(conn)
        Verification.update(key, {"verification_attempts": 2})
        assert state(conn, key, "verification_attempts") == 2

    def delete(conn: sa.Connection) -> None:
        key = add_session(conn)
        assert Verification.delete(key) is True
        assert gone(conn, key)

    def count(conn: sa.Connection) -> None:
        key = add_session(conn)
        assert Verification.count([Filter("uuid", "eq", key)]) == 1

    def list_(conn: sa.Connection) -> None:
        key = add_session(conn)
        assert [found.uuid for found in Verification.list([Filter("uuid", "eq", key)])] == [key]

    def get(conn: sa.Connection) -> None:
        key = add_session(conn, verification_code="333333")
        found = Verification.get(key)
        assert found is not None
        assert found.verification_code == "333333"

    def set_code(conn: sa.Connection) -> None:
        key = add_session(conn)
        assert Verification.set_code(key, "444444", datetime(2030, 1, 1)) is True
        assert state(conn, key, "verification_code") == "444444"

    def increment_attempts(conn: sa.Connection) -> None:
        key = add_session(conn)
        assert Verification.increment_attempts(key) is True
        assert state(conn, key, "verification_attempts") == 1

    def increment_resend_attempts(conn: sa.Connection) -> None:
        key = add_session(conn)
        assert Verification.increment_resend_attempts(key) is True
        assert state(conn, key, "resend_attempts") == 1

    def mark_verified(conn: sa.Connection) -> None:
        key = add_session(conn)
        assert Verification.mark_verified(key) is True
        assert state(conn, key, "is_email_verified") is True

    def reset(conn: sa.Connection) -> None:
        key = add_session(conn, verification_attempts=2)
        assert Verification.reset(key) is True
        assert state(conn, key, "verification_attempts") == 0

    def cleanup_expired(conn: sa.Connection) -> None:
        expired = datetime(2000, 1, 1)
        key = add_session(conn, verification_code="555555", verification_expires_at=expired)
        assert Verification.cleanup_expired(24) >= 1
        assert state(conn, key, "verification_code") is None

    return [
        Case(Verification, name.rstrip("_"), run)
        for name, run in locals().items()
        if callable(run) and name != "state"
    ]


CASES = [*_sessions_cases(), *_uploads_cases(), *_verification_cases()]


def operations(repository: type[BaseRepository[Any]]) -> set[str]:
    """The names of the repository's operations, its own and inherited."""
    return {
        name
        for name in dir(repository)
        if isinstance(inspect.getattr_static(repository, name), Operation)
    }


@pytest.mark.parametrize("repository", REPOSITORIES, ids=lambda repository: repository.__name__)
def test_every_operation_has_a_case(repository: type[BaseRepository[Any]]) -> None:
    covered = {case.operation for case in CASES if case.repository is repository}
    assert covered == operations(repository)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_a_class_level_call_commits_in_a_session_of_its_own(
    case: Case, outside: sa.Connection
) -> None:
    case.run(outside)
