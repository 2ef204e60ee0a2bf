"""The pool's liveness check and the facade's one retry: no ping for a recent connection, no
stale connection handed out after a restart, a read retried once, a write never.

Round trips are counted from libpq's trace (bench/wire.py). Backends are ended
with ``pg_terminate_backend`` on the test's own database, as a restart would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
import pytest
import sqlalchemy as sa

import legacy.user_sessions
from bench.wire import trace_round_trips
from compat import user_sessions
from compat.routing.declaration import REGISTRY
from orm.database import create_engine
from tests.fixtures.layer import Layer
from tests.fixtures.postgres import make_engine
from tests.reliability.backends import terminate_every_backend


def one_query(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT 42").scalar() == 42


@contextmanager
def served_by(layer: Layer, engine: sa.Engine) -> Iterator[None]:
    """The layer's calls on ``engine`` for the block."""
    previous, layer.runtime.own_engine = layer.runtime.own_engine, engine
    try:
        yield
    finally:
        layer.runtime.own_engine = previous
        engine.dispose()


class TestTheLivenessCheck:
    def test_a_connection_used_within_the_trust_window_is_handed_out_without_a_ping(
        self, committed_layer: Layer
    ) -> None:
        engine = create_engine(committed_layer.url)
        try:
            one_query(engine)
            with trace_round_trips(engine) as trace:
                one_query(engine)
                assert trace.queries() == ["BEGIN", "SELECT 42", "ROLLBACK"]
        finally:
            engine.dispose()

    def test_a_connection_idle_past_the_trust_window_is_pinged_first(
        self, committed_layer: Layer
    ) -> None:
        engine = create_engine(committed_layer.url, trust_ms=50)
        try:
            one_query(engine)
            with trace_round_trips(engine) as trace:
                one_query(engine)  # traced from here on
                time.sleep(0.1)
                one_query(engine)
                assert trace.queries()[3:] == ["SELECT 1", "BEGIN", "SELECT 42", "ROLLBACK"]
        finally:
            engine.dispose()

    def test_a_terminated_connection_is_replaced_even_within_the_trust_window(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        # A window long enough that only the socket can tell the connection is dead.
        engine = create_engine(committed_layer.url, trust_ms=600_000)
        try:
            one_query(engine)
            assert terminate_every_backend(observer) >= 1
            one_query(engine)
        finally:
            engine.dispose()


class TestAfterALostConnectionTheFacade:
    """On an engine with no liveness check at all, so that the call itself meets the dead one."""

    @pytest.mark.parametrize("mode", ["legacy", "orm", "shadow", "live"])
    def test_retries_a_read_once_on_a_fresh_connection(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection, mode: str
    ) -> None:
        session_uuid = str(uuid.uuid4())
        legacy.user_sessions.insert_session(session_uuid, "Before The Kill", None)
        committed_layer.set_flags(dict.fromkeys(REGISTRY, mode))
        with served_by(committed_layer, make_engine(committed_layer.url)):
            assert user_sessions.get_session(session_uuid) is not None
            assert terminate_every_backend(observer) >= 1
            found = user_sessions.get_session(session_uuid)
        assert found is not None
        assert found["name"] == "Before The Kill"

    @pytest.mark.parametrize("mode", ["legacy", "orm"])
    def test_never_retries_a_write(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection, mode: str
    ) -> None:
        session_uuid = str(uuid.uuid4())
        committed_layer.set_flags(dict.fromkeys(REGISTRY, mode))
        with served_by(committed_layer, make_engine(committed_layer.url)):
            assert user_sessions.check_uuid_exists(session_uuid) is False
            assert terminate_every_backend(observer) >= 1
            with pytest.raises(psycopg2.OperationalError):
                user_sessions.insert_session(session_uuid, "After The Kill", None)
            assert legacy.user_sessions.check_uuid_exists(session_uuid) is False
            # The dead connection was discarded: the next write gets a live one.
            assert user_sessions.insert_session(session_uuid, "Again", None)["uuid"] == session_uuid
