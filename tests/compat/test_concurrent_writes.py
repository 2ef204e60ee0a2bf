"""Compared writes on one row from many threads: each call sees the row as its own serving
side will, so concurrent writers never show up as false mismatches."""

from __future__ import annotations

import threading

import psycopg2.errors
import psycopg2.extensions
import pytest

import compat
from compat import email_verification, user_sessions
from tests.compat.calls import new_session
from tests.fixtures.layer import Layer, observer_connection

THREADS = 6
ROUNDS = 5


def hammer(call: object, session_uuid: str) -> list[BaseException]:
    """THREADS threads call ``call(session_uuid)`` at the same moment; their errors."""
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def run() -> None:
        start.wait(timeout=30)
        try:
            call(session_uuid)  # type: ignore[operator]
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.parametrize("mode", ["shadow", "live"])
@pytest.mark.parametrize(
    ("key", "call"),
    [
        (
            "email_verification.increment_verification_attempts",
            email_verification.increment_verification_attempts,
        ),
        ("user_sessions.complete_session", user_sessions.complete_session),
    ],
)
def test_concurrent_writers_on_one_row_cause_no_false_mismatch(
    committed_layer: Layer,
    observer: psycopg2.extensions.connection,
    key: str,
    call: object,
    mode: str,
) -> None:
    committed_layer.set_flags({key: mode})
    for _ in range(ROUNDS):
        assert hammer(call, new_session(observer)) == []
    observations = [o for o in committed_layer.observations() if o.key == key]
    assert len(observations) == THREADS * ROUNDS
    assert [o.diff_text() for o in observations if not o.matched] == []


def test_a_compared_write_that_cannot_lock_its_row_raises_the_lock_error_and_records_nothing(
    committed_layer: Layer, observer: psycopg2.extensions.connection
) -> None:
    key = "user_sessions.complete_session"
    session_uuid = new_session(observer)
    committed_layer.set_flags({key: "shadow"})
    locker = observer_connection(committed_layer.url)
    locker.autocommit = False
    try:
        with locker.cursor() as cur:
            cur.execute("SELECT 1 FROM user_sessions WHERE uuid = %s FOR UPDATE", (session_uuid,))
        with pytest.raises(psycopg2.errors.LockNotAvailable), compat.transaction() as unit:
            unit.connection.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
            user_sessions.complete_session(session_uuid)
    finally:
        locker.rollback()
        locker.close()
    # The candidate never ran: no observation, so no false mismatch for a gate or the guard.
    assert [o for o in committed_layer.observations() if o.key == key] == []
