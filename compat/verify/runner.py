"""Compat layer: `compat verify`, both paths of every facade function on real rows, no change.

Every call runs through the parity core (compat.verify.parity.compare_paths): each
path in its own savepoint, rolled back, inside one transaction that is rolled
back at the end, so no row of any table changes. What PostgreSQL does not roll
back is a sequence: an insert draws its next value for good. The report names
how far each sequence moved instead of rewinding it, because on a live
database another client may have drawn values meanwhile, and a rewind would
hand those out twice.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import statistics
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa

import compat  # noqa: F401  (declares every facade function)
import layer_settings
from compat.routing.declaration import REGISTRY, Kind
from compat.routing.unit_of_work import UnitOfWork, transaction
from compat.runtime import Runtime, build_runtime, get_runtime, use_runtime
from compat.verify import seeding
from compat.verify.calls import Call, calls_for, sample
from compat.verify.embedded import embedded_postgres
from compat.verify.parity import compare_paths

__all__ = [
    "CONFIGURATION_VARIABLES",
    "DEFAULT_SAMPLE",
    "FunctionResult",
    "Latency",
    "Report",
    "SequenceMove",
    "configured",
    "select_keys",
    "verify",
    "verify_embedded",
]

DEFAULT_SAMPLE: Final = 20
READY: Final = "ready"
BLOCKED: Final = "blocked"
LOCK_TIMEOUT: Final = "5s"
"""A write call that meets a row another client holds fails on both paths rather than waiting."""

CONFIGURATION_VARIABLES: Final = layer_settings.DATABASE_VARIABLES

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Latency:
    """Median and 95th percentile (nearest rank) of one path's durations, in milliseconds."""

    p50_ms: float
    p95_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        if not seconds:
            return cls(0.0, 0.0)
        ordered = sorted(seconds)
        p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
        return cls(statistics.median(ordered) * 1e3, p95 * 1e3)


@dataclass(frozen=True, slots=True)
class FunctionResult:
    """One facade function's verification: how many calls matched, each path's latency."""

    key: str
    kind: Kind
    mode: str
    cases: int
    matches: int
    legacy: Latency
    orm: Latency
    first_diff: str | None = None
    """The first mismatching call's report, personal data redacted."""

    @property
    def mismatches(self) -> int:
        return self.cases - self.matches

    @property
    def verdict(self) -> str:
        """``ready`` when every call matched (and there was at least one), else ``blocked``."""
        return READY if self.cases > 0 and self.mismatches == 0 else BLOCKED


@dataclass(frozen=True, slots=True)
class SequenceMove:
    """A sequence whose value moved during the run (inserts draw values for good)."""

    name: str
    before: int | None
    after: int | None

    @property
    def drawn(self) -> int:
        return (self.after or 0) - (self.before or 0)


@dataclass(frozen=True, slots=True)
class Report:
    """The whole run: where, when, with how many calls, each function's result."""

    database: str
    embedded: bool
    sample: int
    started_at: datetime
    seconds: float
    functions: tuple[FunctionResult, ...]
    sequences: tuple[SequenceMove, ...] = ()
    seeded: str = ""

    @property
    def verdict(self) -> str:
        return READY if all(f.verdict == READY for f in self.functions) else BLOCKED

    @property
    def blocked(self) -> list[str]:
        return [f.key for f in self.functions if f.verdict != READY]

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready document (datetimes as ISO 8601 strings, durations in milliseconds)."""
        return {
            "verdict": self.verdict,
            "database": self.database,
            "embedded": self.embedded,
            "seeded": self.seeded or None,
            "sample": self.sample,
            "started_at": self.started_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "cases": sum(f.cases for f in self.functions),
            "mismatches": sum(f.mismatches for f in self.functions),
            "functions": [
                {
                    "key": f.key,
                    "kind": f.kind.value,
                    "mode": f.mode,
                    "cases": f.cases,
                    "matches": f.matches,
                    "mismatches": f.mismatches,
                    "legacy_ms": {
                        "p50": round(f.legacy.p50_ms, 3),
                        "p95": round(f.legacy.p95_ms, 3),
                    },
                    "orm_ms": {"p50": round(f.orm.p50_ms, 3), "p95": round(f.orm.p95_ms, 3)},
                    "verdict": f.verdict,
                    "first_diff": f.first_diff,
                }
                for f in self.functions
            ],
            "sequences": [
                {"name": s.name, "before": s.before, "after": s.after, "drawn": s.drawn}
                for s in self.sequences
            ],
        }


def select_keys(patterns: str | None, keys: Collection[str] | None = None) -> list[str]:
    """The registered keys matching any of the comma-separated globs (all when None), sorted."""
    keys = sorted(REGISTRY if keys is None else keys)
    if not patterns:
        return keys
    globs = [part.strip() for part in patterns.split(",") if part.strip()]
    return [key for key in keys if any(fnmatch.fnmatchcase(key, glob) for glob in globs)]


def configured() -> bool:
    """Whether the environment names a database (DATABASE_URL or any POSTGRES_* variable)."""
    return layer_settings.current().configured


_SEQUENCES = sa.text(
    "SELECT schemaname || '.' || sequencename AS name, last_value FROM pg_sequences ORDER BY 1"
)


def _sequences() -> dict[str, int | None]:
    with get_runtime().engine.connect() as connection:
        return {row.name: row.last_value for row in connection.execute(_SEQUENCES)}


class _RollBack(Exception):
    """Raised out of the verification's unit of work so that it is rolled back, always."""


