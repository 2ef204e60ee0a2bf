"""Compat layer: where observations go (log, table, counters), off the caller's thread."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, Protocol

import sqlalchemy as sa

from compat.shadow.observation import Observation, Verdict
from orm.database import get_engine

__all__ = [
    "DEFAULT_DRAIN_TIMEOUT_SECONDS",
    "CounterPublisher",
    "Dispatcher",
    "DropTally",
    "LogPublisher",
    "PublishFailed",
    "Publisher",
    "TablePublisher",
]

log = logging.getLogger("compat.observations")
internal = logging.getLogger("compat.shadow.publishers")


DEFAULT_DRAIN_TIMEOUT_SECONDS: Final = 5.0
"""How long exit and ``compat.shutdown()`` wait for queued observations, by default."""

DropTally = Mapping[tuple[str, str], int]
"""Dropped observations per (key, reason)."""


class PublishFailed(Exception):
    """A publisher gave up on a batch; the message names no parameter and no row value."""


class Publisher(Protocol):
    """Receives observations; may be slow or fail without ever affecting a facade call."""

    def publish(self, batch: Sequence[Observation]) -> None: ...


class LogPublisher:
    """Mismatches and faults as warnings, matches at debug level; personal data redacted."""

    def publish(self, batch: Sequence[Observation]) -> None:
        for observation in batch:
            if observation.verdict is Verdict.MATCH:
                log.debug("%s", observation.summary())
            else:
                log.warning("%s", observation.summary())


class CounterPublisher:
    """In-process counts per (key, outcome).

    Outcomes: ``match``, ``mismatch``, ``fault`` (a side lost its connection:
    nothing compared), ``candidate_error`` besides the verdict, and
    ``dropped`` (made but never handed to every publisher; the dispatcher
    reports those).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def publish(self, batch: Sequence[Observation]) -> None:
        with self._lock:
            for observation in batch:
                self.counts[(observation.key, observation.verdict.value)] += 1
                if observation.candidate.error is not None:
                    self.counts[(observation.key, "candidate_error")] += 1

    def count_dropped(self, key: str, count: int) -> None:
        """Count ``count`` observations of ``key`` that were dropped."""
        with self._lock:
            self.counts[(key, "dropped")] += count

    def snapshot(self) -> dict[tuple[str, str], int]:
        """A copy of the counts."""
        with self._lock:
            return dict(self.counts)


class TablePublisher:
    """Rows in ``compat_observations`` (redacted), for ``compat status`` and every process.

    A batch that fails is retried on a new connection (the pool replaces one
    the server ended), ``attempts`` times in all; then ``PublishFailed`` is
    raised and the dispatcher counts the batch as dropped. No message names a
    row's values: SQLAlchemy's own message lists the parameters, ours does not.
    """

    _INSERT: Final = sa.text(
        "INSERT INTO compat_observations (key, mode, serving, matched, fault, legacy_ms, orm_ms, "
        "candidate_error, diff) VALUES (:key, :mode, :serving, :matched, :fault, :legacy_ms, "
        ":orm_ms, :candidate_error, :diff)"
    )
    _DROPS: Final = sa.text(
        "INSERT INTO compat_observation_drops (key, dropped, reason) "
        "VALUES (:key, :dropped, :reason)"
    )

    def __init__(
        self,
        engine: Callable[[], sa.Engine] = get_engine,
        *,
        attempts: int = 3,
        backoff_seconds: float = 0.05,
    ) -> None:
        self._engine = engine
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.retried = 0
        """Failed attempts that were tried again (for tests and the curious)."""

    def publish(self, batch: Sequence[Observation]) -> None:
        rows = [
            {
                "key": o.key,
                "mode": o.mode.value,
                "serving": o.serving.side.value,
                "matched": o.matched,
                "fault": None if o.fault is None else o.fault.value,
                "legacy_ms": o.legacy.seconds * 1e3,
                "orm_ms": o.orm.seconds * 1e3,
                "candidate_error": o.candidate.error_text,
                "diff": o.diff_text() if o.verdict is Verdict.MISMATCH else None,
            }
            for o in batch
        ]
        self._write(self._INSERT, rows, f"{len(rows)} observations")

    def record_drops(self, tally: DropTally) -> None:
        """Store how many observations of each key were dropped, and why (for compat status)."""
        rows = [
            {"key": key, "dropped": count, "reason": reason}
            for (key, reason), count in sorted(tally.items())
            if count > 0
        ]
        if rows:
            self._write(self._DROPS, rows, f"the count of {sum(tally.values())} dropped")

    def _write(
        self, statement: sa.TextClause, rows: Sequence[Mapping[str, object]], what: str
    ) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                with self._engine().begin() as connection:
                    connection.execute(statement, rows)
                return
            except sa.exc.SQLAlchemyError as error:
                # str(error) carries "[parameters: ...]"; the driver's first line does not.
                orig = getattr(error, "orig", None) or error
                reason = f"{type(orig).__name__}: {next(iter(str(orig).splitlines()), '')}"
            if attempt < self.attempts:
                self.retried += 1
                time.sleep(self.backoff_seconds * 4 ** (attempt - 1))
        raise PublishFailed(
            f"could not store {what} in {self.attempts} attempts; the last said {reason}"
        )


