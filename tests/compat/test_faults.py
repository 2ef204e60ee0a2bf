"""A compared call in which a side lost its connection is a fault of that side, never a mismatch.

The errors are real ones, made on the test server: a backend ended by
``pg_terminate_backend``, the "connection already closed" that follows, a
statement timeout, a unique violation. Only the first two are faults.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import psycopg2
import psycopg2.extensions
import pytest

from compat.flags.store import Mode
from compat.shadow.faults import is_connection_fault
from compat.shadow.observation import Observation, Outcome, Side, Verdict
from compat.shadow.publishers import CounterPublisher, Dispatcher, LogPublisher, TablePublisher
from tests.compat.test_publishers import PATIENCE, an_observation
from tests.fixtures.layer import Layer, observer_connection
from tests.fixtures.postgres import make_engine
from tests.reliability.backends import terminate_every_backend


def raised_by(call: Callable[[], object]) -> BaseException:
    with pytest.raises(psycopg2.Error) as raised:
        call()
    return raised.value


@pytest.fixture(scope="module")
def real_errors(database_url: str) -> Iterator[dict[str, BaseException]]:
    """One real error of each kind, made on the shared test database (nothing is written)."""
    errors: dict[str, BaseException] = {}
    watcher = observer_connection(database_url)
    victim = observer_connection(database_url)
    try:
        with watcher.cursor() as cur:
            pid = victim.get_backend_pid()
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
            deadline = time.monotonic() + PATIENCE
            while True:  # it only signals: wait until the backend is gone
                cur.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
                if cur.fetchone() is None:
                    break
                assert time.monotonic() < deadline, "the terminated backend is still there"
        errors["backend ended"] = raised_by(lambda: victim.cursor().execute("SELECT 1"))
        errors["connection already closed"] = raised_by(lambda: victim.cursor().execute("SELECT 1"))
        with watcher.cursor() as cur:
            # SET LOCAL, undone by the ROLLBACK: a session-level 1 ms timeout could
            # cancel its own RESET on a loaded server (seen in CI).
            cur.execute("BEGIN")
            cur.execute("SET LOCAL statement_timeout = 100")
            errors["statement timeout"] = raised_by(lambda: cur.execute("SELECT pg_sleep(5)"))
            cur.execute("ROLLBACK")
            errors["unique violation"] = raised_by(
                lambda: cur.execute(
                    "CREATE TEMP TABLE t (i int UNIQUE); INSERT INTO t VALUES (1), (1)"
                )
            )
        yield errors
    finally:
        watcher.close()
        victim.close()


FAULTS = ("backend ended", "connection already closed")
NOT_FAULTS = ("statement timeout", "unique violation")


def observed(error: BaseException, failing: Side, serving: Side = Side.LEGACY) -> Observation:
    other = Side.ORM if serving is Side.LEGACY else Side.LEGACY
    outcomes = {
        serving: Outcome(serving, value=1, seconds=0.001),
        other: Outcome(other, value=1, seconds=0.001),
    }
    outcomes[failing] = Outcome(failing, error=error, seconds=0.001)
    mode = Mode.SHADOW if serving is Side.LEGACY else Mode.LIVE
    return Observation.of(f"tests.{uuid.uuid4().hex[:8]}", mode, outcomes[serving], outcomes[other])


class TestWhatIsAFault:
    @pytest.mark.parametrize("kind", FAULTS)
    def test_a_lost_connection_is_a_fault(
        self, real_errors: dict[str, BaseException], kind: str
    ) -> None:
        assert is_connection_fault(real_errors[kind])

    @pytest.mark.parametrize("kind", NOT_FAULTS)
    def test_a_statement_that_failed_is_not_a_fault(
        self, real_errors: dict[str, BaseException], kind: str
    ) -> None:
        assert not is_connection_fault(real_errors[kind])

    def test_the_codes_of_a_server_shutting_down_are_faults(self) -> None:
        for code in ("57P01", "57P02", "57P03", "08006", "08003"):
            assert is_connection_fault(psycopg2.errors.lookup(code)()), code


class TestAFaultedObservation:
    @pytest.mark.parametrize("failing", list(Side))
    @pytest.mark.parametrize("kind", FAULTS)
    def test_is_a_fault_of_the_side_that_lost_its_connection_not_a_mismatch(
        self, real_errors: dict[str, BaseException], kind: str, failing: Side
    ) -> None:
        observation = observed(real_errors[kind], failing)
        assert observation.verdict is Verdict.FAULT
        assert observation.fault is failing
        assert not observation.matched
        assert "MISMATCH" not in observation.summary()

    @pytest.mark.parametrize("kind", NOT_FAULTS)
    def test_a_side_whose_statement_failed_is_still_a_mismatch(
        self, real_errors: dict[str, BaseException], kind: str
    ) -> None:
        observation = observed(real_errors[kind], Side.ORM)
        assert observation.verdict is Verdict.MISMATCH
        assert observation.fault is None

    def test_is_counted_as_a_fault_and_never_as_a_mismatch(
        self, real_errors: dict[str, BaseException]
    ) -> None:
        counters = CounterPublisher()
        fault = observed(real_errors["backend ended"], Side.LEGACY)
        counters.publish([fault])
        assert counters.snapshot() == {(fault.key, "fault"): 1}

    def test_is_logged_as_a_fault(
        self, real_errors: dict[str, BaseException], caplog: pytest.LogCaptureFixture
    ) -> None:
        fault = observed(real_errors["backend ended"], Side.ORM)
        LogPublisher().publish([fault])
        assert "FAULT of the orm side" in caplog.text
        assert "MISMATCH" not in caplog.text

    def test_is_stored_with_its_side_and_no_diff(
        self, committed_layer: Layer, real_errors: dict[str, BaseException]
    ) -> None:
        fault = observed(real_errors["backend ended"], Side.ORM, serving=Side.ORM)
        mismatch = observed(real_errors["unique violation"], Side.ORM)
        TablePublisher().publish([fault, mismatch])
        observer = observer_connection(committed_layer.url)
        try:
            with observer.cursor() as cur:
                cur.execute(
                    "SELECT key, matched, fault, diff IS NOT NULL FROM compat_observations "
                    "ORDER BY id"
                )
                assert cur.fetchall() == [
                    (fault.key, False, "orm", False),
                    (mismatch.key, False, None, True),
                ]
        finally:
            observer.close()


class TestATableWriteThatFails:
    def test_is_retried_on_a_new_connection_after_the_server_ended_the_old_one(
        self, committed_layer: Layer
    ) -> None:
        # No pre-ping: the write itself meets the dead connection, as one in flight would.
        engine = make_engine(committed_layer.url)
        publisher = TablePublisher(lambda: engine)
        observer = observer_connection(committed_layer.url)
        try:
            publisher.publish([an_observation()])  # a pooled connection now exists
            terminate_every_backend(observer)
            publisher.publish([an_observation()])
            assert publisher.retried == 1
            with observer.cursor() as cur:
                cur.execute(
                    "SELECT coalesce(sum(compared), 0) FROM compat_observation_rollups"
                )  # matches are counted there, not kept as rows
                assert cur.fetchone() == (2,)
        finally:
            observer.close()
            engine.dispose()

    def test_gives_up_after_its_attempts_and_the_batch_is_counted_as_dropped(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        engine = make_engine("postgresql+psycopg2://postgres@127.0.0.1:9/app")
        secret = f"secret-{uuid.uuid4().hex}"
        counters = CounterPublisher()
        table = TablePublisher(lambda: engine, backoff_seconds=0)
        dispatcher = Dispatcher(
            [table, counters], on_drop=counters.count_dropped, record_drops=table.record_drops
        )
        observation = an_observation(matched=False, candidate_error=RuntimeError(secret))
        dispatcher.submit(observation)
        assert dispatcher.close(PATIENCE) == 1
        assert table.retried >= 2  # three attempts for the batch
        assert counters.snapshot()[(observation.key, "dropped")] == 1
        assert "could not store 1 observations in 3 attempts" in caplog.text
        assert "parameters" not in caplog.text
        assert secret not in caplog.text
        engine.dispose()
