"""The guard steps a live function back to shadow by itself, from another process than the one
whose calls disagreed, and leaves a function whose paths agree alone."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import Any

import psycopg2.extensions
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from compat import user_sessions
from compat.flags.modes import Mode
from compat.routing.declaration import REGISTRY
from compat.shadow.publishers import TablePublisher
from tests.compat.calls import new_session
from tests.compat.test_flags import flip
from tests.fixtures.layer import Layer

KEY = "user_sessions.get_session"


def guard_once(url: str) -> subprocess.CompletedProcess[str]:
    """`compat guard --once` in a process of its own, on the test's database."""
    return subprocess.run(
        [sys.executable, "-m", "compat", "guard", "--once"],
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
