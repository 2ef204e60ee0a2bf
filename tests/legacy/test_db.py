"""Legacy side: get_db_connection() and the lend_connection() seam, on a real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from contextlib import closing

import psycopg2
import psycopg2.errorcodes
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
import pytest
import sqlalchemy as sa
from psycopg2 import sql

import legacy.db
from legacy.db import database_dsn, fetch_batches, get_db_connection, lend_connection
from legacy.uploads import record_upload, upload_stats
from legacy.user_sessions import get_session, insert_session, list_session_uuids
from tests.fixtures.postgres import PgServer
from tests.legacy.seeding import (
    Connection,
    connect,
    new_uuid,
    query_all,
    query_one,
    query_value,
    seed_session,
    sha256_of,
)

ENVIRONMENT = (
    "DATABASE_URL",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
)


def libpq_uri(url: str) -> str:
    """The harness's SQLAlchemy URL as the plain libpq URI an operator would set."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def names_in(conn: Connection) -> list[str]:
    """Names of the sessions committed so far, as another connection sees them."""
    return [row["name"] for row in query_all(conn, "SELECT name FROM user_sessions ORDER BY name")]


def open_cursors(conn: Connection) -> list[str]:
    """The server-side cursors open in ``conn``'s session."""
    return [row["name"] for row in query_all(conn, "SELECT name FROM pg_cursors ORDER BY name")]


def show(conn: psycopg2.extensions.connection, setting: str) -> str:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SHOW {}").format(sql.Identifier(setting)))
        row = cur.fetchone()
    assert row is not None
    value: str = row[0]
    return value


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No database variable set: each test sets exactly the ones it is about."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[psycopg2.extensions.connection]:
    """Every connection legacy code opens from now on (the real ones, only recorded)."""
    connections: list[psycopg2.extensions.connection] = []
    real_connect = legacy.db._connect

    def recording_connect() -> psycopg2.extensions.connection:
        conn = real_connect()
        connections.append(conn)
        return conn

    monkeypatch.setattr(legacy.db, "_connect", recording_connect)
    return connections


class TestDatabaseDsn:
    def test_uses_database_url_first(self, clean_environment: pytest.MonkeyPatch) -> None:
        clean_environment.setenv("DATABASE_URL", "postgresql://app@db.internal:5433/maria")
        clean_environment.setenv("POSTGRES_HOST", "elsewhere")

        assert database_dsn() == "postgresql://app@db.internal:5433/maria"

    def test_drops_the_sqlalchemy_driver_suffix(
        self, clean_environment: pytest.MonkeyPatch
    ) -> None:
        clean_environment.setenv("DATABASE_URL", "postgresql+psycopg2://app@db.internal/maria")

        assert database_dsn() == "postgresql://app@db.internal/maria"

    def test_keeps_credentials_port_and_query_of_a_sqlalchemy_url(
        self, clean_environment: pytest.MonkeyPatch
    ) -> None:
        clean_environment.setenv(
            "DATABASE_URL", "postgresql+psycopg2://app:s%40cret@db:6543/maria?sslmode=require"
        )

        assert psycopg2.extensions.parse_dsn(database_dsn()) == {
            "user": "app",
            "password": "s@cret",
            "host": "db",
            "port": "6543",
            "dbname": "maria",
            "sslmode": "require",
        }

    def test_builds_the_dsn_from_postgres_variables(
        self, clean_environment: pytest.MonkeyPatch
    ) -> None:
        for name, value in {
            "POSTGRES_HOST": "db.internal",
            "POSTGRES_PORT": "5433",
            "POSTGRES_DB": "maria",
            "POSTGRES_USER": "app",
            "POSTGRES_PASSWORD": "it's a 'secret' \\ with spaces",
        }.items():
            clean_environment.setenv(name, value)

        assert psycopg2.extensions.parse_dsn(database_dsn()) == {
            "host": "db.internal",
            "port": "5433",
            "dbname": "maria",
            "user": "app",
            "password": "it's a 'secret' \\ with spaces",
        }

    def test_defaults_to_the_local_postgres_database(
        self, clean_environment: pytest.MonkeyPatch
    ) -> None:
        assert psycopg2.extensions.parse_dsn(database_dsn()) == {
            "host": "127.0.0.1",
            "port": "5432",
            "dbname": "postgres",
            "user": "postgres",
        }

    def test_treats_an_empty_database_url_as_unset(
        self, clean_environment: pytest.MonkeyPatch
    ) -> None:
        clean_environment.setenv("DATABASE_URL", "")
        clean_environment.setenv("POSTGRES_DB", "maria")

        assert psycopg2.extensions.parse_dsn(database_dsn())["dbname"] == "maria"


