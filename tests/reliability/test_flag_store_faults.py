"""A flag store in trouble never stops a facade call: the last good flags serve it (legacy when
none was ever read), with one warning for the whole outage, however many calls it spans.

tests/compat/test_flags.py checks the store itself (missing, locked, unreachable); this checks
the calls: which path served them, as the SQL each path sent shows.
"""

from __future__ import annotations

import logging

import psycopg2.extensions
import pytest

from compat import user_sessions
from compat.flags.sources import READ_TIMEOUT_MS
from compat.flags.store import FlagStore
from compat.routing.declaration import REGISTRY
from compat.shadow.observation import Side
from tests.compat.calls import new_session
from tests.compat.test_flags import FakeClock, flip
from tests.fixtures.layer import Layer, observer_connection

KEY = "user_sessions.get_session"
TTL = 5.0
CALLS_DURING_THE_OUTAGE = 20


def running_store(layer: Layer) -> tuple[FlagStore, FakeClock]:
    """A flag store as a running process holds it, on a clock the test moves; serving calls."""
    clock = FakeClock()
    store = FlagStore(REGISTRY, environ={}, ttl_seconds=TTL, clock=clock)
    layer.runtime.flags = store
    return store, clock


def served_by(layer: Layer, session_uuid: str) -> list[Side]:
    layer.forget_statements()
    assert user_sessions.get_session(session_uuid) is not None
    return layer.paths_touching_data()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "compat.flags" and r.levelno >= logging.WARNING
    ]


def rename(observer: psycopg2.extensions.connection, old: str, new: str) -> None:
    with observer.cursor() as cur:
        cur.execute(f"ALTER TABLE {old} RENAME TO {new}")


class TestWhileTheFlagTableIsMissing:
    def test_calls_are_served_by_the_last_good_flags_with_one_warning(
        self,
        committed_layer: Layer,
        observer: psycopg2.extensions.connection,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.WARNING, logger="compat.flags")
        session_uuid = new_session(observer)
        flip(observer, KEY, "orm")
        store, clock = running_store(committed_layer)
        assert served_by(committed_layer, session_uuid) == [Side.ORM]
        rename(observer, "compat_flags", "compat_flags_away")
        for _ in range(CALLS_DURING_THE_OUTAGE):
            clock.advance(TTL)
            assert served_by(committed_layer, session_uuid) == [Side.ORM]
            assert store.settle(timeout=10)
        [warning] = warnings(caplog)
        assert "keeping the last good values" in warning
        rename(observer, "compat_flags_away", "compat_flags")
        flip(observer, KEY, "legacy")
        clock.advance(TTL)
        served_by(committed_layer, session_uuid)  # notices the stale copy, refreshes behind
        assert store.settle(timeout=10)
        assert served_by(committed_layer, session_uuid) == [Side.LEGACY]

    def test_calls_of_a_process_that_never_read_it_are_served_by_legacy(
        self,
        committed_layer: Layer,
        observer: psycopg2.extensions.connection,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.WARNING, logger="compat.flags")
        session_uuid = new_session(observer)
        flip(observer, KEY, "orm")
        rename(observer, "compat_flags", "compat_flags_away")
        store, clock = running_store(committed_layer)
        for _ in range(CALLS_DURING_THE_OUTAGE):
            assert served_by(committed_layer, session_uuid) == [Side.LEGACY]
            clock.advance(TTL)
            assert store.settle(timeout=10)
        [warning] = warnings(caplog)
        assert "keeping the defaults" in warning


class TestWhileTheFlagTableIsLocked:
    def test_calls_do_not_wait_for_it_and_are_served_by_the_last_good_flags(
        self,
        committed_layer: Layer,
        observer: psycopg2.extensions.connection,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.WARNING, logger="compat.flags")
        session_uuid = new_session(observer)
        flip(observer, KEY, "orm")
        store, clock = running_store(committed_layer)
        assert served_by(committed_layer, session_uuid) == [Side.ORM]
        locker = observer_connection(committed_layer.url)
        locker.autocommit = False
        try:
            with locker.cursor() as cur:  # a migration holding the table, say
                cur.execute("LOCK TABLE compat_flags IN ACCESS EXCLUSIVE MODE")
            for _ in range(2):
                clock.advance(TTL)
                assert served_by(committed_layer, session_uuid) == [Side.ORM]
                assert not store.settle(timeout=0), "the call waited for the flag read"
                # The read in the background gives up after READ_TIMEOUT_MS.
                assert store.settle(timeout=10 + READ_TIMEOUT_MS / 1000)
                assert served_by(committed_layer, session_uuid) == [Side.ORM]
        finally:
            locker.rollback()
            locker.close()
        [warning] = warnings(caplog)
        assert "QueryCanceled" in warning
        assert "keeping the last good values" in warning
