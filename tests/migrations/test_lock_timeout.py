"""Migrations tests: a revision blocked by another session's lock fails fast and is retried."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import psycopg2.extensions
import pytest
import sqlalchemy as sa
from alembic import command

import migrations
from migrations.locking import LOCK_NOT_AVAILABLE, LockPolicy, LockTimeoutExhausted
from tests.fixtures.postgres import make_engine

# Short, so that a test waits well under a second per attempt.
FAST = LockPolicy(timeout_ms=300, attempts=2, pause_s=0.1)
# A migration still running after this is hanging on the lock: the test fails, it does not wait.
DEADLINE_S = 30

# (revision the database starts at, command, target, table the blocked DDL needs)
BLOCKED = [
    pytest.param(
        "0002_compat_tables", "downgrade", "0001_baseline", "compat_flags", id="drop-table"
    ),
    pytest.param(
        "0002_compat_tables",
        "upgrade",
        "0003_sessions_lower_email_index",
        "user_sessions",
        id="create-index-concurrently",
    ),
]


def _libpq(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def holder(migrated_database: str) -> Iterator[psycopg2.extensions.connection]:
    """A second session, for holding locks; whatever it holds is released at the end."""
    conn = psycopg2.connect(_libpq(migrated_database))
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def _hold(holder: psycopg2.extensions.connection, table: str) -> None:
    """Take ACCESS EXCLUSIVE on ``table`` in an open transaction, as a long ALTER would."""
    with holder.cursor() as cur:
        cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")


def _within_deadline(run: Callable[[], None], holder: psycopg2.extensions.connection) -> float:
    """Run ``run`` in a thread; fail if it outlives DEADLINE_S. Returns the seconds it took."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run)
        try:
            future.result(timeout=DEADLINE_S)
        except TimeoutError:
            holder.rollback()  # lets the hung migration finish, so the pool can shut down
            pytest.fail(f"the migration still waited for the lock after {DEADLINE_S} s")
    return time.monotonic() - started


def _version(url: str) -> str:
    with psycopg2.connect(_libpq(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT version_num FROM alembic_version")
        row = cur.fetchone()
    conn.close()
    assert row is not None
    return str(row[0])


def _migrate(
    url: str, verb: str, start: str, target: str, policy: LockPolicy
) -> Callable[[], None]:
    """Bring the database (at head) down to ``start``; return the blocked command, not yet run."""
    config = migrations.alembic_config(url, allow_data_loss=True, lock_policy=policy)
    command.downgrade(config, start)
    return lambda: getattr(command, verb)(config, target)


class TestBlockedRevision:
    @pytest.mark.parametrize(("start", "verb", "target", "table"), BLOCKED)
    def test_fails_with_lock_timeout_instead_of_waiting(
        self,
        migrated_database: str,
        holder: psycopg2.extensions.connection,
        caplog: pytest.LogCaptureFixture,
        start: str,
        verb: str,
        target: str,
        table: str,
    ) -> None:
        """Waiting behind a lock queues every later query on the table: give up, and say why."""
        run = _migrate(migrated_database, verb, start, target, FAST)
        _hold(holder, table)
        caplog.set_level(logging.WARNING, logger="migrations.locking")

        def blocked() -> None:
            with pytest.raises(LockTimeoutExhausted, match=r"Gave up after 2 attempt\(s\)") as e:
                run()
            assert getattr(e.value.__cause__, "orig", None) is not None
            assert e.value.__cause__.orig.pgcode == LOCK_NOT_AVAILABLE  # type: ignore[union-attr]

        took = _within_deadline(blocked, holder)

        holder.rollback()
        assert took < 10, f"two 300 ms attempts took {took:.1f} s"
        assert "attempt 2 of 2" in caplog.text
        assert _version(migrated_database) == start, "the failed revision was recorded"

    @pytest.mark.parametrize(("start", "verb", "target", "table"), BLOCKED)
    def test_is_retried_and_runs_once_the_lock_is_released(
        self,
        migrated_database: str,
        holder: psycopg2.extensions.connection,
        caplog: pytest.LogCaptureFixture,
        start: str,
        verb: str,
        target: str,
        table: str,
    ) -> None:
        """A blocker that finishes within the retries costs a short delay, not a failed deploy."""
        run = _migrate(
            migrated_database,
            verb,
            start,
            target,
            LockPolicy(timeout_ms=200, attempts=10, pause_s=0.1),
        )
        _hold(holder, table)
        caplog.set_level(logging.WARNING, logger="migrations.locking")
        release = threading.Timer(0.5, holder.rollback)
        release.start()
        try:
            _within_deadline(run, holder)
        finally:
            release.cancel()

        assert "waited more than lock_timeout (200 ms)" in caplog.text
        assert _version(migrated_database) == target

    def test_a_lent_transaction_is_left_usable_after_a_lock_timeout(
        self, migrated_database: str, holder: psycopg2.extensions.connection
    ) -> None:
        """Each attempt on a lent transaction runs in a savepoint: the caller's work survives."""
        _hold(holder, "compat_flags")
        engine = make_engine(migrated_database, poolclass=sa.NullPool)
        try:
            with engine.begin() as connection:
                # The caller's own work in its transaction, before it lends it.
                connection.execute(sa.text("CREATE TABLE caller_work (id int)"))
                config = migrations.alembic_config(allow_data_loss=True, lock_policy=FAST)
                config.attributes["connection"] = connection

                def blocked() -> None:
                    with pytest.raises(LockTimeoutExhausted):
                        command.downgrade(config, "0001_baseline")

                _within_deadline(blocked, holder)
                assert connection.scalar(sa.text("SELECT to_regclass('caller_work')")) is not None
        finally:
            engine.dispose()


class TestLockTimeoutSetting:
    def test_a_lent_engines_connection_gets_its_lock_timeout_back(
        self, migrated_database: str
    ) -> None:
        """A pooled connection must not carry the migration's lock_timeout into the app."""
        engine = make_engine(migrated_database, pool_size=1, max_overflow=0)
        try:
            config = migrations.alembic_config(lock_policy=FAST)
            config.attributes["connection"] = engine
            command.upgrade(config, "head")
            with engine.connect() as connection:
                assert connection.scalar(sa.text("SHOW lock_timeout")) == "0"
        finally:
            engine.dispose()

    def test_offline_sql_sets_the_default_lock_timeout_first(self) -> None:
        """The script a DBA runs must fail fast on a lock, as `alembic upgrade` does."""
        config = migrations.alembic_config("postgresql://nobody@127.0.0.1:1/nowhere")
        config.output_buffer = io.StringIO()

        command.upgrade(config, "head", sql=True)

        assert config.output_buffer.getvalue().lstrip().startswith("SET lock_timeout = '5000ms';")