class TestGetDbConnection:
    def test_connects_to_a_libpq_database_url(
        self, clean_environment: pytest.MonkeyPatch, database_url: str
    ) -> None:
        clean_environment.setenv("DATABASE_URL", libpq_uri(database_url))

        with closing(get_db_connection()) as conn:
            assert query_value(conn, "SELECT current_database()") == (
                sa.make_url(database_url).database
            )

    def test_connects_to_a_sqlalchemy_style_database_url(
        self, clean_environment: pytest.MonkeyPatch, database_url: str
    ) -> None:
        assert database_url.startswith("postgresql+psycopg2://")
        clean_environment.setenv("DATABASE_URL", database_url)

        with closing(get_db_connection()) as conn:
            assert query_value(conn, "SELECT current_database()") == (
                sa.make_url(database_url).database
            )

    def test_connects_with_postgres_variables(
        self, clean_environment: pytest.MonkeyPatch, pg_server: PgServer, database_url: str
    ) -> None:
        dbname = sa.make_url(database_url).database
        assert dbname is not None
        clean_environment.setenv("POSTGRES_HOST", pg_server.host)
        clean_environment.setenv("POSTGRES_PORT", str(pg_server.port))
        clean_environment.setenv("POSTGRES_DB", dbname)
        clean_environment.setenv("POSTGRES_USER", pg_server.user)
        if pg_server.password:
            clean_environment.setenv("POSTGRES_PASSWORD", pg_server.password)

        with closing(get_db_connection()) as conn:
            assert query_value(conn, "SELECT current_database()") == dbname

    def test_pins_the_session_time_zone_to_utc(
        self, clean_environment: pytest.MonkeyPatch, database_url: str
    ) -> None:
        clean_environment.setenv("DATABASE_URL", database_url)

        with closing(get_db_connection()) as conn:
            assert show(conn, "TimeZone") == "UTC"

    def test_pins_utc_over_a_time_zone_in_the_url_options(
        self, clean_environment: pytest.MonkeyPatch, database_url: str
    ) -> None:
        options = "options=-c%20TimeZone%3DAmerica%2FNew_York"
        clean_environment.setenv("DATABASE_URL", f"{libpq_uri(database_url)}?{options}")

        with closing(get_db_connection()) as conn:
            assert show(conn, "TimeZone") == "UTC"

    def test_keeps_other_options_of_the_url(
        self, clean_environment: pytest.MonkeyPatch, database_url: str
    ) -> None:
        options = "options=-c%20statement_timeout%3D4321"
        clean_environment.setenv("DATABASE_URL", f"{libpq_uri(database_url)}?{options}")

        with closing(get_db_connection()) as conn:
            assert (show(conn, "statement_timeout"), show(conn, "TimeZone")) == ("4321ms", "UTC")

    def test_pins_utc_over_the_database_default_time_zone(
        self, fresh_database: str, observer: Connection
    ) -> None:
        name = sa.make_url(fresh_database).database
        with observer.cursor() as cur:
            cur.execute(
                sql.SQL("ALTER DATABASE {} SET TimeZone = 'America/New_York'").format(
                    sql.Identifier(name or "")
                )
            )
        with closing(psycopg2.connect(libpq_uri(fresh_database))) as plain:
            assert show(plain, "TimeZone") == "America/New_York"

        with closing(get_db_connection()) as conn:
            assert show(conn, "TimeZone") == "UTC"

    def test_opens_a_new_connection_for_each_call(
        self, clean_environment: pytest.MonkeyPatch, database_url: str
    ) -> None:
        clean_environment.setenv("DATABASE_URL", database_url)

        with closing(get_db_connection()) as first, closing(get_db_connection()) as second:
            assert first.get_backend_pid() != second.get_backend_pid()


