"""Behind PgBouncer in transaction pooling, every path of the layer writes and reads in UTC.

The database's own default zone is America/New_York, so a server connection
the layer never set up runs in New York time; PgBouncer (two server
connections, transaction pooling) hands each transaction whichever one is
free. Rows written through it must carry the same UTC stamps as rows written
directly, on the legacy path outside the facade, through the facade on each
path, and with Alembic migrating through the pooler.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import psycopg2
import psycopg2.extensions
import pytest
import sqlalchemy as sa
from alembic import command
from psycopg2 import sql

import compat
import layer_settings
from compat import user_sessions
from compat.runtime import build_runtime, use_runtime
from legacy import user_sessions as legacy_user_sessions
from legacy.db import get_db_connection
from migrations.config import alembic_config
from tests.fixtures.pgbouncer import PgBouncer, have_pgbouncer, running_pgbouncer
from tests.fixtures.postgres import PgServer

NEW_YORK = "America/New_York"
UTC_NOW = "SELECT now() AT TIME ZONE 'UTC'"


@pytest.fixture(scope="module")
def pgbouncer(pg_server: PgServer) -> Iterator[PgBouncer]:
    if not have_pgbouncer():
        pytest.fail("pgbouncer is not installed: apt-get install -y pgbouncer")
    with running_pgbouncer(pg_server.host, pg_server.port, user=pg_server.user) as bouncer:
        yield bouncer


@pytest.fixture
def new_york_database(empty_database: str) -> str:
    """An empty database whose sessions default to America/New_York; its name."""
    name = sa.make_url(empty_database).database or ""
    conn = _autocommit(empty_database)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("ALTER DATABASE {} SET TimeZone = %s").format(sql.Identifier(name)),
                (NEW_YORK,),
            )
    finally:
        conn.close()
    return name


def _autocommit(url: str) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(sa.make_url(url).set(drivername="postgresql").render_as_string(False))
    conn.autocommit = True
    return conn


def _utc_now(conn: psycopg2.extensions.connection) -> datetime:
    with conn.cursor() as cur:
        cur.execute(UTC_NOW)
        row = cur.fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def _stamps(conn: psycopg2.extensions.connection, session_uuid: str) -> tuple[datetime, datetime]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT created_at, updated_at FROM user_sessions WHERE uuid = %s", (session_uuid,)
        )
        row = cur.fetchone()
    assert row is not None, f"session {session_uuid} was not written"
    return row[0], row[1]


class TestBehindPgBouncerInTransactionPooling:
    def test_plain_connections_through_the_pooler_run_in_the_database_zone(
        self, pgbouncer: PgBouncer, new_york_database: str
    ) -> None:
        """The premise: without the layer's SET, a pooled server connection is in New York time."""
        conn = psycopg2.connect(pgbouncer.libpq(new_york_database))
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW TimeZone")
                assert cur.fetchone() == (NEW_YORK,)
        finally:
            conn.close()

    def test_refuses_the_startup_parameter_the_layer_no_longer_sends(
        self, pgbouncer: PgBouncer, new_york_database: str
    ) -> None:
        with pytest.raises(psycopg2.OperationalError, match="unsupported startup parameter"):
            psycopg2.connect(pgbouncer.libpq(new_york_database), options="-c TimeZone=UTC")

    def test_every_path_stamps_the_same_utc_times_as_a_direct_connection(
        self,
        pgbouncer: PgBouncer,
        pg_server: PgServer,
        new_york_database: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        pooled_url = pgbouncer.url(new_york_database)
        direct_url = pg_server.url(new_york_database)
        command.upgrade(alembic_config(pooled_url), "head")  # Alembic through the pooler

        observer = _autocommit(direct_url)
        # A neighbour through the pooler that set New York time on its own
        # session: PgBouncer must not lend its zone to the layer's transactions.
        neighbour = psycopg2.connect(pgbouncer.libpq(new_york_database))
        neighbour.autocommit = True
        try:
            with neighbour.cursor() as cur:
                cur.execute("SET TimeZone = %s", (NEW_YORK,))
            before = _utc_now(observer)
            written: dict[str, str] = {}
            for route, url in (("pooled", pooled_url), ("direct", direct_url)):
                monkeypatch.setenv("DATABASE_URL", url)
                written.update(_write_on_every_path(route, url))
            after = _utc_now(observer)

            stamps = {key: _stamps(observer, session_uuid) for key, session_uuid in written.items()}
            for key, (created_at, updated_at) in stamps.items():
                assert before <= created_at <= after, f"{key}: created_at {created_at} not UTC"
                assert before <= updated_at <= after, f"{key}: updated_at {updated_at} not UTC"

            monkeypatch.setenv("DATABASE_URL", pooled_url)
            settings = layer_settings.load({"DATABASE_URL": pooled_url})
            for mode in ("legacy", "orm"):
                runtime = build_runtime(
                    settings, publishers=[], environ={"COMPAT_FLAGS": f"*={mode}"}
                )
                with use_runtime(runtime):
                    found = {
                        row["uuid"]
                        for row in user_sessions.list_sessions(created_after=before, limit=100)
                    }
                assert set(written.values()) <= found, f"list_sessions in {mode} through the pooler"
        finally:
            neighbour.close()
            observer.close()

    def test_a_session_level_time_zone_set_by_application_code_is_undone_on_checkout(
        self, pgbouncer: PgBouncer, new_york_database: str
    ) -> None:
        settings = layer_settings.load({"DATABASE_URL": pgbouncer.url(new_york_database)})
        runtime = build_runtime(settings, publishers=[], environ={"COMPAT_FLAGS": "*=orm"})
        with use_runtime(runtime):
            engine = runtime.engine
            with engine.connect() as connection:
                connection.exec_driver_sql("SET TIME ZONE 'America/New_York'")
                connection.commit()
            with engine.connect() as connection:
                assert connection.exec_driver_sql("SHOW TimeZone").scalar() == "UTC"


def _write_on_every_path(route: str, url: str) -> dict[str, str]:
    """One session per path (legacy outside the facade, the facade in legacy and orm mode)."""
    written = {}
    legacy_uuid = str(uuid.uuid4())
    legacy_user_sessions.insert_session(legacy_uuid, "outside the facade", None)
    written[f"{route} legacy get_db_connection"] = legacy_uuid
    conn = get_db_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TimeZone")
            assert cur.fetchone() == ("UTC",), f"{route}: get_db_connection() is not in UTC"
    finally:
        conn.close()
    settings = layer_settings.load({"DATABASE_URL": url})
    for mode in ("legacy", "orm"):
        runtime = build_runtime(settings, publishers=[], environ={"COMPAT_FLAGS": f"*={mode}"})
        with use_runtime(runtime):
            for _ in range(3):  # several transactions, whichever server connection is free
                session_uuid = str(uuid.uuid4())
                with compat.transaction():
                    user_sessions.insert_session(session_uuid, f"facade {mode}", None)
                    user_sessions.update_session(session_uuid, {"name": "updated"})
                written[f"{route} facade {mode} {session_uuid[:8]}"] = session_uuid
    return written
