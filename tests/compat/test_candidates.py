"""A candidate never changes what the caller sees or what the database keeps."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from typing import Any

import psycopg2.extensions
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from compat.errors import UnitOfWorkAborted
from compat.routing.declaration import REGISTRY, Kind
from compat.runtime import get_runtime
from legacy.db import fetch_one
from tests.compat.calls import CALLS, Call, new_session
from tests.compat.test_routing import facade_function
from tests.fixtures.layer import Layer, observer_connection

WRITES = sorted(key for key, spec in REGISTRY.items() if spec.kind is Kind.WRITE)


def table_state(conn: psycopg2.extensions.connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of both data tables, in a stable order (upload ids left out: see below)."""
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM user_sessions ORDER BY uuid")
        sessions = cur.fetchall()
        # A candidate's insert draws from the sequence even though its savepoint
        # is rolled back (nextval is not transactional), so ids shift by one.
        cur.execute(
            "SELECT session_uuid, filename, storage_key, size_bytes, content_type, sha256, "
            "uploaded_at, deleted_at FROM uploaded_files ORDER BY storage_key"
        )
        uploads = cur.fetchall()
    return {"user_sessions": sessions, "uploaded_files": uploads}


@pytest.mark.parametrize("key", WRITES)
def test_a_shadow_write_leaves_the_database_exactly_as_the_legacy_write_alone(
    layer: Layer, key: str
) -> None:
    assert layer.unit is not None
    conn = layer.unit.dbapi_connection
    call: Call = CALLS[key](conn)
    function = facade_function(key)
    results = {}
    states = {}
    for mode in ("legacy", "shadow"):
        with layer.unit.rolled_back_savepoint():
            layer.set_flags({key: mode})
            results[mode] = function(*call.args, **call.kwargs)
            states[mode] = table_state(conn)
    assert states["shadow"] == states["legacy"]
    assert REGISTRY[key].volatile or results["shadow"] == results["legacy"]
    [observation] = layer.observations()
    assert observation.matched, observation.summary()