class TestConnectPerCall:
    """Outside lend_connection() each legacy call is its own transaction and connection."""

    def test_commits_each_call(self, fresh_database: str, observer: Connection) -> None:
        insert_session(new_uuid(), "Committed", None)

        assert names_in(observer) == ["Committed"]

    def test_closes_its_connection_after_a_call(
        self, fresh_database: str, opened: list[psycopg2.extensions.connection]
    ) -> None:
        insert_session(new_uuid(), "Ada", None)
        get_session(new_uuid())

        assert len(opened) == 2
        assert all(conn.closed for conn in opened)

    def test_closes_its_connection_after_a_failed_call(
        self,
        fresh_database: str,
        observer: Connection,
        opened: list[psycopg2.extensions.connection],
    ) -> None:
        session_uuid = seed_session(observer, name="Original")

        with pytest.raises(psycopg2.errors.UniqueViolation) as caught:
            insert_session(session_uuid, "Duplicate", None)

        assert caught.value.pgcode == psycopg2.errorcodes.UNIQUE_VIOLATION
        assert [conn.closed for conn in opened] == [True]
        assert names_in(observer) == ["Original"]

    def test_stamps_rows_in_utc_when_the_database_zone_is_not_utc(
        self, fresh_database: str, observer: Connection
    ) -> None:
        with observer.cursor() as cur:
            cur.execute(
                sql.SQL("ALTER DATABASE {} SET TimeZone = 'Asia/Tokyo'").format(
                    sql.Identifier(sa.make_url(fresh_database).database or "")
                )
            )
        utc_now = "SELECT now() AT TIME ZONE 'UTC'"
        before = query_value(observer, utc_now)

        created_at = insert_session(new_uuid(), "Ada", None)["created_at"]

        assert created_at is not None
        assert before <= created_at <= query_value(observer, utc_now)