class Dispatcher:
    """Hands observations to publishers on a background thread.

    ``submit`` never blocks and never raises. Every observation submitted is
    either handed to every publisher or counted in ``dropped``: when the
    queue is full, when a publisher gave up on its batch, or when it was still
    queued when ``close`` gave up waiting. ``on_drop`` hears of each drop at
    once (the in-process counters); ``record_drops`` is asked to store the
    tally (the table publisher), and is asked again until it succeeds.
    """

    def __init__(
        self,
        publishers: Iterable[Publisher],
        *,
        capacity: int = 10_000,
        on_drop: Callable[[str, int], None] | None = None,
        record_drops: Callable[[DropTally], None] | None = None,
    ) -> None:
        self.publishers = list(publishers)
        self.dropped = 0
        self.submitted = 0
        """Observations submitted (unlocked on the hot path: may undercount under threads)."""
        self._on_drop = on_drop
        self._record_drops = record_drops
        self._unrecorded: Counter[tuple[str, str]] = Counter()
        self._total: Counter[tuple[str, str]] = Counter()
        self._queue: queue.Queue[Observation] = queue.Queue(maxsize=capacity)
        self._in_flight: list[Observation] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, observation: Observation) -> None:
        """Queue an observation for the publishers; never blocks the caller."""
        self.submitted += 1
        if self._closed:
            self._drop([observation], "submitted after shutdown")
            return
        try:
            self._queue.put_nowait(observation)
        except queue.Full:
            self._drop([observation], "the queue was full")
            return
        if self._thread is None or not self._thread.is_alive():
            self._start()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued observation was handed to the publishers; False on timeout."""
        if self._queue.unfinished_tasks and (self._thread is None or not self._thread.is_alive()):
            try:
                self._start()
            except RuntimeError:  # Python 3.12+ starts no thread at interpreter shutdown
                return False
        deadline = time.monotonic() + timeout
        # The queue's own condition: no helper thread (none may start at interpreter exit).
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def close(self, timeout: float = DEFAULT_DRAIN_TIMEOUT_SECONDS) -> int:
        """Drain for up to ``timeout`` seconds, count what is left as dropped, store the tally.

        Storing the tally gets ``timeout`` seconds of its own, so ``close``
        returns within twice ``timeout``. Returns how many observations this
        dispatcher dropped in all. After ``close``, a submitted observation is
        dropped (and counted) at once.
        """
        drained = self.drain(timeout)
        self._closed = True
        if not drained:
            # The batch a publisher still holds is as lost as the queued ones:
            # the process exits, and its uncommitted insert with it.
            with self._lock:
                left: list[Observation] = list(self._in_flight)
                self._in_flight = []
            while True:
                try:
                    left.append(self._queue.get_nowait())
                except queue.Empty:
                    break
                self._queue.task_done()
            self._drop(left, "not stored before the process exited (drain timeout)")
            internal.error(
                "compat: %d observations were still queued after %.1f s at shutdown; "
                "counted as dropped",
                len(left),
                timeout,
            )
        if self._unrecorded:
            # Bounded too: a server that does not answer must not hold the exit up.
            try:
                writer = threading.Thread(
                    target=self._flush_drops, name="compat-drops", daemon=True
                )
                writer.start()
                writer.join(timeout)
            except RuntimeError:  # no thread may start at interpreter shutdown (3.12+)
                pass
        return self.dropped

    def dropped_by_key(self) -> dict[str, int]:
        """Dropped observations per key, for this process (the CounterPublisher has them too)."""
        with self._lock:
            found: Counter[str] = Counter()
            for (key, _reason), count in self._total.items():
                found[key] += count
            return dict(found)

    def _drop(self, observations: Sequence[Observation], reason: str) -> None:
        if not observations:
            return
        per_key = Counter(observation.key for observation in observations)
        with self._lock:
            self.dropped += len(observations)
            for key, count in per_key.items():
                self._unrecorded[(key, reason)] += count
                self._total[(key, reason)] += count
        if self._on_drop is not None:
            for key, count in per_key.items():
                try:
                    self._on_drop(key, count)
                except Exception:
                    internal.exception("compat: counting dropped observations failed")

    def _flush_drops(self) -> None:
        if self._record_drops is None:
            return
        with self._lock:
            tally, self._unrecorded = dict(self._unrecorded), Counter()
        if not tally:
            return
        try:
            self._record_drops(tally)
        except Exception as error:
            with self._lock:
                self._unrecorded.update(tally)
            internal.warning(
                "compat: could not store the count of %d dropped observations yet (%s)",
                sum(tally.values()),
                error,
            )

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
            with self._lock:
                self._in_flight = batch
            failed = False
            for publisher in self.publishers:
                try:
                    publisher.publish(batch)
                except PublishFailed as error:
                    failed = True
                    internal.error("compat: publisher %s: %s", type(publisher).__name__, error)
                except Exception:
                    failed = True
                    internal.exception(
                        "compat: publisher %s failed; %d observations not published by it",
                        type(publisher).__name__,
                        len(batch),
                    )
            with self._lock:
                # Empty when close() gave up on this batch and counted it already.
                counted = self._in_flight is not batch
                self._in_flight = []
            if failed and not counted:
                self._drop(batch, "a publisher could not take them")
            if self._unrecorded:
                self._flush_drops()
            # Last: drain() returns only once the batch's drops are counted (and stored).
            for _ in batch:
                self._queue.task_done()

    def after_fork(self) -> None:
        """The parent's thread does not exist in a forked child: start afresh there."""
        self._thread = None
        self._lock = threading.Lock()
        self._queue = queue.Queue(maxsize=self._queue.maxsize)
        self._closed = False
        self._in_flight = []
        # The parent's drops are the parent's to count and store, not this process's.
        self.dropped = self.submitted = 0
        self._unrecorded, self._total = Counter(), Counter()
