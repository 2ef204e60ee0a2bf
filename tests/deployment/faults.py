"""Deployment harness: drive calls from threads while a fault happens, and read the figures off.

Each call is recorded with its start, end and outcome; the fault's own start
and end are recorded too. The figures: how many calls, how many failed, the
failure window (first failed call's start to last failed call's end), the
longest call, and the recovery (the fault's end to the first call that
started after it and succeeded).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Call:
    start: float
    end: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Run:
    calls: list[Call] = field(default_factory=list)
    fault_start: float = 0.0
    fault_end: float = 0.0

    @property
    def failures(self) -> list[Call]:
        return [call for call in self.calls if not call.ok]

    @property
    def failure_window(self) -> float:
        failed = self.failures
        return max(c.end for c in failed) - min(c.start for c in failed) if failed else 0.0

    @property
    def longest_call(self) -> float:
        return max((c.end - c.start for c in self.calls), default=0.0)

    @property
    def recovery(self) -> float:
        """Seconds from the fault's end until a call started after it succeeded (inf: never)."""
        after = [c.end for c in self.calls if c.ok and c.start >= self.fault_end]
        return (min(after) - self.fault_end) if after else float("inf")

    def failed_outside_the_fault(self) -> list[Call]:
        """Failed calls that neither overlapped the fault nor started before recovery ended."""
        settled = self.fault_end + self.recovery
        return [c for c in self.failures if c.end < self.fault_start or c.start > settled]

    def summary(self) -> str:
        errors = sorted({c.error or "" for c in self.failures})
        return (
            f"{len(self.calls)} calls, {len(self.failures)} failed, failure window "
            f"{self.failure_window:.2f} s, longest call {self.longest_call:.2f} s, "
            f"fault {self.fault_end - self.fault_start:.2f} s, recovery {self.recovery:.2f} s; "
            f"errors: {errors[:4]}"
        )


def drive(
    call: Callable[[int], None],
    fault: Callable[[], None],
    *,
    threads: int = 4,
    before_seconds: float = 1.0,
    after_seconds: float = 3.0,
    max_calls_per_thread: int = 5000,
) -> Run:
    """Run ``call(thread_number)`` in a loop on ``threads`` threads; ``fault()`` in between.

    Load runs ``before_seconds`` before the fault and ``after_seconds`` after
    it ended (or until each thread made ``max_calls_per_thread``).
    """
    run = Run()
    lock = threading.Lock()
    stop = threading.Event()

    def worker(number: int) -> None:
        for _ in range(max_calls_per_thread):
            if stop.is_set():
                return
            start = time.monotonic()
            try:
                call(number)
            except Exception as error:  # every failure is a figure, not a crash
                record = Call(start, time.monotonic(), type(error).__name__)
            else:
                record = Call(start, time.monotonic())
            with lock:
                run.calls.append(record)

    pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for thread in pool:
        thread.start()
    try:
        _wait(before_seconds, stop)
        run.fault_start = time.monotonic()
        fault()
        run.fault_end = time.monotonic()
        _wait(after_seconds, stop)
    finally:
        stop.set()
        for thread in pool:
            thread.join(timeout=60)
    return run


def _wait(seconds: float, stop: threading.Event) -> None:
    stop.wait(seconds)
