"""Compat layer: flips pushed to every process: the flag store's channel on the shared listener.

Every change the flag store writes sends ``NOTIFY compat_flags`` in its
transaction, so PostgreSQL delivers it when the change commits. Each process
hears it on its one listening connection (compat.listening, shared with the
read cache) and re-reads the flags on that connection, in milliseconds
instead of the TTL. The TTL poll stays the fallback: for a change made with
plain SQL, while the connection is down, and behind a transaction-pooling
PgBouncer, where LISTEN cannot work (COMPAT_FLAGS_LISTEN=0 turns the
listener off). The flags are re-read on every (re)connect, so a flip made
meanwhile is not missed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from compat.flags.modes import Entries
from compat.flags.sources import read_table_on

__all__ = ["CHANNEL", "FlagSubscriber"]

CHANNEL: Final = "compat_flags"


class FlagSubscriber:
    """Calls ``on_change(read)`` whenever the flags changed, or may have; ``read`` reads them
    on the listening connection, so that pushed flips never take a connection from the pool."""

    def __init__(self, on_change: Callable[[Callable[[], Entries]], None]) -> None:
        self._on_change = on_change

    def listening(self, connection: Any) -> None:
        self._on_change(lambda: read_table_on(connection))  # whatever changed meanwhile

    def notified(self, payloads: Sequence[str], connection: Any) -> None:
        self._on_change(lambda: read_table_on(connection))

    def lost(self, reason: str) -> None:
        """Nothing to undo: the TTL poll carries on (the listener logs the loss)."""
