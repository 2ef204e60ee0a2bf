"""The test harness itself: databases a crashed run left behind are swept, live runs' are kept."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psycopg2
import pytest
import sqlalchemy as sa
from psycopg2 import sql

from tests.fixtures.postgres import PREFIX, PgServer, _alive, _drop_leftovers
from tests.legacy.seeding import Connection


def dead_pid() -> int:
    """The pid of a process that has just exited, as a crashed run's would be."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert not _alive(process.pid)
    return process.pid


def database_exists(maintenance: Connection, name: str) -> bool:
    with maintenance.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None


@pytest.fixture
def maintenance(pg_server: PgServer) -> Iterator[Connection]:
    """An autocommit connection to the server's maintenance database."""
    conn = psycopg2.connect(dbname=pg_server.maintenance_db, **pg_server.libpq)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def crashed_runs_template(maintenance: Connection) -> Iterator[str]:
    """A template database named as a run whose process is gone would have left it."""
    name = f"{PREFIX}{dead_pid()}"
    with maintenance.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 IS_TEMPLATE true").format(
                sql.Identifier(name)
            )
        )
    try:
        yield name
    finally:
        if database_exists(maintenance, name):
            with maintenance.cursor() as cur:
                cur.execute(
                    sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name))
                )
                cur.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))


class TestDropLeftovers:
    def test_drops_a_crashed_run_template_database(
        self, pg_server: PgServer, maintenance: Connection, crashed_runs_template: str
    ) -> None:
        _drop_leftovers(pg_server)

        assert not database_exists(maintenance, crashed_runs_template)

    def test_keeps_the_databases_of_this_live_run(
        self, pg_server: PgServer, maintenance: Connection, database_url: str
    ) -> None:
        _drop_leftovers(pg_server)

        shared = sa.make_url(database_url).database
        assert shared is not None
        assert database_exists(maintenance, pg_server.template)
        assert database_exists(maintenance, shared)
