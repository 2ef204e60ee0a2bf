"""Faults from outside the process: end every backend of the test's database, as a restart would."""

from __future__ import annotations

import time

import psycopg2.extensions

DEADLINE_SECONDS = 10.0


def terminate_every_backend(observer: psycopg2.extensions.connection) -> int:
    """End every other backend of the observer's database; return once all of them are gone.

    Only the observer's own database is touched (other people's tests share the
    server). ``pg_terminate_backend`` only signals, so this polls
    ``pg_stat_activity`` until the signalled backends have exited: a call made
    afterwards meets a dead connection, never one that is still dying.
    """
    with observer.cursor() as cur:
        cur.execute(
            "SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        row = cur.fetchone()
        assert row is not None
        pids: list[int] = row[0]
        cur.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))
            alive = cur.fetchone()
            assert alive is not None
            if alive[0] == 0:
                return len(pids)
            assert time.monotonic() < deadline, f"{alive[0]} terminated backends still alive"
