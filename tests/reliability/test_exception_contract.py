"""Whatever fails, the facade raises what the legacy function would have: its class, its SQLSTATE.

Each failure kind is made to happen to a legacy function called directly
(connecting per call, as the application did before the facade) and to the
same function through the facade in each mode and inside
``compat.transaction()``; the two exceptions must be of the same class with
the same ``pgcode``. A connection that cannot be made fails in the pool's
connect, a killed backend mid-statement, a timeout or a serialization failure
in a statement: every path, one contract.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2
import psycopg2.extensions
import pytest
import sqlalchemy as sa

import compat
import layer_settings
import legacy.user_sessions
from compat import user_sessions
from compat.runtime import build_runtime, use_runtime
from compat.verify.embedded import EmbeddedUnavailable, embedded_postgres
from legacy.db import lend_connection
from tests.fixtures.layer import observer_connection
from tests.fixtures.postgres import RUN, PgServer

MODES = ("legacy", "shadow", "live", "orm")
DEADLINE_SECONDS = 15.0
TIMEOUT_MS = 100


@dataclass(frozen=True, slots=True)
class Raised:
    """What a failure looks like to the caller: the exception's class and its SQLSTATE."""

    cls: type[BaseException]
    pgcode: str | None

    @classmethod
    def by(cls, call: Callable[[], object]) -> Raised:
        with pytest.raises(Exception) as raised:  # noqa: PT011  (the class is what is compared)
            call()
        return cls(type(raised.value), getattr(raised.value, "pgcode", None))


@contextlib.contextmanager
def facade_in(mode: str, url: str, **knobs: str) -> Iterator[None]:
    """The facade on ``url`` with every function in ``mode`` (flags from the environment)."""
    environ = {"DATABASE_URL": url, "COMPAT_FLAGS": f"*={mode}", **knobs}
    runtime = build_runtime(layer_settings.load(environ), environ=environ, ttl_seconds=3600)
    with use_runtime(runtime):
        yield


