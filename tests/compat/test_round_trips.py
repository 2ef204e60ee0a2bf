"""Round trips per facade call: the cost a shared machine's noise cannot blur.

Counted from libpq's own trace of what each call sent (bench/wire.py). A
regression here (an extra SET, a savepoint left behind, an isolation level
reset on the next checkout) is a fixed cost on every call in production.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2.errors
import pytest
import sqlalchemy as sa

from bench.wire import WireTrace, trace_round_trips
from compat.routing.declaration import REGISTRY, Shape
from compat.routing.unit_of_work import transaction
from orm.database import create_engine, use_engine
from tests.compat.calls import CALLS
from tests.compat.test_routing import facade_function
from tests.fixtures.layer import Layer, observer_connection

READ = "user_sessions.get_session"
WRITE = "user_sessions.update_session"


@pytest.fixture
def traced(committed_layer: Layer) -> Iterator[WireTrace]:
    with trace_round_trips(committed_layer.engine) as trace:
        yield trace


def sent_by_one_call(layer: Layer, trace: WireTrace, key: str, mode: str) -> list[str]:
    """What one standalone call in ``mode`` sent, after a warm-up call traced its connection."""
    seeding = observer_connection(layer.url)
    try:
        calls = [CALLS[key](seeding) for _ in range(2)]
    finally:
        seeding.close()
    layer.set_flags({key: mode})
    facade_function(key)(*calls[0].args, **calls[0].kwargs)
    before = trace.mark()
    facade_function(key)(*calls[1].args, **calls[1].kwargs)
    return trace.queries()[before:]


class TestRoundTrips:
    @pytest.mark.parametrize("mode", ["legacy", "orm"])
    @pytest.mark.parametrize(
        "key", sorted(key for key, spec in REGISTRY.items() if spec.shape is Shape.ROW_WRITE)
    )
    def test_a_single_path_write_sends_begin_its_statement_and_commit_and_no_ping(
        self, committed_layer: Layer, traced: WireTrace, key: str, mode: str
    ) -> None:
        sent = sent_by_one_call(committed_layer, traced, key, mode)
        assert [sent[0], sent[-1]] == ["BEGIN", "COMMIT"], sent
        assert len(sent) == 3, sent

    @pytest.mark.parametrize("mode", ["legacy", "orm"])
    @pytest.mark.parametrize(
        "key", sorted(key for key, spec in REGISTRY.items() if spec.autocommit)
    )
    def test_a_single_path_read_sends_its_statement_alone(
        self, committed_layer: Layer, traced: WireTrace, key: str, mode: str
    ) -> None:
        sent = sent_by_one_call(committed_layer, traced, key, mode)
        assert len(sent) == 1, sent
        assert "SELECT 1" not in sent, sent

    @pytest.mark.parametrize("mode", ["shadow", "live"])
    def test_a_compared_read_sends_its_snapshot_both_statements_and_a_rollback(
        self, committed_layer: Layer, traced: WireTrace, mode: str
    ) -> None:
        sent = sent_by_one_call(committed_layer, traced, READ, mode)
        # No savepoint: the transaction is the call's alone, and rolled back.
        assert sent[0] == (
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL statement_timeout = 2000"
        ), sent
        assert sent[-1] == "ROLLBACK", sent
        assert len(sent) == 4, sent

    @pytest.mark.parametrize("mode", ["shadow", "live"])
    def test_a_compared_read_in_a_unit_of_work_keeps_its_savepoint(
        self, committed_layer: Layer, traced: WireTrace, mode: str
    ) -> None:
        seeding = observer_connection(committed_layer.url)
        try:
            call = CALLS[READ](seeding)
        finally:
            seeding.close()
        committed_layer.set_flags({READ: mode})
        with transaction():
            facade_function(READ)(*call.args, **call.kwargs)
            before = traced.mark()
            facade_function(READ)(*call.args, **call.kwargs)
            sent = traced.queries()[before:]
        assert sent[0] == "SAVEPOINT sa_savepoint_2; SET LOCAL statement_timeout = 2000", sent
        assert sent[2] == "ROLLBACK TO SAVEPOINT sa_savepoint_2; RELEASE SAVEPOINT sa_savepoint_2"
        assert len(sent) == 4, sent

    @pytest.mark.parametrize("mode", ["shadow", "live"])
    def test_a_compared_write_adds_its_savepoint_and_both_touched_row_reads(
        self, committed_layer: Layer, traced: WireTrace, mode: str
    ) -> None:
        sent = sent_by_one_call(committed_layer, traced, WRITE, mode)
        # Writes keep READ COMMITTED, as the legacy code ran them; the touched row
        # is locked in the same round trip as the candidate's savepoint.
        assert "FOR UPDATE" in sent[1], sent
        assert sent[1].endswith("SAVEPOINT sa_savepoint_1; SET LOCAL statement_timeout = 2000"), (
            sent
        )
        assert sum("/* compat: touched rows */" in query for query in sent) == 3, sent
        assert len(sent) == 8, sent

    def test_the_next_call_on_a_connection_pays_nothing_for_a_compared_reads_snapshot(
        self, committed_layer: Layer, traced: WireTrace
    ) -> None:
        sent_by_one_call(committed_layer, traced, READ, "shadow")
        after = sent_by_one_call(committed_layer, traced, READ, "legacy")
        assert len(after) == 1, after
        with committed_layer.engine.connect() as connection:
            level = connection.exec_driver_sql("SHOW transaction_isolation").scalar()
        assert level == "read committed"


class TestIsolationLevel:
    def test_a_unit_runs_at_the_level_asked_for_and_gives_its_connection_back_unchanged(
        self, committed_layer: Layer
    ) -> None:
        with transaction("repeatable read") as unit:
            inside = unit.connection.exec_driver_sql("SHOW transaction_isolation").scalar()
        with transaction() as unit:
            after = unit.connection.exec_driver_sql("SHOW transaction_isolation").scalar()
        assert (inside, after) == ("repeatable read", "read committed")

    def test_an_unknown_isolation_level_is_refused_with_the_valid_ones(
        self, committed_layer: Layer
    ) -> None:
        with pytest.raises(ValueError, match="SERIALIZABLE") as raised, transaction("snapshot"):
            pass
        assert "'snapshot'" in str(raised.value)

    def test_compared_calls_in_one_unit_leave_no_savepoint_behind(
        self, committed_layer: Layer
    ) -> None:
        committed_layer.set_flags({READ: "shadow"})
        seeding = observer_connection(committed_layer.url)
        try:
            call = CALLS[READ](seeding)
        finally:
            seeding.close()
        with transaction() as unit:
            for _ in range(3):
                facade_function(READ)(*call.args, **call.kwargs)
            # Released: PostgreSQL no longer knows the first candidate's savepoint,
            # so the three did not stack three subtransactions.
            unit.connection.exec_driver_sql("SAVEPOINT probe")
            with pytest.raises(sa.exc.DBAPIError) as raised:
                unit.connection.exec_driver_sql("RELEASE SAVEPOINT sa_savepoint_1")
            unit.connection.exec_driver_sql("ROLLBACK TO SAVEPOINT probe")
        assert 'savepoint "sa_savepoint_1" does not exist' in str(raised.value.orig)


class TestAutocommitReads:
    def test_a_read_that_streams_through_a_server_side_cursor_keeps_its_transaction(
        self, committed_layer: Layer, traced: WireTrace
    ) -> None:
        key = "user_sessions.list_session_uuids"
        assert not REGISTRY[key].autocommit
        for mode in ("legacy", "orm"):
            sent = sent_by_one_call(committed_layer, traced, key, mode)
            assert sent[0] == "BEGIN", sent
            assert sent[-1] == "COMMIT", sent

    @pytest.mark.parametrize("mode", ["legacy", "orm"])
    def test_a_failed_autocommit_read_raises_and_leaves_no_connection_in_autocommit(
        self, committed_layer: Layer, mode: str
    ) -> None:
        committed_layer.set_flags({READ: mode})
        engine = committed_layer.engine
        with engine.connect() as connection:
            name = connection.exec_driver_sql("SELECT current_database()").scalar()
            connection.exec_driver_sql(f"ALTER DATABASE \"{name}\" SET lock_timeout = '50ms'")
            connection.commit()
        engine.dispose()  # connections made from now on wait 50 ms for a lock at most
        with engine.connect() as blocker:
            blocker.exec_driver_sql("LOCK TABLE user_sessions IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                facade_function(READ)("0b7f3c2e-1d5a-4c8e-9f00-3a2b1c4d5e6f")
            blocker.rollback()
        with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):
                raw = connection.connection.dbapi_connection
                assert raw is not None
                assert raw.autocommit is False
                assert connection.exec_driver_sql("SELECT 1").scalar() == 1

    def test_an_applications_autocommit_engine_gets_its_connections_back_in_autocommit(
        self, committed_layer: Layer
    ) -> None:
        committed_layer.set_flags({READ: "legacy"})
        engine = create_engine(committed_layer.url, isolation_level="AUTOCOMMIT")
        use_engine(engine)
        try:
            facade_function(READ)("0b7f3c2e-1d5a-4c8e-9f00-3a2b1c4d5e6f")
            with engine.connect() as connection:
                raw = connection.connection.dbapi_connection
                assert raw is not None
                assert raw.autocommit is True
        finally:
            use_engine(committed_layer.engine)
            engine.dispose()
