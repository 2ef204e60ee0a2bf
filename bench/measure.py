"""Benchmarks: timing single calls, interleaved across variants, summarised as median and p95."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Samples", "Summary", "percentile", "time_calls"]


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` fall (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


@dataclass(frozen=True, slots=True)
class Summary:
    """Per-call times of one variant of one operation, in microseconds."""

    median_us: float
    p95_us: float
    calls: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "median_us": round(self.median_us, 2),
            "p95_us": round(self.p95_us, 2),
            "calls": self.calls,
        }


@dataclass
class Samples:
    """Per-call durations collected over the rounds, by (operation, variant)."""

    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, operation: str, variant: str, durations_us: list[float]) -> None:
        self.values.setdefault((operation, variant), []).extend(durations_us)

    def summary(self, operation: str, variant: str) -> Summary | None:
        found = self.values.get((operation, variant))
        if not found:
            return None
        return Summary(statistics.median(found), percentile(found, 0.95), len(found))


def time_calls(
    call: Callable[[Any], object], arguments: list[Any], *, collect_garbage: bool = True
) -> list[float]:
    """Call ``call(argument)`` for each argument; return each call's duration in microseconds.

    A full collection runs before the batch, so the garbage one variant left
    is not billed to the next; collections during the batch stay in (the
    garbage a path makes is part of its cost).
    """
    if collect_garbage:
        gc.collect()
    durations: list[float] = []
    clock = time.perf_counter_ns
    for argument in arguments:
        started = clock()
        call(argument)
        durations.append((clock() - started) / 1e3)
    return durations
