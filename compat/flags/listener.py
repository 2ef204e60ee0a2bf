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

from compat.flags.modes import Entries
from compat.flags.sources import READ_TIMEOUT_MS, read_table_on

__all__ = ["APPLICATION_NAME", "CHANNEL", "FlagListener"]

log = logging.getLogger("compat.flags.listener")

CHANNEL: Final = "compat_flags"
APPLICATION_NAME: Final = "compat flags listener"
_WAIT_SECONDS: Final = 1.0
"""How long one select() waits: also how soon a stop request is noticed."""
_BACKOFF_SECONDS: Final = (0.1, 0.5, 1.0, 2.0, 5.0)

# A forked child must never close its parent's listening connection (closing
# sends a Terminate on the shared socket): it keeps the object, unused.
_orphans: list[Any] = []


class FlagListener:
    """A daemon thread that calls ``on_change(read)`` whenever the flags changed, or may have.

    ``read`` reads the flags on the listener's own connection.
    """

    def __init__(
        self, engine: Callable[[], sa.Engine], on_change: Callable[[Callable[[], Entries]], None]
    ) -> None:
        self._engine = engine
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Any = None
        self._failures = 0
        self.connected = threading.Event()
        """Set while the connection is listening, once it re-read the flags (tests wait on it)."""

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
        self._failures = 0
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as error:  # the fallback is the TTL poll; never stop serving
                self.connected.clear()
                self._close()
                if self._failures == 0:
                    log.warning(
                        "compat flags: the listening connection failed (%s: %s); flips reach "
                        "this process within the TTL until it is back",
                        type(error).__name__,
                        str(error).splitlines()[0] if str(error) else "",
                    )
                wait = _BACKOFF_SECONDS[min(self._failures, len(_BACKOFF_SECONDS) - 1)]
                self._failures += 1
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
            cursor.execute(f"SET statement_timeout = {READ_TIMEOUT_MS}")
            # Named, so that a DBA (and the tests) can tell it in pg_stat_activity.
            cursor.execute(f"SET application_name = '{APPLICATION_NAME}'")
            cursor.execute(f"LISTEN {CHANNEL}")

        def read() -> Entries:
            return read_table_on(connection)

        self._on_change(read)  # whatever changed while nobody listened
        if self._failures:
            log.warning("compat flags: listening again; flips reach this process at once")
        self._failures = 0  # the next loss is logged, and retried quickly, again
        self.connected.set()
        while not self._stop.is_set():
            ready, _, _ = select.select([connection], [], [], _WAIT_SECONDS)
            if not ready:
                continue
            connection.poll()
            if connection.notifies:
                connection.notifies.clear()
                self._on_change(read)

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg2.Error):
                connection.close()