def in_a_unit(call: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with compat.transaction():
            return call()

    return run


# -- a database that cannot be used ---------------------------------------------------------


@pytest.fixture(scope="module")
def password_server() -> Iterator[str]:
    """A server of our own that checks passwords: the role ``checked`` has the password 'right'."""
    try:
        with embedded_postgres() as server:
            url = server.libpq_url
            admin = psycopg2.connect(url)
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute("CREATE ROLE checked LOGIN PASSWORD 'right'")
                cur.execute("SHOW hba_file")
                row = cur.fetchone()
                assert row is not None
                hba = Path(row[0])
                hba.write_text(
                    "local all checked scram-sha-256\nlocal all all trust\n" + hba.read_text()
                )
                cur.execute("SELECT pg_reload_conf()")
            admin.close()
            wrong = url.replace("postgresql://postgres@", "postgresql://checked:wrong@", 1)
            # The reload is asynchronous: wait until the server checks the password.
            deadline = time.monotonic() + DEADLINE_SECONDS
            while _accepts(wrong):
                assert time.monotonic() < deadline, "the server never started checking passwords"
            yield wrong
    except EmbeddedUnavailable as error:
        pytest.skip(f"no server of our own for the password case: {error}")


def _accepts(url: str) -> bool:
    try:
        psycopg2.connect(url).close()
    except psycopg2.OperationalError:
        return False
    return True


UNUSABLE: dict[str, Callable[[PgServer, str], str]] = {
    "the server is down (a refused port)": lambda server, _: (
        "postgresql://postgres@127.0.0.1:9/app"
    ),
    "the database is missing": lambda server, _: (
        f"postgresql://{server.user}@{server.host}:{server.port}/no_such_{uuid.uuid4().hex[:8]}"
    ),
    "the password is wrong": lambda _, wrong_password: wrong_password,
}


@pytest.fixture(params=sorted(UNUSABLE))
def unusable_url(
    request: pytest.FixtureRequest, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> str:
    wrong = request.getfixturevalue("password_server") if "password" in request.param else ""
    url = UNUSABLE[request.param](pg_server, wrong)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


class TestWhenTheDatabaseCannotBeUsed:
    @pytest.mark.parametrize("mode", MODES)
    def test_a_facade_call_raises_what_the_legacy_function_raises(
        self, unusable_url: str, mode: str
    ) -> None:
        session_uuid = str(uuid.uuid4())
        expected = Raised.by(lambda: legacy.user_sessions.get_session(session_uuid))
        assert expected.cls is psycopg2.OperationalError
        with facade_in(mode, unusable_url):
            assert Raised.by(lambda: user_sessions.get_session(session_uuid)) == expected
            assert Raised.by(in_a_unit(lambda: user_sessions.count_sessions())) == expected

    def test_opening_a_unit_of_work_raises_what_the_legacy_function_raises(
        self, unusable_url: str
    ) -> None:
        expected = Raised.by(legacy.user_sessions.count_sessions)
        with facade_in("legacy", unusable_url):
            assert Raised.by(in_a_unit(lambda: None)) == expected


# -- failures in a statement ----------------------------------------------------------------


@pytest.fixture
def database(
    pg_server: PgServer,
    migrated_template: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A fresh migrated database that DATABASE_URL names, statement and lock timeouts unset."""
    name = f"{RUN}_x{abs(hash(request.node.nodeid)) % 10**10}"
    with pg_server.janitor(name, template=migrated_template):
        url = sa.make_url(pg_server.url(name)).set(drivername="postgresql")
        text = url.render_as_string(hide_password=False)
        monkeypatch.setenv("DATABASE_URL", text)
        yield text


def with_options(monkeypatch: pytest.MonkeyPatch, url: str, options: str) -> str:
    """``url`` whose every connection (legacy and pooled) runs with these server options."""
    # libpq reads %20, not +, as a space in a URL.
    text = f"{url}?options={quote(options)}"
    monkeypatch.setenv("DATABASE_URL", text)
    return text


def a_session() -> str:
    session_uuid = str(uuid.uuid4())
    legacy.user_sessions.insert_session(session_uuid, "Contract", None)
    return session_uuid


@contextlib.contextmanager
def table_locked(url: str) -> Iterator[psycopg2.extensions.connection]:
    """user_sessions locked by another session (ACCESS EXCLUSIVE) until the block ends."""
    holder = observer_connection(url)
    holder.autocommit = False
    try:
        with holder.cursor() as cur:
            cur.execute("LOCK TABLE user_sessions IN ACCESS EXCLUSIVE MODE")
        yield holder
    finally:
        holder.rollback()
        holder.close()


def blocked_backends(watcher: psycopg2.extensions.connection) -> list[int]:
    with watcher.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cur.fetchall()]


def killed_while_blocked(url: str, call: Callable[[], object]) -> Raised:
    """Run ``call`` until it waits on a lock, then end its backend as an operator would."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:
            outcome.append(error)
        else:
            outcome.append(None)

    watcher = observer_connection(url)
    try:
        with table_locked(url):
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            deadline = time.monotonic() + DEADLINE_SECONDS
            while not (pids := blocked_backends(watcher)):
                assert worker.is_alive(), f"the call did not wait on the lock: {outcome}"
                assert time.monotonic() < deadline, "the call never waited on the lock"
            with watcher.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid", (pids,))
            worker.join(DEADLINE_SECONDS)
            assert not worker.is_alive(), "the call went on after its backend was ended"
    finally:
        watcher.close()
    error = outcome[0]
    assert error is not None, "the call succeeded although its backend was ended"
    return Raised(type(error), getattr(error, "pgcode", None))


class TestWhenAStatementFails:
    @pytest.mark.parametrize("mode", MODES)
    def test_a_backend_ended_mid_call_raises_what_the_legacy_function_raises(
        self, database: str, mode: str
    ) -> None:
        session_uuid = a_session()
        # A write: a read whose connection dies is run once more on a fresh one
        # (the liveness check trusts a recently used connection), never a write.
        expected = killed_while_blocked(
            database, lambda: legacy.user_sessions.complete_session(session_uuid)
        )
        assert issubclass(expected.cls, psycopg2.OperationalError)
        with facade_in(mode, database):
            got = killed_while_blocked(
                database, lambda: user_sessions.complete_session(session_uuid)
            )
            assert got == expected
            in_unit = killed_while_blocked(
                database, in_a_unit(lambda: user_sessions.complete_session(session_uuid))
            )
            assert in_unit == expected
            # The pool replaced the dead connection: the next call just works.
            assert user_sessions.get_session(session_uuid) is not None

    @pytest.mark.parametrize(
        ("setting", "sqlstate"),
        [("statement_timeout", "57014"), ("lock_timeout", "55P03")],
    )
    @pytest.mark.parametrize("mode", MODES)
    def test_a_timeout_raises_what_the_legacy_function_raises(
        self,
        database: str,
        monkeypatch: pytest.MonkeyPatch,
        mode: str,
        setting: str,
        sqlstate: str,
    ) -> None:
        session_uuid = a_session()
        url = with_options(monkeypatch, database, f"-c {setting}={TIMEOUT_MS}")
        with table_locked(database):
            expected = Raised.by(lambda: legacy.user_sessions.get_session(session_uuid))
            assert expected.pgcode == sqlstate
            expected_write = Raised.by(lambda: legacy.user_sessions.complete_session(session_uuid))
            with facade_in(mode, url, COMPAT_CANDIDATE_TIMEOUT_MS=str(TIMEOUT_MS)):
                assert Raised.by(lambda: user_sessions.get_session(session_uuid)) == expected
                in_unit = Raised.by(in_a_unit(lambda: user_sessions.complete_session(session_uuid)))
                assert in_unit == expected_write

    @pytest.mark.parametrize("mode", MODES)
    def test_a_serialization_failure_raises_what_the_legacy_function_raises(
        self, database: str, mode: str
    ) -> None:
        session_uuid = a_session()
        bystander = observer_connection(database)

        def concurrent_update() -> None:
            with bystander.cursor() as cur:
                cur.execute("UPDATE user_sessions SET name = name WHERE uuid = %s", (session_uuid,))

        own = observer_connection(database)
        own.autocommit = False
        own.set_session(isolation_level="REPEATABLE READ")

        def legacy_unit() -> None:
            with lend_connection(own):
                legacy.user_sessions.get_session(session_uuid)
                concurrent_update()
                legacy.user_sessions.complete_session(session_uuid)

        try:
            expected = Raised.by(legacy_unit)
            own.rollback()
            assert expected == Raised(psycopg2.errors.SerializationFailure, "40001")

            def facade_unit() -> None:
                with compat.transaction("REPEATABLE READ"):
                    user_sessions.get_session(session_uuid)
                    concurrent_update()
                    user_sessions.complete_session(session_uuid)

            with facade_in(mode, database):
                assert Raised.by(facade_unit) == expected
        finally:
            own.close()
            bystander.close()

    @pytest.mark.parametrize("mode", MODES)
    def test_a_commit_that_fails_to_serialize_raises_what_the_legacy_commit_raises(
        self, database: str, mode: str
    ) -> None:
        """Write skew under SERIALIZABLE: PostgreSQL refuses the second commit (40001)."""
        bystander = observer_connection(database)
        bystander.autocommit = False
        bystander.set_session(isolation_level="SERIALIZABLE")

        def skew_from_another_session() -> None:
            with bystander.cursor() as cur:
                cur.execute("SELECT count(*) FROM user_sessions")
                cur.execute(
                    "INSERT INTO user_sessions (uuid, name) VALUES (%s, 'Skew')",
                    (str(uuid.uuid4()),),
                )

        own = observer_connection(database)
        own.autocommit = False
        own.set_session(isolation_level="SERIALIZABLE")

        def legacy_unit() -> None:
            with lend_connection(own):
                legacy.user_sessions.count_sessions()
                skew_from_another_session()
                legacy.user_sessions.insert_session(str(uuid.uuid4()), "Mine", None)
                bystander.commit()
            own.commit()

        def facade_unit() -> None:
            with compat.transaction("SERIALIZABLE"):
                user_sessions.count_sessions()
                skew_from_another_session()
                user_sessions.insert_session(str(uuid.uuid4()), "Mine", None)
                bystander.commit()

        try:
            expected = Raised.by(legacy_unit)
            own.rollback()
            assert expected == Raised(psycopg2.errors.SerializationFailure, "40001")
            with facade_in(mode, database):
                assert Raised.by(facade_unit) == expected
        finally:
            bystander.rollback()
            own.close()
            bystander.close()
