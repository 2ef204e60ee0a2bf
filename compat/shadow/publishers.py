"""Compat layer: where observations go (log, table, counters), off the caller's thread."""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Final, Protocol

import sqlalchemy as sa

from compat.shadow.observation import Observation
from orm.database import get_engine

__all__ = [
    "CounterPublisher",
    "Dispatcher",
    "LogPublisher",
    "Publisher",
    "TablePublisher",
]

log = logging.getLogger("compat.observations")
internal = logging.getLogger("compat.shadow.publishers")


class Publisher(Protocol):
    """Receives observations; may be slow or fail without ever affecting a facade call."""

    def publish(self, batch: Sequence[Observation]) -> None: ...


class LogPublisher:
    """Mismatches as warnings, matches at debug level; personal data redacted."""

    def publish(self, batch: Sequence[Observation]) -> None:
        for observation in batch:
            if observation.matched:
                log.debug("%s", observation.summary())
            else:
                log.warning("%s", observation.summary())


class CounterPublisher:
    """In-process counts per (key, outcome): ``match``, ``mismatch``, ``candidate_error``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def publish(self, batch: Sequence[Observation]) -> None:
        with self._lock:
            for observation in batch:
                outcome = "match" if observation.matched else "mismatch"
                self.counts[(observation.key, outcome)] += 1
                if observation.candidate.error is not None:
                    self.counts[(observation.key, "candidate_error")] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        """A copy of the counts."""
        with self._lock:
            return dict(self.counts)


class TablePublisher:
    """Rows in ``compat_observations`` (redacted), for ``compat status`` and every process."""

    _INSERT: Final = sa.text(
        "INSERT INTO compat_observations (key, mode, serving, matched, legacy_ms, orm_ms, "
        "candidate_error, diff) VALUES (:key, :mode, :serving, :matched, :legacy_ms, :orm_ms, "
        ":candidate_error, :diff)"
    )

    def __init__(self, engine: Callable[[], sa.Engine] = get_engine) -> None:
        self._engine = engine

    def publish(self, batch: Sequence[Observation]) -> None:
        rows = [
            {
                "key": o.key,
                "mode": o.mode.value,
                "serving": o.serving.side.value,
                "matched": o.matched,
                "legacy_ms": o.legacy.seconds * 1e3,
                "orm_ms": o.orm.seconds * 1e3,
                "candidate_error": o.candidate.error_text,
                "diff": None if o.matched else o.diff_text(),
            }
            for o in batch
        ]
        with self._engine().begin() as connection:
            connection.execute(self._INSERT, rows)


class Dispatcher:
    """Hands observations to publishers on a background thread.

    ``submit`` never blocks and never raises: when the queue is full the
    observation is dropped and counted. A publisher that raises is logged and
    the others still get the batch.
    """

    def __init__(self, publishers: Iterable[Publisher], *, capacity: int = 10_000) -> None:
        self.publishers = list(publishers)
        self.dropped = 0
        self._queue: queue.Queue[Observation] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, observation: Observation) -> None:
        """Queue an observation for the publishers; never blocks the caller."""
        try:
            self._queue.put_nowait(observation)
        except queue.Full:
            self.dropped += 1
            return
        if self._thread is None or not self._thread.is_alive():
            self._start()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued observation was handed to the publishers; False on timeout."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="compat-publish", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < 500:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for publisher in self.publishers:
                try:
                    publisher.publish(batch)
                except Exception:
                    internal.exception(
                        "compat: publisher %s failed; %d observations not published by it",
                        type(publisher).__name__,
                        len(batch),
                    )
            for _ in batch:
                self._queue.task_done()

    def after_fork(self) -> None:
        """The parent's thread does not exist in a forked child: start afresh there."""
        self._thread = None
        self._lock = threading.Lock()
        self._queue = queue.Queue(maxsize=self._queue.maxsize)