class TestLendConnection:
    def test_hands_the_lent_connection_to_legacy_calls(self, lender: Connection) -> None:
        with lend_connection(lender):
            lent = get_db_connection()

        assert lent.get_backend_pid() == lender.get_backend_pid()

    def test_legacy_calls_see_the_lender_uncommitted_writes(self, lender: Connection) -> None:
        session_uuid = seed_session(lender, name="Uncommitted")

        with lend_connection(lender):
            row = get_session(session_uuid)

        assert row is not None
        assert row["name"] == "Uncommitted"

    def test_the_lender_sees_what_legacy_calls_wrote(self, lender: Connection) -> None:
        session_uuid = new_uuid()

        with lend_connection(lender):
            insert_session(session_uuid, "Ada", None)

        assert (
            query_value(lender, "SELECT name FROM user_sessions WHERE uuid = %s", (session_uuid,))
            == "Ada"
        )

    def test_leaves_the_commit_to_the_lender(
        self, fresh_database: str, lender: Connection, observer: Connection
    ) -> None:
        with lend_connection(lender):
            insert_session(new_uuid(), "Pending", None)
            insert_session(new_uuid(), "Pending too", None)
            assert names_in(observer) == []

        lender.commit()

        assert names_in(observer) == ["Pending", "Pending too"]

    def test_leaves_the_connection_open_in_its_transaction(self, lender: Connection) -> None:
        with lend_connection(lender):
            insert_session(new_uuid(), "Ada", None)

        assert lender.closed == 0
        assert lender.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS

    def test_leaves_the_rollback_to_the_lender_after_an_error(
        self, lender: Connection, observer: Connection
    ) -> None:
        first = new_uuid()

        with lend_connection(lender):
            insert_session(first, "First", None)
            with pytest.raises(psycopg2.errors.UniqueViolation):
                insert_session(first, "Duplicate", None)

        assert lender.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR
        lender.rollback()
        assert query_one(lender, "SELECT 1 FROM user_sessions WHERE uuid = %s", (first,)) is None
        assert query_one(observer, "SELECT 1 FROM user_sessions WHERE uuid = %s", (first,)) is None

    def test_neither_commits_nor_closes_in_a_with_block(
        self, lender: Connection, observer: Connection
    ) -> None:
        session_uuid = new_uuid()

        with lend_connection(lender), get_db_connection() as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO user_sessions (uuid, name) VALUES (%s, 'Ada')", (session_uuid,)
            )

        assert lender.closed == 0
        assert (
            query_one(observer, "SELECT 1 FROM user_sessions WHERE uuid = %s", (session_uuid,))
            is None
        )

    def test_returns_uuid_columns_as_str_on_a_connection_sqlalchemy_opened(
        self, legacy_db: Connection
    ) -> None:
        session_uuid = seed_session(legacy_db)
        # SQLAlchemy ran register_uuid on this connection: a plain cursor gets UUIDs.
        plain = query_value(
            legacy_db, "SELECT uuid FROM user_sessions WHERE uuid = %s", (session_uuid,)
        )
        assert plain == uuid.UUID(session_uuid)

        row = get_session(session_uuid)

        assert row is not None
        assert type(row["uuid"]) is str
        assert row["uuid"] == session_uuid

    def test_returns_every_legacy_uuid_as_str_on_a_connection_sqlalchemy_opened(
        self, empty_tables: Connection
    ) -> None:
        session_uuid = seed_session(empty_tables)

        upload = record_upload(
            session_uuid, "a.txt", f"uploads/{session_uuid}/a.txt", 1, None, sha256_of("a")
        )
        found = [*list_session_uuids(), upload["session_uuid"], upload_stats()[0]["session_uuid"]]

        assert found == [session_uuid] * 3
        assert {type(value) for value in found} == {str}

    def test_returns_uuid_columns_as_str_after_register_uuid_on_the_connection(
        self, lender: Connection
    ) -> None:
        psycopg2.extras.register_uuid(conn_or_curs=lender)  # type: ignore[no-untyped-call]
        session_uuid = seed_session(lender)

        with lend_connection(lender):
            row = get_session(session_uuid)

        assert row is not None
        assert type(row["uuid"]) is str

    def test_returns_uuid_arrays_as_lists_of_str(self, legacy_db: Connection) -> None:
        values = [new_uuid(), new_uuid()]

        with get_db_connection().cursor() as cur:
            cur.execute("SELECT %s::uuid[]", (values,))
            row = cur.fetchone()

        assert row == (values,)

    def test_leaves_the_lender_own_cursors_returning_uuid_objects(
        self, legacy_db: Connection
    ) -> None:
        session_uuid = seed_session(legacy_db)

        get_session(session_uuid)

        assert query_value(legacy_db, "SELECT %s::uuid", (session_uuid,)) == uuid.UUID(session_uuid)

    def test_connects_per_call_again_after_the_block(
        self, lender: Connection, unreachable_database: None
    ) -> None:
        with lend_connection(lender):
            pass

        with pytest.raises(psycopg2.OperationalError):
            get_db_connection()

    def test_connects_per_call_again_after_an_exception(
        self, lender: Connection, unreachable_database: None
    ) -> None:
        with pytest.raises(RuntimeError), lend_connection(lender):
            raise RuntimeError("the unit of work failed")

        with pytest.raises(psycopg2.OperationalError):
            get_db_connection()

    def test_restores_the_outer_connection_after_a_nested_block(
        self, lender: Connection, database_url: str
    ) -> None:
        with closing(connect(database_url)) as inner, lend_connection(lender):
            with lend_connection(inner):
                assert get_db_connection().get_backend_pid() == inner.get_backend_pid()
            assert get_db_connection().get_backend_pid() == lender.get_backend_pid()

    def test_is_not_seen_by_other_threads(
        self, lender: Connection, unreachable_database: None
    ) -> None:
        errors: list[Exception] = []

        def call_legacy() -> None:
            try:
                get_db_connection()
            except psycopg2.OperationalError as error:
                errors.append(error)

        with lend_connection(lender):
            thread = threading.Thread(target=call_legacy)
            thread.start()
            thread.join()

        assert len(errors) == 1, "the other thread should have tried to connect on its own"


