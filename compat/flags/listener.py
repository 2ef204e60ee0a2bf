"""Compat layer: flips pushed to every process: LISTEN on a connection of its own, read on NOTIFY.

Every change the flag store writes sends ``NOTIFY compat_flags`` in its
transaction, so PostgreSQL delivers it when the change commits. Each process
listens on one dedicated connection in a background thread and re-reads the
flags when told, in milliseconds instead of the TTL. The TTL poll stays the
fallback: for a change made with plain SQL, while the connection is down,
and behind a transaction-pooling PgBouncer, where LISTEN cannot work
(COMPAT_FLAGS_LISTEN=0 turns the listener off). A lost connection is
reconnected with a bounded backoff, and the flags are re-read on every
(re)connect, so a flip made meanwhile is not missed.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
from collections.abc import Callable
from typing import Any, Final

import psycopg2
import sqlalchemy as sa

__all__ = ["CHANNEL", "FlagListener"]

log = logging.getLogger("compat.flags")

CHANNEL: Final = "compat_flags"
_WAIT_SECONDS: Final = 1.0
"""How long one select() waits: also how soon a stop request is noticed."""
_BACKOFF_SECONDS: Final = (0.1, 0.5, 1.0, 2.0, 5.0)

# A forked child must never close its parent's listening connection (closing
# sends a Terminate on the shared socket): it keeps the object, unused.
_orphans: list[Any] = []


class FlagListener:
    """A daemon thread that calls ``on_change`` whenever the flags changed, or may have."""

    def __init__(self, engine: Callable[[], sa.Engine], on_change: Callable[[], None]) -> None:
        self._engine = engine
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Any = None
        self.connected = threading.Event()
        """Set while the connection is listening (tests wait on it)."""

    def start(self) -> None:
        """Start listening (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="compat-flags-listen", daemon=True)
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close its connection."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def after_fork(self) -> None:
        """In a forked child: the thread is gone; leave the parent's connection alone."""
        if self._connection is not None:
            _orphans.append(self._connection)
        self._connection = None
        self._thread = None
        self._stop = threading.Event()
        self.connected = threading.Event()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._listen()
                failures = 0
            except Exception as error:  # the fallback is the TTL poll; never stop serving
                self.connected.clear()
                self._close()
                if failures == 0:
                    log.warning(
                        "compat flags: the listening connection failed (%s: %s); flips reach "
                        "this process within the TTL until it is back",
                        type(error).__name__,
                        str(error).splitlines()[0] if str(error) else "",
                    )
                wait = _BACKOFF_SECONDS[min(failures, len(_BACKOFF_SECONDS) - 1)]
                failures += 1
                self._stop.wait(wait)
        self._close()

    def _listen(self) -> None:
        raw = self._engine().raw_connection()
        # Out of the pool for good: this connection only ever waits for NOTIFY.
        raw.detach()
        connection: Any = raw.dbapi_connection
        self._connection = connection
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        self.connected.set()
        self._on_change()  # whatever changed while nobody listened
        while not self._stop.is_set():
            ready, _, _ = select.select([connection], [], [], _WAIT_SECONDS)
            if not ready:
                continue
            connection.poll()
            if connection.notifies:
                connection.notifies.clear()
                self._on_change()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg2.Error):
                connection.close()