def test_a_hanging_candidate_is_cut_off_by_its_time_budget(
    layer: Layer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "user_sessions.count_sessions"
    spec = REGISTRY[key]

    def hangs(db: Session) -> int:
        db.execute(sa.text("SELECT pg_sleep(30)"))
        return 0

    monkeypatch.setitem(REGISTRY, key, dataclasses.replace(spec, orm=hangs))
    monkeypatch.setattr(get_runtime(), "candidate_timeout_ms", 200)
    layer.set_flags({key: "shadow"})
    assert facade_function(key)() >= 0
    [observation] = layer.observations()
    assert observation.candidate.error_text is not None
    assert "QueryCanceled [57014]" in observation.candidate.error_text
    assert observation.candidate.seconds < 5
    # The budget belonged to the candidate's savepoint, not to the caller.
    assert layer.unit is not None
    timeout = layer.unit.connection.exec_driver_sql("SHOW statement_timeout").scalar()
    assert timeout == "0"


def test_a_failing_publisher_is_logged_and_never_breaks_the_call(
    layer: Layer, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def publish(self, batch: Any) -> None:
            raise RuntimeError("publisher down")

    get_runtime().dispatcher.publishers.insert(0, Broken())
    layer.set_flags({"user_sessions.count_sessions": "shadow"})
    with caplog.at_level(logging.ERROR, logger="compat.shadow.publishers"):
        assert facade_function("user_sessions.count_sessions")() >= 0
        [observation] = layer.observations()
    assert observation.matched
    assert "publisher Broken failed" in caplog.text


def test_a_compared_read_sees_one_snapshot_even_when_another_client_commits_in_between(
    committed_layer: Layer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "user_sessions.count_sessions"
    spec = REGISTRY[key]
    other_client = observer_connection(committed_layer.url)

    def candidate_then_someone_commits(db: Session) -> int:
        counted: int = spec.orm(db)
        new_session(other_client)  # autocommit: visible to any later snapshot
        return counted

    monkeypatch.setitem(
        REGISTRY, key, dataclasses.replace(spec, orm=candidate_then_someone_commits)
    )
    try:
        committed_layer.set_flags({key: "shadow"})
        served = facade_function(key)()
        [observation] = committed_layer.observations()
        assert observation.matched, observation.summary()
        assert served == observation.orm.value
        committed_layer.set_flags({key: "legacy"})
        assert facade_function(key)() == served + 1  # the other client's commit is there now
    finally:
        other_client.close()


def test_a_time_budget_out_of_range_is_the_candidates_failure_not_the_callers(
    layer: Layer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "user_sessions.count_sessions"
    monkeypatch.setattr(get_runtime(), "candidate_timeout_ms", 2**31)
    layer.set_flags({key: "shadow"})
    first = facade_function(key)()
    assert facade_function(key)() == first  # the caller's transaction is fine
    observation = layer.observations()[0]
    assert observation.candidate.error_text is not None
    assert "out of range" in observation.candidate.error_text


@pytest.mark.parametrize("value", ["-1", "2147483648", "2s", ""])
def test_a_bad_candidate_budget_is_reported_in_one_line_and_the_default_serves(
    value: str,
) -> None:
    import layer_settings

    settings = layer_settings.load({"COMPAT_CANDIDATE_TIMEOUT_MS": value})
    assert settings.candidate_timeout_ms == 2000
    [problem] = settings.problems
    assert problem.startswith(f"COMPAT_CANDIDATE_TIMEOUT_MS={value!r}")
    assert "0..2147483647" in problem
    assert layer_settings.load({"COMPAT_CANDIDATE_TIMEOUT_MS": "0"}).candidate_timeout_ms == 0
    assert layer_settings.load({}).candidate_timeout_ms == 2000


def test_a_candidate_that_swallows_a_failed_flush_and_writes_on_cannot_commit_those_writes(
    committed_layer: Layer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orm.models import UserSession

    key = "user_sessions.update_session"
    spec = REGISTRY[key]
    seeding = observer_connection(committed_layer.url)
    try:
        existing = new_session(seeding)
        call = CALLS[key](seeding)
        escaped = uuid.uuid4()

        def swallows_and_writes_on(db: Session, *args: Any) -> Any:
            db.add(UserSession(uuid=uuid.UUID(existing), name="duplicate"))
            with contextlib.suppress(sa.exc.IntegrityError):
                db.flush()  # fails; the Session rolls back the savepoint it joined
            db.rollback()
            db.add(UserSession(uuid=escaped, name="written after the rollback"))
            db.flush()  # lands in the enclosing transaction
            return spec.orm(db, *args)

        monkeypatch.setitem(REGISTRY, key, dataclasses.replace(spec, orm=swallows_and_writes_on))
        committed_layer.set_flags({key: "shadow"})
        with pytest.raises(UnitOfWorkAborted, match="rolled it back itself"):
            facade_function(key)(*call.args, **call.kwargs)
        with seeding.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM user_sessions WHERE uuid = %s", (str(escaped),))
            assert cursor.fetchone() == (0,)
    finally:
        seeding.close()


class TestAComparedReadOutsideAUnit:
    """Its own REPEATABLE READ transaction, no savepoint: the budget binds the candidate only."""

    def test_a_hanging_candidate_is_cut_off_and_the_serving_read_still_answers(
        self, committed_layer: Layer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        key = "user_sessions.count_sessions"
        spec = REGISTRY[key]

        def hangs(db: Session) -> int:
            db.execute(sa.text("SELECT pg_sleep(30)"))
            return 0

        monkeypatch.setitem(REGISTRY, key, dataclasses.replace(spec, orm=hangs))
        monkeypatch.setattr(committed_layer.runtime, "candidate_timeout_ms", 200)
        committed_layer.set_flags({key: "shadow"})
        assert facade_function(key)() == 0
        [observation] = committed_layer.observations()
        assert observation.candidate.error_text is not None
        assert "QueryCanceled [57014]" in observation.candidate.error_text
        assert observation.serving.error is None

    def test_a_serving_read_slower_than_the_candidates_budget_is_not_cut_off(
        self, committed_layer: Layer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        key = "user_sessions.count_sessions"
        spec = REGISTRY[key]

        def slow_legacy() -> int:
            row = fetch_one("SELECT count(*) AS n FROM user_sessions, pg_sleep(0.5)")
            assert row is not None
            return int(row["n"])

        monkeypatch.setitem(REGISTRY, key, dataclasses.replace(spec, legacy=slow_legacy))
        monkeypatch.setattr(committed_layer.runtime, "candidate_timeout_ms", 200)
        committed_layer.set_flags({key: "shadow"})
        # The serving read runs past the budget inside the snapshot, is cancelled
        # there, and runs again unbounded: the caller gets its answer.
        assert facade_function(key)() == 0
        [observation] = committed_layer.observations()
        assert observation.serving.error is None
        assert observation.matched, observation.summary()