class TestFetchBatches:
    """The legacy streaming read: a server-side cursor, a batch of tuples per round trip."""

    TEN_ROWS = "SELECT i, 'row ' || i FROM generate_series(1, 10) AS i ORDER BY i"

    def test_yields_every_row_of_a_plain_fetch_in_batches_of_the_size(
        self, legacy_db: Connection
    ) -> None:
        batches = list(fetch_batches(self.TEN_ROWS, size=4))

        assert [len(batch) for batch in batches] == [4, 4, 2]
        with legacy_db.cursor() as cur:
            cur.execute(self.TEN_ROWS)
            assert [row for batch in batches for row in batch] == cur.fetchall()

    def test_yields_nothing_for_an_empty_result(self, legacy_db: Connection) -> None:
        assert list(fetch_batches("SELECT 1 WHERE false")) == []

    def test_binds_parameters(self, legacy_db: Connection) -> None:
        rows = fetch_batches("SELECT %s::text, %s::int", ("'; DROP TABLE user_sessions; --", 7))

        assert list(rows) == [[("'; DROP TABLE user_sessions; --", 7)]]

    def test_returns_uuid_columns_as_str_on_a_connection_sqlalchemy_opened(
        self, empty_tables: Connection
    ) -> None:
        expected = sorted(seed_session(empty_tables) for _ in range(3))

        batches = list(fetch_batches("SELECT uuid FROM user_sessions ORDER BY uuid", size=2))

        assert batches == [[(expected[0],), (expected[1],)], [(expected[2],)]]
        assert {type(row[0]) for batch in batches for row in batch} == {str}

    def test_sees_the_lender_uncommitted_rows_and_leaves_its_transaction_open(
        self, lender: Connection
    ) -> None:
        session_uuid = seed_session(lender)

        with lend_connection(lender):
            rows = list(
                fetch_batches("SELECT name FROM user_sessions WHERE uuid = %s", (session_uuid,))
            )

        assert rows == [[("Ada Lovelace",)]]
        assert lender.closed == 0
        assert lender.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS

    def test_closes_its_cursor_on_the_lent_connection(self, lender: Connection) -> None:
        with lend_connection(lender):
            list(fetch_batches(self.TEN_ROWS, size=3))

        assert open_cursors(lender) == []

    def test_closes_its_cursor_on_the_lent_connection_when_the_caller_stops_early(
        self, lender: Connection
    ) -> None:
        with lend_connection(lender):
            batches = fetch_batches(self.TEN_ROWS, size=3)
            first = next(batches)
            assert len(open_cursors(lender)) == 1, "the cursor should be open mid-stream"
            batches.close()

        assert first == [(1, "row 1"), (2, "row 2"), (3, "row 3")]
        assert open_cursors(lender) == []
        assert lender.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS

    def test_can_stream_twice_at_once_on_the_lent_connection(self, lender: Connection) -> None:
        with lend_connection(lender):
            outer = fetch_batches(self.TEN_ROWS, size=5)
            pairs = [
                (batch[0][0], inner[0][0])
                for batch in outer
                for inner in fetch_batches("SELECT 100 + %s", (batch[0][0],))
            ]

        assert pairs == [(1, 101), (6, 106)]
        assert open_cursors(lender) == []

    def test_leaves_the_rollback_to_the_lender_after_an_error(self, lender: Connection) -> None:
        failing = "SELECT 10 / (5 - i) FROM generate_series(1, 10) AS i"
        batches: list[list[tuple[int, ...]]] = []

        with lend_connection(lender), pytest.raises(psycopg2.errors.DivisionByZero):
            batches.extend(fetch_batches(failing, size=2))

        assert batches == [[(2,), (3,)], [(5,), (10,)]]
        assert lender.closed == 0
        assert lender.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR

    def test_closes_its_own_connection_after_the_last_batch(
        self, fresh_database: str, opened: list[psycopg2.extensions.connection]
    ) -> None:
        batches = fetch_batches(self.TEN_ROWS, size=4)
        next(batches)
        [conn] = opened
        assert conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS

        rest = list(batches)

        assert [len(batch) for batch in rest] == [4, 2]
        assert conn.closed

    def test_ends_its_transaction_and_closes_its_own_connection_when_the_caller_stops_early(
        self,
        fresh_database: str,
        observer: Connection,
        opened: list[psycopg2.extensions.connection],
    ) -> None:
        # A transaction-level advisory lock is held until that transaction ends.
        locking = "SELECT pg_advisory_xact_lock(4242), i FROM generate_series(1, 10) AS i"
        batches = fetch_batches(locking, size=2)
        next(batches)
        held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"
        assert query_value(observer, held) == 1

        batches.close()

        assert [conn.closed for conn in opened] == [True]
        assert query_value(observer, held) == 0

    def test_closes_its_own_connection_after_an_error(
        self, fresh_database: str, opened: list[psycopg2.extensions.connection]
    ) -> None:
        with pytest.raises(psycopg2.errors.UndefinedColumn) as caught:
            list(fetch_batches("SELECT no_such_column FROM user_sessions"))

        assert caught.value.pgcode == psycopg2.errorcodes.UNDEFINED_COLUMN
        assert [conn.closed for conn in opened] == [True]

    def test_connects_per_call_outside_a_lent_connection(
        self, fresh_database: str, opened: list[psycopg2.extensions.connection]
    ) -> None:
        list(fetch_batches("SELECT 1"))
        list(fetch_batches("SELECT 2"))

        assert len(opened) == 2
