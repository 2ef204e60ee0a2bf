"""Every observation a process made is stored, or counted as dropped, however short the process.

Short-lived processes (a cron job, a management command, a pre-fork worker)
used to exit before the publisher's daemon thread had written anything. Each
test here runs real child processes against a fresh migrated database and
counts the rows they left.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg2.extensions
import pytest

from tests.fixtures.layer import Layer, observer_connection

PROCESSES = 10
CALLS_PER_PROCESS = 2
AT_ONCE = 2
WAIT_SECONDS = 120.0
COMPAT_VARIABLES = ("COMPAT_FLAGS", "COMPAT_FLAGS_FILE", "COMPAT_KILL_SWITCH", "COMPAT_FLAGS_TTL")

# Two shadow calls, then the ending the test asks for.
CHILD = """
import os, sys, uuid
import compat
from compat import user_sessions
user_sessions.count_sessions()
user_sessions.check_uuid_exists(str(uuid.uuid4()))
ending = sys.argv[1]
if ending == "shutdown":
    compat.shutdown()
    os._exit(0)
if ending == "gunicorn worker_exit":
    compat.gunicorn_worker_exit(None, None)
    os._exit(0)
"""


def child(url: str, ending: str, **knobs: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if k not in COMPAT_VARIABLES}
    environ.update(DATABASE_URL=url, COMPAT_FLAGS="*=shadow", **knobs)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, ending],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> str:
    """Wait for the child; return its stderr (it must have succeeded)."""
    _out, err = process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == 0, err
    return err


@pytest.fixture
def observer(committed_layer: Layer) -> Iterator[psycopg2.extensions.connection]:
    conn = observer_connection(committed_layer.url)
    try:
        yield conn
    finally:
        conn.close()


def stored(observer: psycopg2.extensions.connection) -> int:
    with observer.cursor() as cur:
        # Every stored observation is counted in the rollups (0006), or kept as a fault.
        cur.execute(
            "SELECT (SELECT coalesce(sum(compared), 0) FROM compat_observation_rollups) "
            "+ (SELECT count(*) FROM compat_observations WHERE fault IS NOT NULL)"
        )
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def dropped(observer: psycopg2.extensions.connection) -> dict[str, int]:
    with observer.cursor() as cur:
        cur.execute("SELECT key, sum(dropped) FROM compat_observation_drops GROUP BY key")
        return {key: int(count) for key, count in cur.fetchall()}


class TestShortLivedProcesses:
    # Ten processes for the plain exit (the case issue 17 reported); three for the others.
    @pytest.mark.parametrize(
        ("ending", "processes"),
        [("exit", PROCESSES), ("shutdown", 3), ("gunicorn worker_exit", 3)],
    )
    def test_every_observation_of_every_process_is_stored(
        self,
        committed_layer: Layer,
        observer: psycopg2.extensions.connection,
        ending: str,
        processes: int,
    ) -> None:
        # Two at a time: the server is shared, and each child holds a connection or two.
        # A generous drain timeout: this is about exit draining at all, not about its bound.
        for first in range(0, processes, AT_ONCE):
            children = [
                child(committed_layer.url, ending, COMPAT_DRAIN_TIMEOUT_MS="60000")
                for _ in range(first, min(first + AT_ONCE, processes))
            ]
            for process in children:
                assert "dropped" not in finished(process)
        assert stored(observer) == processes * CALLS_PER_PROCESS
        assert dropped(observer) == {}

    def test_what_could_not_be_stored_before_the_drain_timeout_is_counted_as_dropped(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        holder = observer_connection(committed_layer.url)
        holder.autocommit = False
        try:
            with holder.cursor() as cur:
                # Another session holds the table: the child's insert waits on it.
                cur.execute("LOCK TABLE compat_observations IN ACCESS EXCLUSIVE MODE")
            process = child(committed_layer.url, "exit", COMPAT_DRAIN_TIMEOUT_MS="300")
            err = finished(process)
        finally:
            holder.rollback()
            holder.close()
        assert "observations of this process were dropped" in err
        assert dropped(observer) == {
            "user_sessions.count_sessions": 1,
            "user_sessions.check_uuid_exists": 1,
        }
        assert stored(observer) == 0
