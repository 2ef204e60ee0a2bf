"""Fixtures for the legacy suite: empty tables, lender connections, an unreachable server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.legacy.seeding import UNREACHABLE_URL, Connection, connect


@pytest.fixture
def empty_tables(legacy_db: Connection) -> Connection:
    """The rolled-back transaction, with no rows in user_sessions or uploaded_files.

    Tests that look at the whole table (counts, pages, sweeps) must not see
    what another run may have committed to the shared database.
    """
    with legacy_db.cursor() as cur:
        cur.execute("DELETE FROM user_sessions")  # uploaded_files follow: ON DELETE CASCADE
    return legacy_db


@pytest.fixture
def lender(request: pytest.FixtureRequest) -> Iterator[Connection]:
    """A plain psycopg2 connection in a transaction, as a unit of work owns one.

    It is on the test's ``fresh_database`` when the test has one, else on the
    shared database; whatever it has not committed is rolled back at the end.
    """
    if "fresh_database" in request.fixturenames:
        url = request.getfixturevalue("fresh_database")
    else:
        url = request.getfixturevalue("database_url")
    conn = connect(url)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def unreachable_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """DATABASE_URL names a server that is not there: any attempt to connect fails."""
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_URL)
