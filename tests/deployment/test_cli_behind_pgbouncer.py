"""The compat command line works behind PgBouncer and leaves its bounds on no pooled connection."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from alembic import command

from migrations.config import alembic_config
from tests.examples.gunicorn_server import server_environment
from tests.fixtures.pgbouncer import PgBouncer, have_pgbouncer, running_pgbouncer
from tests.fixtures.postgres import PgServer

COMPAT = str(Path(sys.executable).with_name("compat"))


@pytest.fixture(scope="module")
def one_server_connection(pg_server: PgServer) -> Iterator[PgBouncer]:
    """A PgBouncer with one server connection per database: every client gets the same one."""
    if not have_pgbouncer():
        pytest.fail("pgbouncer is not installed: apt-get install -y pgbouncer")
    settings = {"default_pool_size": 1}
    with running_pgbouncer(
        pg_server.host, pg_server.port, user=pg_server.user, settings=settings
    ) as bouncer:
        yield bouncer


def _compat(url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMPAT, *arguments],
        env=server_environment(url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestTheCommandLineBehindPgBouncer:
    def test_sets_and_lists_flags_and_leaves_no_timeout_on_the_server_connection(
        self, one_server_connection: PgBouncer, pg_server: PgServer, empty_database: str
    ) -> None:
        command.upgrade(alembic_config(empty_database), "head")
        dbname = empty_database.rsplit("/", 1)[1]
        url = one_server_connection.url(dbname)

        changed = _compat(
            url, "flags", "set", "uploads.*", "shadow", "--by", "test", "--reason", "pooler"
        )
        listed = _compat(url, "flags", "list")

        assert changed.returncode == 0, changed.stderr
        assert listed.returncode == 0, listed.stderr
        assert "shadow" in listed.stdout
        # The CLI's lock and statement timeouts were SET LOCAL: the one server
        # connection the next client gets carries neither.
        conn = psycopg2.connect(one_server_connection.libpq(dbname))
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
                )
                assert cur.fetchone() == ("0", "0")
        finally:
            conn.close()