def _modes(keys: Iterable[str]) -> dict[str, str]:
    # The flag store logs one warning and serves the defaults when compat_flags
    # is missing (a production database that has not run 0002 yet): fine here.
    states = {state.key: state.mode.value for state in get_runtime().flags.states()}
    return {key: states.get(key, "legacy") for key in keys}


def verify(
    keys: Sequence[str],
    *,
    sample_size: int = DEFAULT_SAMPLE,
    seed: int = 0,
    database: str | None = None,
    embedded: bool = False,
    progress: Progress = _quiet,
) -> Report:
    """Compare both paths of each function in ``keys`` on the configured database; change no row."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    modes = _modes(keys)
    before = _sequences()
    results: list[FunctionResult] = []
    with contextlib.suppress(_RollBack), transaction() as unit:
        unit.connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        samples = sample(unit.connection, sample_size, seed)
        progress(
            f"sampled {len(samples.sessions)} sessions, {len(samples.emails)} emails and "
            f"{len(samples.uploads)} uploads; comparing {len(keys)} functions"
        )
        for index, key in enumerate(keys, start=1):
            began = time.perf_counter()
            where = f"[{index:>{len(str(len(keys)))}}/{len(keys)}] {key}"
            calls = calls_for(key, samples, sample_size, seed)
            result = _verify_one(key, modes[key], calls, unit, _Ticker(where, progress))
            results.append(result)
            progress(f"{where}: {_summary(result)} ({time.perf_counter() - began:.2f} s)")
        raise _RollBack
    after = _sequences()
    moved = tuple(
        SequenceMove(name, before.get(name), after[name])
        for name in sorted(after)
        if before.get(name) != after[name]
    )
    return Report(
        database=database or get_runtime().engine.url.render_as_string(hide_password=True),
        embedded=embedded,
        sample=sample_size,
        started_at=started_at,
        seconds=time.perf_counter() - started,
        functions=tuple(results),
        sequences=moved,
    )


def _summary(result: FunctionResult) -> str:
    if not result.cases:
        return "no calls declared"
    if result.verdict == READY:
        return f"{result.cases} calls, all matched"
    return f"{result.cases} calls, {result.mismatches} MISMATCHED"


class _Ticker:
    """Says which call a slow function is at, at most every few seconds (big tables are slow)."""

    INTERVAL_SECONDS: Final = 5.0

    def __init__(self, where: str, progress: Progress) -> None:
        self._where = where
        self._progress = progress
        self._next = time.monotonic() + self.INTERVAL_SECONDS

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now >= self._next:
            self._next = now + self.INTERVAL_SECONDS
            self._progress(f"{self._where}: {done} of {total} calls done")


def _verify_one(
    key: str, mode: str, calls: Sequence[Call], unit: UnitOfWork, tick: _Ticker
) -> FunctionResult:
    legacy: list[float] = []
    orm: list[float] = []
    matches = 0
    first_diff: str | None = None
    for call in calls:
        comparison = compare_paths(key, call.args, call.kwargs, unit=unit, label=call.label)
        legacy.append(comparison.legacy.seconds)
        orm.append(comparison.orm.seconds)
        if comparison.matched:
            matches += 1
        elif first_diff is None:
            first_diff = comparison.report(redacted=True)
        # Only the figures are kept: a call's values may be a whole table.
        del comparison
        tick(len(legacy), len(calls))
    if not calls:
        first_diff = f"{key}: compat verify has no calls declared for this function"
    return FunctionResult(
        key=key,
        kind=REGISTRY[key].kind,
        mode=mode,
        cases=len(calls),
        matches=matches,
        legacy=Latency.of(legacy),
        orm=Latency.of(orm),
        first_diff=first_diff,
    )


def _runtime_for(libpq_url: str) -> Runtime:
    """A runtime of its own for the throwaway server: the process's environment is untouched."""
    return build_runtime(layer_settings.load({"DATABASE_URL": libpq_url}))


def verify_embedded(
    keys: Sequence[str],
    *,
    sample_size: int = DEFAULT_SAMPLE,
    sessions: int = seeding.DEFAULT_SESSIONS,
    seed: int = 0,
    progress: Progress = _quiet,
) -> Report:
    """Start a throwaway PostgreSQL, migrate it, seed it, verify, and remove it all."""
    from alembic import command

    from migrations.config import alembic_config

    started = time.perf_counter()
    with embedded_postgres(progress) as server, use_runtime(_runtime_for(server.libpq_url)) as rt:
        began = time.perf_counter()
        engine = rt.engine
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        progress(f"migrated to Alembic head in {time.perf_counter() - began:.1f} s")
        began = time.perf_counter()
        with engine.begin() as connection:
            seeded = seeding.seed(connection, sessions)
        progress(
            f"seeded {seeded.sessions} sessions and {seeded.uploads} uploads "
            f"in {time.perf_counter() - began:.1f} s"
        )
        report = verify(
            keys,
            sample_size=sample_size,
            seed=seed,
            database=f"embedded PostgreSQL {server.version.split()[0]} (throwaway)",
            embedded=True,
            progress=progress,
        )
    return Report(
        database=report.database,
        embedded=True,
        sample=report.sample,
        started_at=report.started_at,
        seconds=time.perf_counter() - started,
        functions=report.functions,
        sequences=report.sequences,
        seeded=f"{seeded.sessions} sessions, {seeded.uploads} uploads",
    )
