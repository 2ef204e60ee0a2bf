"""Compat layer: the process's one LISTEN connection, shared by every channel (flags, cache).

A daemon thread holds one connection taken out of the engine's pool for good
(a LISTEN belongs to its session), LISTENs on the channel of every
subscriber, waits on its socket with ``select()`` and hands each batch of
notifications to the subscriber of their channel. PostgreSQL delivers a
notification when its transaction commits, so what is heard is committed.
When the connection is lost every subscriber is told at once, then the
thread connects again with a bounded backoff; on every (re)connect each
subscriber is told it listens again, since what was sent meanwhile was not
heard. One connection per process, not one per use: a pre-forking server's
workers each hold one beside their pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

import psycopg2
import sqlalchemy as sa

__all__ = ["APPLICATION_NAME", "Listener", "Subscriber"]

log = logging.getLogger("compat.listening")

APPLICATION_NAME: Final = "compat listener"
"""The connection's application_name, so that a DBA (and the tests) can tell it apart."""
STATEMENT_TIMEOUT_MS: Final = 1000
"""What a subscriber's read on the connection may take (a locked table must not stall it)."""
_BACKOFF_SECONDS: Final = (0.05, 0.1, 0.5, 1.0, 2.0)
# TCP keepalives, so that a connection that died silently (a partition, no reset)
# is noticed in about 11 s rather than at the next write.
_KEEPALIVE: Final = (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3))

# A forked child must never close its parent's listening connection (closing
# sends a Terminate on the shared socket): it keeps the object, unused.
_orphans: list[Any] = []


class Subscriber(Protocol):
    """What a channel's user is told. Every call runs on the listener's thread."""

    def listening(self, connection: Any) -> None:
        """Listening (again): whatever was sent before is unknown. ``connection`` can read."""

    def notified(self, payloads: Sequence[str], connection: Any) -> None:
        """Notifications of this channel, committed, in the order they arrived."""

    def lost(self, reason: str) -> None:
        """The connection is gone: from now on, until ``listening``, nothing is heard."""


class Listener:
    """The listening thread of one process: ``subscribe`` each channel, then ``start`` (once)."""

    def __init__(self, engine: Callable[[], sa.Engine]) -> None:
        self._engine = engine
        self._subscribers: dict[str, Subscriber] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Any = None
        self._wake_r, self._wake_w = os.pipe()
        self.connected = threading.Event()
        """Set while listening, once every subscriber was told (tests wait on it)."""
        self.backend_pid: int | None = None
        """The listening session's server pid while connected (for tests that end it)."""

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._subscribers)

    def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Hear ``channel``; before ``start`` only (the thread LISTENs when it connects)."""
        if self._thread is not None:
            raise RuntimeError(f"subscribe {channel!r} before the listener starts")
        if not channel.isidentifier():
            raise ValueError(f"{channel!r} is not a channel name")
        if channel in self._subscribers:
            raise ValueError(f"{channel!r} has a subscriber already")
        self._subscribers[channel] = subscriber

    def start(self) -> None:
        """Start listening (once; again after ``after_fork``)."""
        if self._thread is not None or not self._subscribers:
            return
        self._stop.clear()
        thread = threading.Thread(target=self._run, name="compat-listener", daemon=True)
        self._thread = thread
        thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close its connection; the subscribers are told it is lost."""
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def after_fork(self) -> None:
        """In a forked child: the thread is gone; leave the parent's connection alone."""
        if self._connection is not None:
            _orphans.append(self._connection)
        self._connection = None
        self._thread = None
        self.backend_pid = None
        self._stop = threading.Event()
        self.connected = threading.Event()
        # The parent's pipe would wake the parent's thread: one of the child's own.
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r, self._wake_w = os.pipe()
        for subscriber in self._subscribers.values():
            subscriber.lost("forked: the parent's listening connection is not this process's")

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._listen(failures)
                failures = 0
            except Exception as error:  # never stop serving: each subscriber has its fallback
                self._lost(error, first=failures == 0)
                wait = _BACKOFF_SECONDS[min(failures, len(_BACKOFF_SECONDS) - 1)]
                failures += 1
                self._stop.wait(wait)
        self._close()
        self._tell_lost("stopped")

    def _lost(self, error: Exception, *, first: bool) -> None:
        self.connected.clear()
        self._close()
        reason = f"{type(error).__name__}: {next(iter(str(error).splitlines()), '')}"
        self._tell_lost(reason)
        if first:
            log.warning(
                "compat: the listening connection failed (%s); flips reach this process within "
                "the flag TTL, and the read cache is bypassed, until it is back",
                reason,
            )

    def _tell_lost(self, reason: str) -> None:
        for subscriber in self._subscribers.values():
            try:
                subscriber.lost(reason)
            except Exception:
                log.exception("compat: a listener subscriber failed on a lost connection")

    def _listen(self, failures: int) -> None:
        raw = self._engine().raw_connection()
        # Out of the pool for good: this connection only ever waits for NOTIFY.
        raw.detach()
        connection: Any = raw.dbapi_connection
        self._connection = connection
        connection.autocommit = True
        _keep_alive(connection)
        with connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
            cursor.execute(f"SET application_name = '{APPLICATION_NAME}'")
            for channel in self._subscribers:
                cursor.execute(f"LISTEN {channel}")
            cursor.execute("SELECT pg_backend_pid()")
            self.backend_pid = int(cursor.fetchone()[0])
        # Listening before each subscriber reads: a change from now on is heard, none lost.
        for subscriber in self._subscribers.values():
            subscriber.listening(connection)
        if failures:
            log.warning("compat: listening again; flips and cache invalidations arrive at once")
        self.connected.set()
        while not self._stop.is_set():
            ready, _, _ = select.select([connection, self._wake_r], [], [])
            if self._stop.is_set():
                return
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            if connection not in ready:
                continue
            connection.poll()
            if not connection.notifies:
                continue
            # Everything that arrived at once is handed over at once (a bulk statement
            # announces each of its rows).
            by_channel: dict[str, list[str]] = {}
            for note in connection.notifies:
                by_channel.setdefault(note.channel, []).append(note.payload)
            connection.notifies.clear()
            for channel, payloads in by_channel.items():
                heard = self._subscribers.get(channel)
                if heard is not None:
                    heard.notified(payloads, connection)

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        self.backend_pid = None
        if connection is not None:
            with contextlib.suppress(psycopg2.Error):
                connection.close()


def _keep_alive(connection: Any) -> None:
    """Turn TCP keepalives on for the connection's socket (a Unix socket needs none)."""
    probe = socket.socket(fileno=os.dup(connection.fileno()))
    try:
        if probe.family not in (socket.AF_INET, socket.AF_INET6):
            return
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in _KEEPALIVE:
            option = getattr(socket, name, None)
            if option is not None:
                probe.setsockopt(socket.IPPROTO_TCP, option, value)
    finally:
        probe.close()
