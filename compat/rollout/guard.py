"""Compat layer: the guard: a function the ORM serves steps back by itself when the paths disagree.

While a function is ``live``, its observations are watched; once its
mismatches plus candidate errors since it entered ``live`` reach the
threshold, it steps back one stage (to ``shadow``, where legacy serves
again), recorded in the audit as done by the guard with the observation that
tripped it, and logged as an error. Every process applies the step back at
its next read of the flags, as it would a manual flip. The step back is one
transaction that first checks the function is still ``live`` (two guards, or
a guard and a person, cannot step it back twice), and it changes only which
side serves the next calls: no write is lost or doubled.
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
"""Mismatches plus candidate errors in live that step a function back: any at all."""

_TRIPS = sa.text(
    "WITH entered AS ("
    "  SELECT key, max(changed_at) AS at FROM compat_flag_audit "
    "  WHERE new_mode = 'live' GROUP BY key"
    ") "
    "SELECT o.key, count(*) AS bad, max(o.observed_at) AS last_at, "
    "  (array_agg(coalesce(o.candidate_error, o.diff) ORDER BY o.id DESC))[1] AS latest "
    "FROM compat_observations o JOIN compat_flags f ON f.key = o.key AND f.mode = 'live' "
    "LEFT JOIN entered e ON e.key = o.key "
    "WHERE o.mode = 'live' AND (NOT o.matched OR o.candidate_error IS NOT NULL) "
    "AND o.observed_at >= coalesce(e.at, '-infinity'::timestamp) "
    "GROUP BY o.key HAVING count(*) >= :threshold ORDER BY o.key"
)


@dataclass(frozen=True, slots=True)
class Trip:
    """A function the guard stepped back, and the observations that made it."""

    key: str
    bad: int
    latest: str
    change: FlagChange


def watch(engine: sa.Engine, store: FlagStore, *, threshold: int = DEFAULT_THRESHOLD) -> list[Trip]:
    """One look at every live function; step back those past the threshold. Returns the trips."""
    with engine.connect() as connection:
        found = connection.execute(_TRIPS, {"threshold": threshold}).all()
    trips = []
    for row in found:
        if row.key not in store.keys:
            continue
        latest = (row.latest or "").splitlines()[0][:300]
        reason = (
            f"guard: {row.bad} mismatches or candidate errors in live since it went live "
            f"(threshold {threshold}); latest: {latest}"
        )
        change = store.step_back(row.key, Mode.LIVE, Mode.SHADOW, reason=reason, by=GUARD)
        if change is None:  # someone moved it meanwhile
            continue
        log.error("compat guard: %s stepped back from live to shadow: %s", row.key, reason)
        trips.append(Trip(row.key, row.bad, latest, change))
    return trips
