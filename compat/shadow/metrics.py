"""Compat layer: Prometheus metrics of every facade call and every observation, per key and path.

The instruments live in one registry of their own (``REGISTRY``). Calls
served are counted on the caller's thread by ``meter()`` (a dictionary read
for a child bound once per key, mode and side); comparisons, mismatches,
candidate errors and timeouts and each side's latency of a compared call are
counted off the caller's thread by ``MetricsPublisher``. Label values are
facade keys, modes and sides: all bounded by the registry of facade functions.

Under gunicorn, prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR,
which prometheus-client itself reads when it is imported) keeps each worker's
values in files that any worker's scrape adds up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from compat.flags.modes import Mode
from compat.shadow.observation import Observation, Side, Verdict

__all__ = [
    "BUCKETS",
    "REGISTRY",
    "Meter",
    "MetricsPublisher",
    "meter",
    "set_modes",
]

internal = logging.getLogger("compat.shadow.metrics")

TIMEOUT_SQLSTATE: Final = "57014"
"""query_canceled: what the candidate's statement_timeout raises."""

BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds: a point read takes a fraction of a millisecond, a bulk write can take seconds."""

REGISTRY: Final = CollectorRegistry(auto_describe=True)
"""The layer's metrics (in multiprocess mode, the files hold them; see compat.metrics)."""

CALLS: Final = Counter(
    "compat_calls",
    "Facade calls served, per key, mode and the side that served the caller",
    ("key", "mode", "side"),
    registry=REGISTRY,
)
ERRORS: Final = Counter(
    "compat_call_errors",
    "Facade calls whose serving side raised to the caller",
    ("key", "mode", "side"),
    registry=REGISTRY,
)
COMPARISONS: Final = Counter(
    "compat_comparisons",
    "Compared calls (observations), per key and mode",
    ("key", "mode"),
    registry=REGISTRY,
)
MISMATCHES: Final = Counter(
    "compat_mismatches",
    "Compared calls whose candidate disagreed with the serving side",
    ("key", "mode"),
    registry=REGISTRY,
)
CANDIDATE_ERRORS: Final = Counter(
    "compat_candidate_errors",
    "Compared calls whose candidate raised (timeouts included)",
    ("key", "mode"),
    registry=REGISTRY,
)
FAULTS: Final = Counter(
    "compat_faults",
    "Compared calls in which a side lost its connection (nothing was compared)",
    ("key", "mode", "side"),
    registry=REGISTRY,
)
CANDIDATE_TIMEOUTS: Final = Counter(
    "compat_candidate_timeouts",
    "Compared calls whose candidate ran out of its budget (SQLSTATE 57014)",
    ("key", "mode"),
    registry=REGISTRY,
)
SECONDS: Final = Histogram(
    "compat_call_seconds",
    "Time of one side of a facade call: the serving side of every call, "
    "the candidate of a compared one",
    ("key", "side", "role"),
    buckets=BUCKETS,
    registry=REGISTRY,
)
MODE: Final = Gauge(
    "compat_mode",
    "1 for the mode each key is in, 0 for the other modes",
    ("key", "mode"),
    multiprocess_mode="livemostrecent",
    registry=REGISTRY,
)


class _Counting(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Timing(Protocol):
    def observe(self, amount: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Meter:
    """The children one (key, mode, side) counts with, bound once."""

    calls: _Counting
    errors: _Counting
    seconds: _Timing


class _Nothing:
    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


_NOTHING: Final = Meter(_Nothing(), _Nothing(), _Nothing())
_meters: dict[tuple[str, Mode, Side], Meter] = {}
_last: dict[str, tuple[Mode, Side, Meter]] = {}
"""Per key, the meter of its last call: the hot path's one dictionary read."""
_modes: dict[str, Mode] = {}
_lock = threading.Lock()
_failed = False


def meter(key: str, mode: Mode, side: Side) -> Meter:
    """The meter of calls to ``key`` in ``mode`` served by ``side``; never raises.

    The hot path: one dictionary read (by the key, a string whose hash is
    cached) and two identity checks while the mode stays; on a change, the
    mode gauge follows and the meter of the new mode is bound (once).
    """
    last = _last.get(key)
    if last is not None and last[0] is mode and last[1] is side:
        return last[2]
    found = _meters.get((key, mode, side)) or _bind(key, mode, side)
    if _modes.get(key) is not mode:
        set_modes(((key, mode),))
    _last[key] = (mode, side, found)
    return found


def _bind(key: str, mode: Mode, side: Side) -> Meter:
    global _failed
    with _lock:
        found = _meters.get((key, mode, side))
        if found is not None:
            return found
        try:
            found = Meter(
                CALLS.labels(key, mode.value, side.value),
                ERRORS.labels(key, mode.value, side.value),
                SECONDS.labels(key, side.value, "serving"),
            )
        except OSError as error:
            # Multiprocess mode with a directory that cannot be written: the call
            # goes on uncounted, and the reason is logged once.
            if not _failed:
                internal.error("compat: metrics are not recorded: %s", error)
                _failed = True
            found = _NOTHING
        _meters[(key, mode, side)] = found
        return found


def set_modes(modes: Iterable[tuple[str, Mode]]) -> None:
    """Set the mode gauge: 1 for each key's mode, 0 for its other modes; never raises."""
    global _failed
    try:
        for key, mode in modes:
            for each in Mode:
                MODE.labels(key, each.value).set(1 if each is mode else 0)
            _modes[key] = mode
    except OSError as error:
        if not _failed:
            internal.error("compat: metrics are not recorded: %s", error)
            _failed = True


class MetricsPublisher:
    """Counts each observation: comparison, mismatch, candidate error and timeout, latencies."""

    def publish(self, batch: Sequence[Observation]) -> None:
        for observation in batch:
            key, mode = observation.key, observation.mode.value
            COMPARISONS.labels(key, mode).inc()
            fault = observation.fault
            if fault is not None:  # a lost connection is not the ORM disagreeing
                FAULTS.labels(key, mode, fault.value).inc()
            elif observation.verdict is Verdict.MISMATCH:
                MISMATCHES.labels(key, mode).inc()
            error = observation.candidate.error
            if error is not None and not observation.candidate.faulted:
                CANDIDATE_ERRORS.labels(key, mode).inc()
                if getattr(error, "pgcode", None) == TIMEOUT_SQLSTATE:
                    CANDIDATE_TIMEOUTS.labels(key, mode).inc()
            serving, candidate = observation.serving, observation.candidate
            SECONDS.labels(key, serving.side.value, "serving").observe(serving.seconds)
            SECONDS.labels(key, candidate.side.value, "candidate").observe(candidate.seconds)
