"""Compat layer: the calls each side served, and how many raised, counted for every process.

A compared call leaves an observation; a call served by one side alone (in
``legacy`` or ``orm`` mode, or unsampled) leaves nothing but the metrics, which
stay in the process. The guard, in another process, needs to know how often
the ORM fails in ``orm`` mode and how often legacy failed when it served: so
every served call is counted here (a dictionary increment under a lock), and
a thread adds the counts to ``compat_served_rollups`` once a second. A flush
that fails keeps its counts for the next one; at exit the last counts are
flushed within the drain timeout, like the observations.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

import sqlalchemy as sa

from compat.flags.modes import Mode
from compat.shadow.faults import is_connection_fault
from compat.shadow.observation import Side

__all__ = ["DEFAULT_FLUSH_SECONDS", "ServedTally"]

internal = logging.getLogger("compat.shadow.served")

DEFAULT_FLUSH_SECONDS: Final = 1.0
"""How often a process adds its counts to the table."""

_Cell = tuple[str, Mode, Side, int]
"""(key, mode, side, minute since the epoch)."""

_ADD: Final = sa.text(
    "INSERT INTO compat_served_rollups AS r (key, mode, side, minute, calls, errors, faults) "
    "VALUES (:key, :mode, :side, to_timestamp(:minute * 60), :calls, :errors, :faults) "
    "ON CONFLICT (key, mode, side, minute) DO UPDATE SET calls = r.calls + EXCLUDED.calls, "
    "errors = r.errors + EXCLUDED.errors, faults = r.faults + EXCLUDED.faults"
)


class ServedTally:
    """Per (key, mode, side, minute): calls, errors and faults; stored when given an engine.

    ``count`` is the hot path and never raises. Without an engine (a test's
    runtime) the counts stay in the process (``snapshot``).
    """

    def __init__(
        self,
        engine: Callable[[], sa.Engine] | None = None,
        *,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
    ) -> None:
        self._engine = engine
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        """Held for a whole flush: one that returns has seen every earlier one commit."""
        self._pending: dict[_Cell, list[int]] = {}
        self._thread: threading.Thread | None = None
        self._started = False
        self._stop = threading.Event()
        self._failing = False
        self.flushed = 0
        """Flushes that stored something (for tests)."""

    def store_to(self, engine: Callable[[], sa.Engine]) -> None:
        """Store the counts through ``engine`` from now on (a test turns storing on)."""
        self._engine = engine

    def count(self, key: str, mode: Mode, side: Side, error: BaseException | None) -> None:
        """One call of ``key`` in ``mode`` served by ``side``, and what it raised (if anything)."""
        # The hot path: the enums themselves in the cell (their .value is a descriptor
        # call), and the thread started once, not checked for life on every call.
        cell = (key, mode, side, int(time.time()) // 60)
        slot = 0 if error is None else 2 if is_connection_fault(error) else 1
        with self._lock:
            counts = self._pending.get(cell)
            if counts is None:
                counts = self._pending[cell] = [0, 0, 0]
            counts[0] += 1
            if slot:
                counts[slot] += 1
        if not self._started and self._engine is not None:
            self._start()

    def snapshot(self) -> dict[tuple[str, str, str, int], tuple[int, int, int]]:
        """The counts not yet stored: (calls, errors, faults) per (key, mode, side, minute)."""
        with self._lock:
            return {
                (key, mode.value, side.value, minute): (c[0], c[1], c[2])
                for (key, mode, side, minute), c in self._pending.items()
            }

    def flush(self) -> bool:
        """Add the pending counts to the table in one transaction; True when nothing is left.

        On failure the counts go back to pending (added to whatever came
        since), so a server that is down delays them and loses none.
        """
        engine = self._engine
        if engine is None:
            return True
        with self._flushing:
            return self._flush(engine)

    def _flush(self, engine: Callable[[], sa.Engine]) -> bool:
        with self._lock:
            taken, self._pending = self._pending, {}
        if not taken:
            return True
        rows = [
            {
                "key": key,
                "mode": mode.value,
                "side": side.value,
                "minute": minute,
                "calls": c[0],
                "errors": c[1],
                "faults": c[2],
            }
            for (key, mode, side, minute), c in sorted(taken.items())
        ]
        try:
            with engine().begin() as connection:
                connection.execute(_ADD, rows)
        except sa.exc.SQLAlchemyError as error:
            with self._lock:
                for cell, c in taken.items():
                    kept = self._pending.setdefault(cell, [0, 0, 0])
                    for i in range(3):
                        kept[i] += c[i]
            if not self._failing:  # once per outage; the driver's first line, no parameters
                orig = getattr(error, "orig", None) or error
                internal.warning(
                    "compat: could not store the served-call counts yet (%s: %s); kept for "
                    "the next try",
                    type(orig).__name__,
                    next(iter(str(orig).splitlines()), ""),
                )
                self._failing = True
            return False
        if self._failing:
            internal.warning("compat: the served-call counts are stored again")
        self._failing = False
        self.flushed += 1
        return True

    def close(self, timeout: float) -> bool:
        """Stop the thread and flush what is left, within ``timeout`` s; False if counts remain."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)
            return not thread.is_alive() and not self._pending
        if not self._pending:
            return True
        # No thread ran (or it ended): flush here, bounded as the thread would be.
        try:
            writer = threading.Thread(target=self.flush, name="compat-served-last", daemon=True)
            writer.start()
            writer.join(timeout)
        except RuntimeError:  # no thread may start at interpreter shutdown (3.12+)
            return False
        return not self._pending

    def after_fork(self) -> None:
        """The parent's counts and thread are the parent's: a forked child starts empty."""
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._pending = {}
        self._thread = None
        self._started = False
        self._stop = threading.Event()
        self._failing = False

    def _start(self) -> None:
        with self._lock:
            if self._started or self._stop.is_set():
                return
            self._started = True
            self._thread = threading.Thread(target=self._run, name="compat-served", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        # Started once per process: it must outlive whatever one flush runs into.
        while not self._stop.wait(self.flush_seconds):
            self._flush_logged()
        self._flush_logged()  # the last counts, at close

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except Exception:
            internal.exception("compat: storing the served-call counts failed")
