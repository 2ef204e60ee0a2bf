"""A flip reaches another process at once through LISTEN/NOTIFY, within the TTL without it,
and again after its listening connection was cut."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import psycopg2.extensions
import pytest

from compat.flags.store import FlagStore
from compat.routing.declaration import REGISTRY
from tests.fixtures.layer import Layer

KEY = "user_sessions.get_session"
PUSH_BOUND_SECONDS = 2.0
"""Generous for a loaded CI machine; bench/RESULTS.md has the measured figure."""

_WATCHER = """
import sys, time
import compat
from compat.flags.store import FlagStore
from compat.routing.declaration import REGISTRY

key, ttl, listen = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
store = FlagStore(REGISTRY, ttl_seconds=ttl, listen=listen)
store.resolve(key)  # the first call starts the listener
if listen:
    assert store.listener is not None and store.listener.connected.wait(20)
print("ready", flush=True)
seen = store.resolve(key).mode
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    mode = store.resolve(key).mode
    if mode != seen:
        print(mode.value, time.monotonic(), flush=True)
        seen = mode
        if mode.value == "orm":
            break
    time.sleep(0.001)
"""


@contextmanager
def watcher(url: str, *, ttl: float, listen: bool) -> Iterator[IO[str]]:
    """Another process that resolves KEY in a loop and prints each new mode with its time."""
    process = subprocess.Popen(
        [sys.executable, "-c", _WATCHER, KEY, str(ttl), "1" if listen else "0"],
        env={**os.environ, "DATABASE_URL": url},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "ready"
        yield process.stdout
    finally:
        process.kill()
        process.wait(timeout=30)
        process.stdout.close()


def flipped_after(store: FlagStore, out: IO[str], mode: str) -> float:
    """Set KEY to ``mode`` here; seconds until the other process served it."""
    store.set(KEY, mode, reason="push test", by="test")
    committed = time.monotonic()
    line = out.readline().split()
    assert line[0] == mode, line
    return float(line[1]) - committed


@pytest.fixture
def store(committed_layer: Layer) -> FlagStore:
    return FlagStore(REGISTRY, environ={}, ttl_seconds=3600)


class TestAFlip:
    def test_reaches_a_listening_process_at_once_though_its_ttl_is_long(
        self, committed_layer: Layer, store: FlagStore
    ) -> None:
        with watcher(committed_layer.url, ttl=600, listen=True) as out:
            delays = [flipped_after(store, out, mode) for mode in ("shadow", "live", "orm")]
        assert max(delays) < PUSH_BOUND_SECONDS, delays

    def test_reaches_a_process_that_does_not_listen_within_its_ttl(
        self, committed_layer: Layer, store: FlagStore
    ) -> None:
        with watcher(committed_layer.url, ttl=0.5, listen=False) as out:
            delay = flipped_after(store, out, "shadow")
        assert delay < 2 * 0.5 + PUSH_BOUND_SECONDS

    def test_reaches_a_process_whose_listening_connection_was_cut(
        self,
        committed_layer: Layer,
        store: FlagStore,
        observer: psycopg2.extensions.connection,
    ) -> None:
        with watcher(committed_layer.url, ttl=600, listen=True) as out:
            with observer.cursor() as cur:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                    "current_database() AND application_name = 'compat listener'"
                )
                assert [row[0] for row in cur.fetchall()] == [True]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # wait for it to listen again
                with observer.cursor() as cur:
                    cur.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND application_name = 'compat listener'"
                    )
                    row = cur.fetchone()
                if row is not None and row[0] == 1:
                    break
                time.sleep(0.05)
            delay = flipped_after(store, out, "shadow")
        assert delay < PUSH_BOUND_SECONDS
