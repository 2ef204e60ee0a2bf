"""Compat layer: the cache's ear on the database: LISTEN compat_cache on a connection of its own.

One daemon thread per process holds a direct psycopg2 connection (not a
pooled one: a LISTEN belongs to its session), waits on its socket with
``select()``, and hands each notification to the cache. It reads the cache
settings when it connects, when a settings change is announced, and every
``refresh_seconds`` (which doubles as a check that the connection is alive).
When the connection is lost it says so at once (the cache is cleared and
bypassed), then connects again with a growing back-off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Final, Protocol

import psycopg2
import psycopg2.extensions

from compat.cache.settings import read_settings

__all__ = ["CHANNEL", "Listener", "ListenerEvents"]

log = logging.getLogger("compat.cache")

CHANNEL: Final = "compat_cache"
SETTINGS_TABLE: Final = "compat_cache_settings"
APPLICATION_NAME: Final = "compat-cache-listener"
_BACKOFF_FIRST: Final = 0.05
_BACKOFF_MAX: Final = 2.0

# A forked child must never close (and so terminate) its parent's listening session.
_inherited: list[object] = []


class ListenerEvents(Protocol):
    """What the listener tells the cache."""

    def ready(self, settings: dict[str, float]) -> None:
        """Listening (again): nothing heard before counts; these are the settings."""

    def changed(self, rows: set[tuple[str, str]]) -> None:
        """These rows changed, and the changes are committed: (table, key; ``*``: every row)."""

    def settings(self, settings: dict[str, float]) -> None:
        """The settings as just read."""

    def lost(self, reason: str) -> None:
        """The connection is gone: notifications may be missed from now on."""


class Listener:
    """The listening thread; ``start`` once, ``stop`` to end it (it closes its connection)."""

    def __init__(
        self, dsn: Callable[[], str], events: ListenerEvents, refresh_seconds: float
    ) -> None:
        self._dsn = dsn
        self._events = events
        self._refresh = max(refresh_seconds, 0.05)
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._connection: psycopg2.extensions.connection | None = None
        self.backend_pid: int | None = None
        """The listening session's server pid (for tests that end it)."""

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="compat-cache-listener", daemon=True)
        self._thread = thread
        thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        os.write(self._wake_w, b"x")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def abandon(self) -> None:
        """In a forked child: the thread is gone; keep the parent's connection from closing."""
        if self._connection is not None:
            _inherited.append(self._connection)
        self._connection = None
        self._thread = None

    def _run(self) -> None:
        backoff = _BACKOFF_FIRST
        warned = False
        while not self._stopping.is_set():
            try:
                self._listen()
            except (psycopg2.Error, OSError, ValueError) as error:
                first = next(iter(str(error).strip().splitlines()), "")
                reason = f"{type(error).__name__}: {first}"
                self._events.lost(reason)
                if not warned:
                    log.warning(
                        "compat cache: the listening connection failed (%s); the cache is "
                        "bypassed until it is back",
                        reason,
                    )
                    warned = True
            else:
                return  # stopped
            finally:
                self._close()
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, _BACKOFF_MAX)
            if backoff >= _BACKOFF_MAX:
                warned = False  # remind now and then while it stays down

    def _listen(self) -> None:
        connection = psycopg2.connect(
            self._dsn(),
            application_name=APPLICATION_NAME,
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )
        self._connection = connection
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
            cursor.execute("SELECT pg_backend_pid()")
            row = cursor.fetchone()
            self.backend_pid = None if row is None else int(row[0])
            # Listening before the read: a change from now on is heard, so none is lost.
            self._events.ready(self._read_settings(cursor))
        log.info("compat cache: listening on %s", CHANNEL)
        next_read = time.monotonic() + self._refresh
        while not self._stopping.is_set():
            timeout = max(0.0, next_read - time.monotonic())
            socket = connection.fileno()
            readable, _, _ = select.select([socket, self._wake_r], [], [], timeout)
            if self._stopping.is_set():
                return
            reload = time.monotonic() >= next_read
            if socket in readable:
                connection.poll()
                # Everything that arrived at once is handed over at once (a bulk statement
                # announces each of its rows).
                rows: set[tuple[str, str]] = set()
                for note in connection.notifies:
                    table, _, key = note.payload.partition(":")
                    if table == SETTINGS_TABLE:
                        reload = True
                    else:
                        rows.add((table, key))
                connection.notifies.clear()
                if rows:
                    self._events.changed(rows)
            if reload:
                with connection.cursor() as cursor:
                    self._events.settings(self._read_settings(cursor))
                next_read = time.monotonic() + self._refresh

    @staticmethod
    def _read_settings(cursor: psycopg2.extensions.cursor) -> dict[str, float]:
        try:
            return read_settings(cursor)
        except psycopg2.errors.UndefinedTable:
            # Not migrated to 0005_cache yet: nothing is cached, changes are still heard.
            return {}

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        self.backend_pid = None
        if connection is not None and not connection.closed:
            with contextlib.suppress(psycopg2.Error):
                connection.close()
