"""The guard steps a live function back to shadow by itself, from another process than the one
whose calls disagreed, and leaves a function whose paths agree alone."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import uuid
from typing import Any

import psycopg2.extensions
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from compat import user_sessions
from compat.flags.modes import Mode
from compat.rollout.guard import GUARD
from compat.routing.declaration import REGISTRY
from compat.shadow.publishers import TablePublisher
from legacy.db import get_db_connection
from tests.compat.calls import new_session
from tests.compat.test_flags import flip
from tests.fixtures.layer import Layer

KEY = "user_sessions.get_session"


def guard_once(url: str, *options: str) -> subprocess.CompletedProcess[str]:
    """`compat guard --once OPTIONS` in a process of its own, on the test's database."""
    return subprocess.run(
        [sys.executable, "-m", "compat", "guard", "--once", *options],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def mode_in_table(observer: psycopg2.extensions.connection, key: str) -> str:
    with observer.cursor() as cur:
        cur.execute("SELECT mode FROM compat_flags WHERE key = %s", (key,))
        row = cur.fetchone()
    assert row is not None
    return str(row[0])


def guard_audit(observer: psycopg2.extensions.connection) -> list[tuple[Any, ...]]:
    with observer.cursor() as cur:
        cur.execute(
            "SELECT key, old_mode, new_mode, changed_by FROM compat_flag_audit "
            "WHERE changed_by = 'compat guard'"
        )
        return cur.fetchall()


@pytest.fixture
def live(committed_layer: Layer, observer: psycopg2.extensions.connection) -> Layer:
    """KEY in live in the shared table, and this process publishing to compat_observations."""
    layer = committed_layer
    layer.runtime.dispatcher.publishers.append(TablePublisher(lambda: layer.engine))
    flip(observer, KEY, "live")
    layer.runtime.flags.refresh()
    assert layer.runtime.flags.resolve(KEY).mode is Mode.LIVE
    return layer


class TestTheGuard:
    def test_steps_back_a_live_function_whose_orm_side_returns_something_else(
        self,
        live: Layer,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        spec = REGISTRY[KEY]

        def wrong(db: Session, session_uuid: str) -> Any:
            row = spec.orm(db, session_uuid)
            return {**row, "name": "Someone Else"} if row else row

        monkeypatch.setitem(REGISTRY, KEY, dataclasses.replace(spec, orm=wrong))
        session_uuid = new_session(observer)
        user_sessions.get_session(session_uuid)
        assert live.runtime.dispatcher.drain()

        ran = guard_once(live.url)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith(
            f"{KEY}: live -> shadow by compat guard: guard: 1 mismatches in live"
        )
        assert mode_in_table(observer, KEY) == "shadow"
        assert guard_audit(observer) == [(KEY, "live", "shadow", "compat guard")]
        live.runtime.flags.refresh()  # what this process does at its next read
        assert live.runtime.flags.resolve(KEY).mode is Mode.SHADOW

    def test_steps_back_a_live_function_whose_orm_side_fails(
        self,
        live: Layer,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        spec = REGISTRY[KEY]

        def failing(db: Session, session_uuid: str) -> Any:
            return db.execute(sa.text("SELECT 1 / 0")).scalar()

        monkeypatch.setitem(REGISTRY, KEY, dataclasses.replace(spec, orm=failing))
        with pytest.raises(psycopg2.errors.DivisionByZero):
            user_sessions.get_session(new_session(observer))
        assert live.runtime.dispatcher.drain()

        ran = guard_once(live.url)
        assert ran.returncode == 0, ran.stderr
        assert mode_in_table(observer, KEY) == "shadow"
        assert "latest: compat_observations id " in ran.stdout  # an id, never the text

    def test_leaves_a_live_function_whose_paths_agree_alone(
        self, live: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        for _ in range(3):
            user_sessions.get_session(new_session(observer))
        assert live.runtime.dispatcher.drain()
        ran = guard_once(live.url)
        assert (ran.returncode, ran.stdout) == (0, "")
        assert mode_in_table(observer, KEY) == "live"
        assert guard_audit(observer) == []

    def test_never_steps_back_twice(
        self,
        live: Layer,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        spec = REGISTRY[KEY]
        monkeypatch.setitem(
            REGISTRY, KEY, dataclasses.replace(spec, orm=lambda db, session_uuid: None)
        )
        user_sessions.get_session(new_session(observer))
        assert live.runtime.dispatcher.drain()
        assert guard_once(live.url).stdout != ""
        assert guard_once(live.url).stdout == ""
        assert len(guard_audit(observer)) == 1


def failing_every(nth: int, side: Any) -> Any:
    """A side that raises a real database error on every ``nth`` call and serves the others."""
    calls = 0

    def serve(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls % nth == 0:
            db = args[0]
            if isinstance(db, Session):
                return db.execute(sa.text("SELECT 1 / 0")).scalar()
            with get_db_connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT 1 / 0")
        return side(*args)

    return serve


def break_side(monkeypatch: pytest.MonkeyPatch, side: str, nth: int) -> None:
    """KEY's ``side`` (``legacy`` or ``orm``) raises a real database error on every ``nth`` call."""
    spec = REGISTRY[KEY]
    broken = failing_every(nth, getattr(spec, side))
    monkeypatch.setitem(REGISTRY, KEY, dataclasses.replace(spec, **{side: broken}))


def into_orm(layer: Layer, observer: psycopg2.extensions.connection) -> None:
    """KEY in orm in the shared table, and this process's flags read again."""
    flip(observer, KEY, "orm")
    layer.runtime.flags.refresh()


def served_in_table(observer: psycopg2.extensions.connection, key: str) -> list[tuple[Any, ...]]:
    with observer.cursor() as cur:
        cur.execute(
            "SELECT mode, side, sum(calls)::int, sum(errors)::int, sum(faults)::int "
            "FROM compat_served_rollups WHERE key = %s GROUP BY mode, side ORDER BY mode, side",
            (key,),
        )
        return cur.fetchall()


@pytest.fixture
def storing(committed_layer: Layer) -> Layer:
    """The layer storing its served-call counts in compat_served_rollups, as a process does."""
    committed_layer.runtime.served.store_to(lambda: committed_layer.engine)
    return committed_layer


def serve_calls(layer: Layer, observer: psycopg2.extensions.connection, count: int) -> int:
    """``count`` calls of KEY; returns how many raised (the database's error, as legacy's)."""
    session_uuid = new_session(observer)
    raised = 0
    for _ in range(count):
        try:
            user_sessions.get_session(session_uuid)
        except psycopg2.errors.DivisionByZero:
            raised += 1
    assert layer.runtime.served.flush()
    return raised


class TestTheOrmGuard:
    """In orm nothing is compared: the ORM's error rate is judged against legacy's."""

    def test_every_served_call_and_its_errors_reach_the_table(
        self,
        storing: Layer,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        break_side(monkeypatch, "legacy", 4)
        assert serve_calls(storing, observer, 8) == 2
        into_orm(storing, observer)
        break_side(monkeypatch, "orm", 2)
        assert serve_calls(storing, observer, 6) == 3
        assert served_in_table(observer, KEY) == [
            ("legacy", "legacy", 8, 2, 0),
            ("orm", "orm", 6, 3, 0),
        ]

    def test_steps_an_orm_function_whose_orm_side_fails_back_to_live(
        self,
        storing: Layer,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        into_orm(storing, observer)
        break_side(monkeypatch, "orm", 5)
        assert serve_calls(storing, observer, 30) == 6

        ran = guard_once(storing.url, "--min-orm-calls", "30")
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith(
            f"{KEY}: orm -> live by compat guard: guard: ORM errors in 6 of 30 calls in orm (20.0%"
        )
        assert "legacy's baseline 0 of 0 calls" in ran.stdout
        assert mode_in_table(observer, KEY) == "live"
        assert guard_audit(observer) == [(KEY, "orm", "live", "compat guard")]
        storing.runtime.flags.refresh()  # what this process does at its next read
        assert storing.runtime.flags.resolve(KEY).mode is Mode.LIVE

    def test_leaves_an_orm_function_alone_while_it_fails_as_often_as_legacy_did(
        self,
        storing: Layer,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        break_side(monkeypatch, "legacy", 5)
        assert serve_calls(storing, observer, 30) == 6  # legacy's baseline: 20%
        into_orm(storing, observer)
        break_side(monkeypatch, "orm", 4)
        assert serve_calls(storing, observer, 28) == 7  # 25%: within max(2 x 20%, 21%)

        ran = guard_once(storing.url, "--min-orm-calls", "20")
        assert (ran.returncode, ran.stdout) == (0, "")
        assert mode_in_table(observer, KEY) == "orm"

        break_side(monkeypatch, "orm", 1)
        assert serve_calls(storing, observer, 40) == 40  # now 47 of 68: 69% > 40%
        ran = guard_once(storing.url, "--min-orm-calls", "20")
        assert "orm -> live by compat guard" in ran.stdout
        assert mode_in_table(observer, KEY) == "live"

    def test_waits_for_enough_calls_and_takes_a_keys_own_limit(
        self,
        storing: Layer,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        into_orm(storing, observer)
        break_side(monkeypatch, "orm", 2)
        assert serve_calls(storing, observer, 10) == 5

        assert guard_once(storing.url).stdout == ""  # 10 of the default 100 calls
        assert (
            guard_once(storing.url, "--min-orm-calls", "user_sessions.list_sessions=5").stdout == ""
        )
        ran = guard_once(storing.url, "--min-orm-calls", f"{KEY}=10")
        assert "orm -> live by compat guard" in ran.stdout

    def test_an_unknown_key_in_a_limit_is_one_line_and_exit_2(self, storing: Layer) -> None:
        ran = guard_once(storing.url, "--threshold", "user_sessions.nope=3")
        assert ran.returncode == 2
        assert ran.stdout == ""
        assert len(ran.stderr.splitlines()) == 1
        assert "user_sessions.nope" in ran.stderr


class TestAStepBackDuringWrites:
    def test_loses_no_write_and_doubles_none(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        """Each call resolves its mode once: a step back moves the calls after it, whole."""
        key = "user_sessions.insert_session"
        flip(observer, key, "orm")
        store = committed_layer.runtime.flags
        store.refresh()
        written: list[str] = []
        failed: list[BaseException] = []
        ten_written = threading.Event()

        def write() -> None:
            try:
                for i in range(60):
                    session_uuid = str(uuid.uuid4())
                    user_sessions.insert_session(session_uuid, f"Writer {i}", None)
                    written.append(session_uuid)
                    if i == 9:
                        ten_written.set()
            except BaseException as error:
                failed.append(error)
                ten_written.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert ten_written.wait(60)
        change = store.step_back(key, Mode.ORM, Mode.LIVE, reason="guard test", by=GUARD)
        writer.join(120)
        assert failed == []
        assert change is not None
        with observer.cursor() as cur:
            cur.execute(
                "SELECT uuid::text, count(*) FROM user_sessions WHERE name LIKE 'Writer %%' "
                "GROUP BY uuid"
            )
            stored = dict(cur.fetchall())
        assert sorted(stored) == sorted(written)
        assert set(stored.values()) == {1}
        served = committed_layer.runtime.served.snapshot()
        by_mode = dict.fromkeys(("orm", "live"), 0)
        for (counted_key, mode, _side, _minute), (calls, _errors, _faults) in served.items():
            if counted_key == key:
                by_mode[mode] += calls
        assert sum(by_mode.values()) == 60
        assert by_mode["orm"] >= 10
