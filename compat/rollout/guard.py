"""Compat layer: the guard: a function the ORM serves steps back by itself when the paths disagree.

While a function is ``live``, its observations are watched; once its
mismatches since it entered ``live`` (a candidate that failed where the
serving side did not is one) reach the threshold, it steps back one stage
(to ``shadow``, where legacy serves again), recorded in the audit as done by
the guard with the id of the observation that tripped it, and logged as an
error. Every process applies the step back as it would a manual flip. The
step back is one transaction that first checks the function is still
``live`` (two guards, or a guard and a person, cannot step it back twice),
and it changes only which side serves the next calls: no write is lost or
doubled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa

from compat.flags.modes import FlagChange, Mode
from compat.flags.store import FlagStore

__all__ = ["DEFAULT_THRESHOLD", "GUARD", "Trip", "watch"]

log = logging.getLogger("compat.guard")

GUARD: Final = "compat guard"
"""Who the audit says made a guard's step back."""
DEFAULT_THRESHOLD: Final = 1
"""Mismatches in live that step a function back: any at all."""

_TRIPS = sa.text(
    "WITH entered AS ("
    "  SELECT key, max(changed_at) AS at FROM compat_flag_audit "
    "  WHERE new_mode = 'live' GROUP BY key"
    ") "
    "SELECT o.key, count(*) AS bad, max(o.observed_at) AS last_at, "
    "  max(o.id) AS latest "
    "FROM compat_observations o JOIN compat_flags f ON f.key = o.key AND f.mode = 'live' "
    "LEFT JOIN entered e ON e.key = o.key "
    "WHERE o.mode = 'live' AND NOT o.matched AND o.fault IS NULL "
    "AND o.observed_at >= coalesce(e.at, '-infinity'::timestamp) "
    "GROUP BY o.key HAVING count(*) >= :threshold ORDER BY o.key"
)


@dataclass(frozen=True, slots=True)
class Trip:
    """A function the guard stepped back, and the observations that made it."""

    key: str
    bad: int
    latest: int
    """The id of the newest mismatch in compat_observations."""
    change: FlagChange


def watch(engine: sa.Engine, store: FlagStore, *, threshold: int = DEFAULT_THRESHOLD) -> list[Trip]:
    """One look at every live function; step back those past the threshold. Returns the trips."""
    with engine.connect() as connection:
        found = connection.execute(_TRIPS, {"threshold": threshold}).all()
    trips = []
    for row in found:
        if row.key not in store.keys:
            continue
        # The observation by its id, never its text: the audit is append-only,
        # and nothing that might be personal may enter what can never be erased.
        reason = (
            f"guard: {row.bad} mismatches in live since it went live "
            f"(threshold {threshold}); latest: compat_observations id {row.latest} "
            f"(compat status, compat_observations)"
        )
        change = store.step_back(row.key, Mode.LIVE, Mode.SHADOW, reason=reason, by=GUARD)
        if change is None:  # someone moved it meanwhile
            continue
        log.error("compat guard: %s stepped back from live to shadow: %s", row.key, reason)
        trips.append(Trip(row.key, row.bad, row.latest, change))
    return trips
