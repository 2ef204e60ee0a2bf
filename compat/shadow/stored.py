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

__all__ = ["MismatchGroup", "mismatch_groups"]

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
