"""Compared reads while other connections commit: both sides see one snapshot, so no false mismatch.

A compared read outside a unit of work runs its candidate and its serving
statement in one REPEATABLE READ transaction of its own (no savepoint). If
the two statements saw different snapshots, a commit landing between them
would show up as a mismatch that no code caused. Writer threads commit
updates and inserts as fast as they can, on connections of their own, while
the compared reads run; every observation must match.
"""

from __future__ import annotations

import threading
import uuid

import psycopg2
import psycopg2.extensions

import legacy.user_sessions
from compat import user_sessions
from tests.fixtures.layer import Layer, observer_connection

SESSIONS = 4
READS_PER_MODE = 60
MAX_WRITES = 20_000
"""Per writer: a bound, so that a test that goes wrong cannot write forever."""


def update_names(url: str, uuids: list[str], stop: threading.Event, done: list[int]) -> None:
    connection = observer_connection(url)
    try:
        with connection.cursor() as cursor:
            for n in range(MAX_WRITES):
                if stop.is_set():
                    break
                cursor.execute(
                    "UPDATE user_sessions SET name = %s, updated_at = clock_timestamp() "
                    "WHERE uuid = %s",
                    (f"Writer {n}", uuids[n % len(uuids)]),
                )
                done[0] += 1
    finally:
        connection.close()


def insert_sessions(url: str, stop: threading.Event, done: list[int]) -> None:
    connection = observer_connection(url)
    try:
        with connection.cursor() as cursor:
            for n in range(MAX_WRITES):
                if stop.is_set():
                    break
                cursor.execute(
                    "INSERT INTO user_sessions (uuid, name) VALUES (%s, %s)",
                    (str(uuid.uuid4()), f"Inserted {n}"),
                )
                done[0] += 1
    finally:
        connection.close()


class TestComparedReadsUnderConcurrentWriters:
    def test_no_compared_read_reports_a_mismatch_while_other_connections_commit(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        uuids = [str(uuid.uuid4()) for _ in range(SESSIONS)]
        for session_uuid in uuids:
            legacy.user_sessions.insert_session(session_uuid, "Before", "reader@example.com")
        keys = (
            "user_sessions.get_session",
            "user_sessions.count_sessions",
            "user_sessions.list_sessions",
            "user_sessions.find_sessions_by_email",
        )
        stop = threading.Event()
        updates, inserts = [0], [0]
        writers = [
            threading.Thread(target=update_names, args=(committed_layer.url, uuids, stop, updates)),
            threading.Thread(target=insert_sessions, args=(committed_layer.url, stop, inserts)),
        ]
        for writer in writers:
            writer.start()
        calls = 0
        try:
            for mode in ("shadow", "live"):
                committed_layer.set_flags(dict.fromkeys(keys, mode))
                for n in range(READS_PER_MODE):
                    user_sessions.get_session(uuids[n % SESSIONS])
                    user_sessions.count_sessions()
                    user_sessions.list_sessions(limit=20, order="-created_at")
                    user_sessions.find_sessions_by_email("reader@example.com")
                    calls += 4
        finally:
            stop.set()
            for writer in writers:
                writer.join(timeout=30)
        observations = committed_layer.observations()
        assert len(observations) == calls
        assert [o.summary() for o in observations if not o.matched] == []
        # The writers were busy throughout, not done before the reads began.
        assert updates[0] >= READS_PER_MODE, updates
        assert inserts[0] >= READS_PER_MODE, inserts
