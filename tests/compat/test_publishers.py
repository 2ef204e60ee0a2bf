"""Observations reach every publisher off the caller's thread; a publisher never hurts a call."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence

import psycopg2.extensions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compat
from compat import user_sessions
from compat.flags.store import Mode
from compat.runtime import build_runtime, get_runtime, reset_runtime
from compat.shadow.compare import Difference
from compat.shadow.observation import Observation, Outcome, Side
from compat.shadow.publishers import CounterPublisher, Dispatcher, LogPublisher, TablePublisher
from tests.fixtures.layer import Layer, Recorder, observer_connection

# Generous: only reached when the code under test is broken (a hang, not a wait).
PATIENCE = 10.0


def an_observation(
    key: str | None = None,
    *,
    matched: bool = True,
    candidate_error: BaseException | None = None,
    mode: Mode = Mode.SHADOW,
) -> Observation:
    """An observation of a made-up key, unique unless ``key`` is given."""
    serving_path, candidate_path = (
        (Side.LEGACY, Side.ORM) if mode in (Mode.LEGACY, Mode.SHADOW) else (Side.ORM, Side.LEGACY)
    )
    return Observation(
        key=key or f"tests.{uuid.uuid4().hex[:12]}",
        mode=mode,
        serving=Outcome(serving_path, value=1, seconds=0.002),
        candidate=Outcome(
            candidate_path,
            value=None if candidate_error else 1,
            error=candidate_error,
            seconds=0.001,
        ),
        differences=() if matched else (Difference("", 1, 2, "values differ"),),
    )


class Blocking:
    """A publisher that holds the dispatcher's thread until the test releases it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[Observation]] = []

    def publish(self, batch: Sequence[Observation]) -> None:
        self.entered.set()
        self.release.wait(PATIENCE)
        self.batches.append(list(batch))

    def published(self) -> list[Observation]:
        return [observation for batch in self.batches for observation in batch]


class Raising:
    def publish(self, batch: Sequence[Observation]) -> None:
        raise RuntimeError("the observations store is down")


@pytest.fixture
def blocking() -> Iterator[Blocking]:
    publisher = Blocking()
    try:
        yield publisher
    finally:
        publisher.release.set()


