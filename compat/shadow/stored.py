"""Compat layer: reading what the observations left in the database: mismatch groups, counts.

Every reader of the stored observations (``compat status``, ``compat
mismatches``, the rollout gates, the dashboard) goes through here, so that
where the rows are kept is decided in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa

from compat.shadow.fingerprint import shape_of
from compat.shadow.metrics import BUCKETS

__all__ = [
    "BOUNDS_MS",
    "DEFAULT_KEEP",
    "DEFAULT_ROLLUP_DAYS",
    "Counts",
    "MismatchGroup",
    "Pruned",
    "Stored",
    "Times",
    "counts",
    "hourly",
    "last_mismatches",
    "latest",
    "mismatch_groups",
    "prune",
    "quantile",
    "times",
]

DEFAULT_KEEP: Final = 1000
"""Mismatch and candidate-error rows kept per key, newest first (``prune --keep``)."""
DEFAULT_ROLLUP_DAYS: Final = 35.0
"""Days of per-minute counts kept (``prune --days``): longer than any gate's window."""

# A minute's counts are in the window when any of that minute is: at most one
# minute more than the window is counted.
_COUNTS: Final = sa.text(
    "SELECT key, mode, sum(compared) AS compared, sum(mismatches) AS mismatches, "
    "sum(candidate_errors) AS candidate_errors FROM compat_observation_rollups "
    "WHERE minute >= date_trunc('minute', CURRENT_TIMESTAMP - :minutes * INTERVAL '1 minute') "
    "AND (CAST(:key AS text) IS NULL OR key = :key) GROUP BY key, mode"
)
_LAST_MISMATCH: Final = sa.text(
    "SELECT key, max(observed_at) AS at FROM compat_observations WHERE NOT matched "
    "AND observed_at >= (CURRENT_TIMESTAMP AT TIME ZONE 'UTC') - :minutes * INTERVAL '1 minute' "
    "GROUP BY key"
)
_PRUNE_ROWS: Final = sa.text(
    "DELETE FROM compat_observations AS o USING ("
    "SELECT id, row_number() OVER (PARTITION BY key ORDER BY observed_at DESC, id DESC) AS n "
    "FROM compat_observations) AS ranked "
    "WHERE o.id = ranked.id AND (ranked.n > :keep "
    "OR o.observed_at < (CURRENT_TIMESTAMP AT TIME ZONE 'UTC') - :days * INTERVAL '1 day')"
)
_PRUNE_ROLLUPS: Final = sa.text(
    "DELETE FROM compat_observation_rollups "
    "WHERE minute < CURRENT_TIMESTAMP - :days * INTERVAL '1 day'"
)

_PRUNE_SERVED: Final = sa.text(
    "DELETE FROM compat_served_rollups WHERE minute < CURRENT_TIMESTAMP - :days * INTERVAL '1 day'"
)

_MISMATCHES: Final = sa.text(
    "SELECT key, observed_at, mode, diff, candidate_error FROM compat_observations "
    "WHERE NOT matched AND (CAST(:key AS text) IS NULL OR key = :key) "
    "ORDER BY observed_at DESC, id DESC"
)


@dataclass(frozen=True, slots=True)
class MismatchGroup:
    """Stored mismatches with one fingerprint: how many, and the latest one's redacted diff."""

    fingerprint: str
    key: str
    count: int
    fields: tuple[str, ...]
    latest_at: datetime
    latest_mode: str
    latest_diff: str
    latest_candidate_error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "key": self.key,
            "count": self.count,
            "fields": list(self.fields),
            "latest_at": self.latest_at.isoformat(timespec="seconds"),
            "latest_mode": self.latest_mode,
            "latest_diff": self.latest_diff,
            "latest_candidate_error": self.latest_candidate_error,
        }


@dataclass(frozen=True, slots=True)
class Counts:
    """Compared calls of one key in one mode in a window, with its mismatches and errors."""

    key: str
    mode: str
    compared: int
    mismatches: int
    candidate_errors: int


def counts(
    connection: sa.Connection, window_minutes: float, key: str | None = None
) -> dict[tuple[str, str], Counts]:
    """Per (key, mode): every observation of the window, counted (to the minute).

    Read from the per-minute rollups, which count every observation as it is
    stored, including the matches no row is kept of and the mismatches
    pruned since.
    """
    rows = connection.execute(_COUNTS, {"minutes": window_minutes, "key": key})
    return {
        (row.key, row.mode): Counts(
            row.key, row.mode, int(row.compared), int(row.mismatches), int(row.candidate_errors)
        )
        for row in rows
    }


BOUNDS_MS: Final = tuple(bound * 1e3 for bound in BUCKETS)
"""The upper bounds (ms) of the rollups' time buckets; one more bucket holds the rest."""

