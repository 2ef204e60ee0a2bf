"""Compat layer: reading what the observations left in the database: mismatch groups, counts.

Every reader of the stored observations (``compat status``, ``compat
mismatches``, the rollout gates, the dashboard) goes through here, so that
where the rows are kept is decided in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa

from compat.shadow.fingerprint import shape_of

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_ROLLUP_DAYS",
    "Counts",
    "MismatchGroup",
    "Pruned",
    "counts",
    "last_mismatches",
    "mismatch_groups",
    "prune",
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


def last_mismatches(connection: sa.Connection, window_minutes: float) -> dict[str, datetime]:
    """Per key, the time (UTC) of its latest stored mismatch in the window."""
    rows = connection.execute(_LAST_MISMATCH, {"minutes": window_minutes})
    return {row.key: row.at for row in rows}


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one `compat observations prune` removed."""

    rows: int
    rollups: int


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