class TestDispatcher:
    def test_hands_every_observation_to_every_publisher_in_order(self) -> None:
        first, second = Recorder(), Recorder()
        dispatcher = Dispatcher([first, second])
        submitted = [an_observation() for _ in range(5)]
        for observation in submitted:
            dispatcher.submit(observation)
        assert dispatcher.drain(PATIENCE)
        assert first.observations == submitted
        assert second.observations == submitted
        assert dispatcher.dropped == 0

    def test_drain_returns_at_once_when_nothing_was_submitted(self) -> None:
        assert Dispatcher([Recorder()]).drain(PATIENCE)

    def test_submit_returns_while_a_publisher_is_blocked(self, blocking: Blocking) -> None:
        dispatcher = Dispatcher([blocking])
        observation = an_observation()
        dispatcher.submit(observation)
        assert blocking.entered.wait(PATIENCE)
        dispatcher.submit(an_observation())
        # Both submits returned, and the publisher is still inside publish().
        assert not blocking.release.is_set()
        assert blocking.batches == []
        blocking.release.set()
        assert dispatcher.drain(PATIENCE)
        assert blocking.published()[0] is observation

    def test_drain_reports_false_while_a_publisher_is_still_busy(self, blocking: Blocking) -> None:
        dispatcher = Dispatcher([blocking])
        dispatcher.submit(an_observation())
        assert blocking.entered.wait(PATIENCE)
        assert dispatcher.drain(timeout=0.01) is False
        blocking.release.set()
        assert dispatcher.drain(PATIENCE) is True

    def test_a_full_queue_drops_and_counts_instead_of_blocking(self, blocking: Blocking) -> None:
        dispatcher = Dispatcher([blocking], capacity=1)
        taken, queued = an_observation(), an_observation()
        dispatcher.submit(taken)
        assert blocking.entered.wait(PATIENCE)  # the thread holds it: the queue is empty
        dispatcher.submit(queued)
        dispatcher.submit(an_observation())
        dispatcher.submit(an_observation())
        assert dispatcher.dropped == 2
        blocking.release.set()
        assert dispatcher.drain(PATIENCE)
        assert blocking.published() == [taken, queued]

    def test_a_publisher_that_raises_is_logged_and_the_others_still_get_the_batch(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        recorder = Recorder()
        dispatcher = Dispatcher([Raising(), recorder])
        observation = an_observation()
        with caplog.at_level(logging.ERROR, logger="compat.shadow.publishers"):
            dispatcher.submit(observation)
            assert dispatcher.drain(PATIENCE)
        assert recorder.observations == [observation]
        [record] = caplog.records
        assert "publisher Raising failed; 1 observations not published by it" in record.getMessage()
        assert record.exc_info is not None
        assert "the observations store is down" in caplog.text

    def test_keeps_publishing_after_a_publisher_raised(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        recorder = Recorder()
        dispatcher = Dispatcher([Raising(), recorder])
        with caplog.at_level(logging.CRITICAL, logger="compat.shadow.publishers"):
            dispatcher.submit(an_observation())
            assert dispatcher.drain(PATIENCE)
            later = an_observation()
            dispatcher.submit(later)
            assert dispatcher.drain(PATIENCE)
        assert recorder.observations[-1] is later


class TestCounterPublisher:
    def test_counts_matches_and_mismatches_per_key(self) -> None:
        counters = CounterPublisher()
        key = f"tests.{uuid.uuid4().hex[:8]}"
        counters.publish(
            [an_observation(key), an_observation(key), an_observation(key, matched=False)]
        )
        assert counters.snapshot() == {(key, "match"): 2, (key, "mismatch"): 1}

    def test_counts_a_candidate_error_besides_the_verdict(self) -> None:
        counters = CounterPublisher()
        key = f"tests.{uuid.uuid4().hex[:8]}"
        counters.publish(
            [
                an_observation(key, matched=False, candidate_error=RuntimeError("bug")),
                an_observation(key, candidate_error=ValueError("both raised alike")),
            ]
        )
        assert counters.snapshot() == {
            (key, "match"): 1,
            (key, "mismatch"): 1,
            (key, "candidate_error"): 2,
        }

    def test_a_snapshot_is_a_copy(self) -> None:
        counters = CounterPublisher()
        snapshot = counters.snapshot()
        counters.publish([an_observation()])
        assert snapshot == {}

    @settings(max_examples=50)
    @given(st.lists(st.tuples(st.sampled_from("ab"), st.booleans(), st.booleans()), max_size=20))
    def test_the_counts_add_up_to_what_was_published(
        self, outcomes: list[tuple[str, bool, bool]]
    ) -> None:
        counters = CounterPublisher()
        counters.publish(
            [
                an_observation(
                    key, matched=matched, candidate_error=RuntimeError() if failed else None
                )
                for key, matched, failed in outcomes
            ]
        )
        counts = counters.snapshot()
        for key in "ab":
            mine = [(matched, failed) for k, matched, failed in outcomes if k == key]
            assert counts.get((key, "match"), 0) == sum(matched for matched, _ in mine)
            assert counts.get((key, "mismatch"), 0) == sum(not matched for matched, _ in mine)
            assert counts.get((key, "candidate_error"), 0) == sum(failed for _, failed in mine)


class TestLogPublisher:
    def test_logs_a_mismatch_as_a_warning_with_its_summary(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        observation = an_observation(matched=False)
        with caplog.at_level(logging.DEBUG, logger="compat.observations"):
            LogPublisher().publish([observation])
        [record] = caplog.records
        assert record.levelno == logging.WARNING
        assert record.getMessage() == observation.summary()

    def test_logs_a_match_at_debug_level_only(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.INFO, logger="compat.observations"):
            LogPublisher().publish([an_observation()])
        assert caplog.records == []


# -- In the running layer ------------------------------------------------------


class TestPublishingFromFacadeCalls:
    def test_a_blocked_publisher_does_not_stall_a_shadow_call(
        self, layer: Layer, blocking: Blocking
    ) -> None:
        layer.runtime.dispatcher.publishers.insert(0, blocking)
        layer.set_flags({"user_sessions.count_sessions": "shadow"})
        first = user_sessions.count_sessions()
        assert blocking.entered.wait(PATIENCE)
        assert user_sessions.count_sessions() == first
        assert not blocking.release.is_set()
        blocking.release.set()
        assert len(layer.observations()) == 2

    def test_a_full_queue_drops_observations_and_the_calls_go_on(
        self, layer: Layer, blocking: Blocking, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        dispatcher = Dispatcher([blocking], capacity=1)
        monkeypatch.setattr(layer.runtime, "dispatcher", dispatcher)
        layer.set_flags({"user_sessions.list_session_uuids": "shadow"})
        user_sessions.list_session_uuids()
        assert blocking.entered.wait(PATIENCE)
        for _ in range(3):
            user_sessions.list_session_uuids()
        assert dispatcher.dropped == 2
        blocking.release.set()
        assert dispatcher.drain(PATIENCE)
        assert len(blocking.published()) == 2

    def test_the_counters_count_what_the_calls_observed(self, layer: Layer) -> None:
        assert layer.unit is not None
        key = "user_sessions.check_uuid_exists"
        layer.set_flags({key: "live"})
        user_sessions.check_uuid_exists(str(uuid.uuid4()))
        user_sessions.check_uuid_exists(str(uuid.uuid4()))
        layer.observations()
        assert layer.runtime.counters.snapshot() == {(key, "match"): 2}


@pytest.fixture
def observer(committed_layer: Layer) -> Iterator[psycopg2.extensions.connection]:
    conn = observer_connection(committed_layer.url)
    try:
        yield conn
    finally:
        conn.close()


class TestTablePublisher:
    def test_keeps_a_row_per_mismatch_and_counts_every_observation_into_the_rollups(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        """A match is counted, not kept (migration 0006); a mismatch is kept in full."""
        matched = an_observation(mode=Mode.LIVE)
        mismatched = an_observation(matched=False, candidate_error=RuntimeError("boom"))
        TablePublisher().publish([matched, mismatched])
        with observer.cursor() as cur:
            cur.execute(
                "SELECT key, mode, serving, matched, legacy_ms > 0, orm_ms > 0, "
                "candidate_error, diff FROM compat_observations ORDER BY id"
            )
            rows = cur.fetchall()
            cur.execute(
                "SELECT key, mode, sum(compared), sum(mismatches), sum(candidate_errors) "
                "FROM compat_observation_rollups GROUP BY key, mode ORDER BY mode"
            )
            rollups = cur.fetchall()
        assert rollups == [(matched.key, "live", 1, 0, 0), (mismatched.key, "shadow", 1, 1, 1)]
        assert rows == [
            (
                mismatched.key,
                "shadow",
                "legacy",
                False,
                True,
                True,
                "RuntimeError: boom",
                "<value>: legacy=1 orm=2 (values differ)",
            ),
        ]

    def test_records_a_shadow_call_through_the_dispatcher(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        committed_layer.runtime.dispatcher.publishers.append(TablePublisher())
        committed_layer.set_flags({"user_sessions.count_sessions": "shadow"})
        user_sessions.count_sessions()
        assert committed_layer.runtime.dispatcher.drain(PATIENCE)
        with observer.cursor() as cur:
            cur.execute("SELECT key, mode, compared, mismatches FROM compat_observation_rollups")
            assert cur.fetchall() == [("user_sessions.count_sessions", "shadow", 1, 0)]


class TestEveryObservationIsStoredOrCounted:
    def test_dropped_ones_reach_the_counters_and_the_drop_recorder(
        self, blocking: Blocking
    ) -> None:
        counters = CounterPublisher()
        recorded: list[dict[tuple[str, str], int]] = []
        dispatcher = Dispatcher(
            [blocking],
            capacity=1,
            on_drop=counters.count_dropped,
            record_drops=lambda tally: recorded.append(dict(tally)),
        )
        key = "tests.queue_full"
        for _ in range(4):  # one taken, one queued, two dropped
            dispatcher.submit(an_observation(key))
            assert blocking.entered.wait(PATIENCE)
        blocking.release.set()
        assert dispatcher.close(PATIENCE) == 2
        assert counters.snapshot() == {(key, "dropped"): 2}
        assert recorded == [{(key, "the queue was full"): 2}]
        assert dispatcher.submitted == 4

    def test_close_counts_what_is_still_queued_when_its_time_is_up(
        self, blocking: Blocking
    ) -> None:
        dispatcher = Dispatcher([blocking])
        for _ in range(3):
            dispatcher.submit(an_observation("tests.slow"))
        assert blocking.entered.wait(PATIENCE)
        # The publisher holds the first batch; nothing finishes in 0 s.
        assert dispatcher.close(0) == 3
        assert dispatcher.dropped_by_key() == {"tests.slow": 3}
        dispatcher.submit(an_observation("tests.slow"))  # after close: dropped at once
        assert dispatcher.dropped == 4

    def test_compat_shutdown_stores_what_the_process_still_holds(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        runtime = build_runtime(engine=committed_layer.engine, environ={}, ttl_seconds=3600)
        previous = reset_runtime(runtime)
        try:
            for _ in range(5):
                runtime.dispatcher.submit(an_observation("tests.shutdown"))
            assert compat.shutdown() == 0
            assert get_runtime() is not runtime  # a call afterwards builds a new one
        finally:
            reset_runtime(previous)
        with observer.cursor() as cur:
            # Matches are counted into the rollups, not kept as rows (migration 0006).
            cur.execute(
                "SELECT sum(compared) FROM compat_observation_rollups WHERE key = 'tests.shutdown'"
            )
            assert cur.fetchone() == (5,)