_TIMES: Final = sa.text(
    "SELECT key, legacy_ms_buckets AS legacy, orm_ms_buckets AS orm "
    "FROM compat_observation_rollups "
    "WHERE minute >= date_trunc('minute', CURRENT_TIMESTAMP - :minutes * INTERVAL '1 minute')"
)
_HOURLY: Final = sa.text(
    "SELECT key, floor(extract(epoch FROM CURRENT_TIMESTAMP - minute) / 3600)::int AS hours_ago, "
    "sum(compared) AS compared, sum(mismatches + candidate_errors) AS bad "
    "FROM compat_observation_rollups "
    "WHERE minute >= CURRENT_TIMESTAMP - :hours * INTERVAL '1 hour' GROUP BY key, hours_ago"
)
_LATEST: Final = sa.text(
    "SELECT key, observed_at, mode, diff, candidate_error FROM ("
    "SELECT *, row_number() OVER (PARTITION BY key ORDER BY observed_at DESC, id DESC) AS n "
    "FROM compat_observations WHERE NOT matched OR candidate_error IS NOT NULL) AS ranked "
    "WHERE n <= :limit ORDER BY key, observed_at DESC"
)


@dataclass(frozen=True, slots=True)
class Times:
    """Each side's time of one key's observations in a window, as bucket counts."""

    legacy: tuple[int, ...]
    orm: tuple[int, ...]


def times(connection: sa.Connection, window_minutes: float) -> dict[str, Times]:
    """Per key, the bucket counts of each side's time in the window (every mode)."""
    found: dict[str, Times] = {}
    size = len(BOUNDS_MS) + 1
    for row in connection.execute(_TIMES, {"minutes": window_minutes}):
        before = found.get(row.key, Times((0,) * size, (0,) * size))
        found[row.key] = Times(
            tuple(a + b for a, b in zip(before.legacy, row.legacy, strict=True)),
            tuple(a + b for a, b in zip(before.orm, row.orm, strict=True)),
        )
    return found


def quantile(buckets: Sequence[int], q: float) -> float | None:
    """The upper bound (ms) of the bucket the ``q`` quantile falls in; inf above the last."""
    total = sum(buckets)
    if total == 0:
        return None
    seen = 0
    for index, count in enumerate(buckets):
        seen += count
        if seen >= q * total:
            return BOUNDS_MS[index] if index < len(BOUNDS_MS) else float("inf")
    return float("inf")


def hourly(connection: sa.Connection, hours: int) -> dict[str, list[tuple[int, int]]]:
    """Per key, per hour back from now (index 0: this hour), compared calls and bad ones."""
    series: dict[str, list[tuple[int, int]]] = {}
    for row in connection.execute(_HOURLY, {"hours": hours}):
        if 0 <= row.hours_ago < hours:
            slots = series.setdefault(row.key, [(0, 0)] * hours)
            slots[row.hours_ago] = (int(row.compared), int(row.bad))
    return series


@dataclass(frozen=True, slots=True)
class Stored:
    """One kept mismatch or candidate error, as stored (redacted)."""

    key: str
    observed_at: datetime
    mode: str
    diff: str | None
    candidate_error: str | None


def latest(connection: sa.Connection, per_key: int) -> dict[str, list[Stored]]:
    """Per key, its newest kept mismatches and candidate errors, newest first."""
    found: dict[str, list[Stored]] = {}
    for row in connection.execute(_LATEST, {"limit": per_key}):
        found.setdefault(row.key, []).append(
            Stored(row.key, row.observed_at, row.mode, row.diff, row.candidate_error)
        )
    return found


def last_mismatches(connection: sa.Connection, window_minutes: float) -> dict[str, datetime]:
    """Per key, the time (UTC) of its latest stored mismatch in the window."""
    rows = connection.execute(_LAST_MISMATCH, {"minutes": window_minutes})
    return {row.key: row.at for row in rows}


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one `compat observations prune` removed."""

    rows: int
    rollups: int
    """Per-minute counts: of observations and of served calls."""


def prune(
    connection: sa.Connection,
    *,
    keep: int = DEFAULT_KEEP,
    days: float = DEFAULT_ROLLUP_DAYS,
) -> Pruned:
    """Apply the retention: ``keep`` newest rows per key, nothing older than ``days``.

    Only rows go that the rollups already counted, so no count changes.
    """
    rows = connection.execute(_PRUNE_ROWS, {"keep": keep, "days": days}).rowcount
    rollups = connection.execute(_PRUNE_ROLLUPS, {"days": days}).rowcount
    # The served-call counts (the orm guard's) age out with the observations' counts.
    rollups += connection.execute(_PRUNE_SERVED, {"days": days}).rowcount
    return Pruned(rows, rollups)


def mismatch_groups(connection: sa.Connection, key: str | None = None) -> list[MismatchGroup]:
    """The stored mismatches (of ``key``, or of every key) grouped by fingerprint, largest first."""
    rows = connection.execute(_MISMATCHES, {"key": key})
    return _grouped(rows)


def _grouped(rows: Iterable[Any]) -> list[MismatchGroup]:
    groups: dict[str, MismatchGroup] = {}
    for row in rows:  # newest first: a group's first row is its latest
        shape = shape_of(row.key, row.diff)
        found = groups.get(shape.fingerprint)
        if found is None:
            groups[shape.fingerprint] = MismatchGroup(
                shape.fingerprint,
                row.key,
                1,
                shape.fields,
                row.observed_at,
                row.mode,
                row.diff or "",
                row.candidate_error,
            )
        else:
            groups[shape.fingerprint] = replace(found, count=found.count + 1)
    return sorted(groups.values(), key=lambda g: (-g.count, g.key, g.fingerprint))
