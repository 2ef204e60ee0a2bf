"""Compat layer: the guard: a function the ORM serves steps back by itself when it goes wrong.

Two rules, one per stage in which the ORM serves:

- ``live`` (whole or ramped): the paths are compared. Once a function's
  mismatches since it entered ``live`` (a candidate that failed where the
  serving side did not is one) reach its threshold, it steps back to
  ``shadow``, where legacy serves again.
- ``orm`` (whole or ramped): nothing is compared, so the guard compares error
  rates instead. Every process counts the calls each side served and how many
  raised (compat/shadow/served.py; a fault of the connection is not an
  error). Once the ORM's error rate since the function entered ``orm``, over
  the last ``window`` minutes and at least ``min_orm_calls`` calls, is above
  ``max(2 x baseline, baseline + error_margin)``, where the baseline is
  legacy's error rate when it served the function (the last
  ``baseline_days``), the function steps back to ``live``. A function whose
  callers hit constraint errors as often under legacy is not stepped back for them.

A step back is audited as done by the guard with the evidence (an
observation's id, or the counts; never a row's text) and logged as an error,
and every process applies it as it would a manual flip (pushed, or at the next
poll). It is one transaction that first checks the function is still where it
was (two guards, or a guard and a person, cannot step it back twice), and it
changes only which side serves the next calls: no write is lost or doubled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa

from compat.flags.modes import FlagChange, Mode
from compat.flags.store import FlagStore

__all__ = [
    "DEFAULT_BASELINE_DAYS",
    "DEFAULT_ERROR_MARGIN",
    "DEFAULT_MIN_ORM_CALLS",
    "DEFAULT_THRESHOLD",
    "DEFAULT_WINDOW_MINUTES",
    "GUARD",
    "Limits",
    "Policy",
    "Trip",
    "watch",
]

log = logging.getLogger("compat.guard")

GUARD: Final = "compat guard"
"""Who the audit says made a guard's step back."""
DEFAULT_THRESHOLD: Final = 1
"""Mismatches in live that step a function back: any at all."""
DEFAULT_MIN_ORM_CALLS: Final = 100
"""ORM calls in orm mode before its error rate is judged (fewer say too little)."""
DEFAULT_ERROR_MARGIN: Final = 0.01
"""How far (a fraction: 0.01 is one percentage point) the ORM's error rate may exceed legacy's."""
DEFAULT_WINDOW_MINUTES: Final = 10.0
"""The orm rule looks at this many recent minutes (since entering orm, if that is later)."""
DEFAULT_BASELINE_DAYS: Final = 7.0
"""Legacy's error rate is taken over this many days of the calls it served."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What trips the guard for one function."""

    threshold: int = DEFAULT_THRESHOLD
    min_orm_calls: int = DEFAULT_MIN_ORM_CALLS
    error_margin: float = DEFAULT_ERROR_MARGIN


@dataclass(frozen=True, slots=True)
class Policy:
    """The limits of every function: a default, and the keys that have their own."""

    default: Limits = Limits()
    per_key: Mapping[str, Limits] = field(default_factory=dict)
    window_minutes: float = DEFAULT_WINDOW_MINUTES
    baseline_days: float = DEFAULT_BASELINE_DAYS

    def of(self, key: str) -> Limits:
        return self.per_key.get(key, self.default)


@dataclass(frozen=True, slots=True)
class Trip:
    """A function the guard stepped back, from which stage, and the change it made."""

    key: str
    old: Mode
    new: Mode
    change: FlagChange


_MISMATCHES: Final = sa.text(
    "WITH entered AS ("
    "  SELECT key, max(changed_at) AS at FROM compat_flag_audit "
    "  WHERE new_mode = 'live' GROUP BY key"
    ") "
    "SELECT o.key, count(*) AS bad, max(o.id) AS latest "
    "FROM compat_observations o JOIN compat_flags f ON f.key = o.key AND f.mode = 'live' "
    "LEFT JOIN entered e ON e.key = o.key "
    "WHERE o.mode = 'live' AND NOT o.matched AND o.fault IS NULL "
    "AND o.observed_at >= coalesce(e.at, '-infinity'::timestamp) "
    "GROUP BY o.key ORDER BY o.key"
)
# The audit's changed_at is naive UTC; the rollups' minute is timestamptz.
_SERVED: Final = sa.text(
    "WITH entered AS ("
    "  SELECT key, max(changed_at) AT TIME ZONE 'UTC' AS at FROM compat_flag_audit "
    "  WHERE new_mode = 'orm' GROUP BY key"
    ") "
    "SELECT s.key, "
    "  coalesce(sum(s.calls) FILTER (WHERE orm_recent), 0) AS orm_calls, "
    "  coalesce(sum(s.errors) FILTER (WHERE orm_recent), 0) AS orm_errors, "
    "  coalesce(sum(s.calls) FILTER (WHERE s.side = 'legacy'), 0) AS legacy_calls, "
    "  coalesce(sum(s.errors) FILTER (WHERE s.side = 'legacy'), 0) AS legacy_errors "
    "FROM (SELECT r.*, (r.mode = 'orm' AND r.side = 'orm' "
    "    AND r.minute >= date_trunc('minute', coalesce(e.at, '-infinity'::timestamptz)) "
    "    AND r.minute >= date_trunc('minute', CURRENT_TIMESTAMP - :window * INTERVAL '1 minute')"
    "  ) AS orm_recent "
    "  FROM compat_served_rollups r JOIN compat_flags f ON f.key = r.key AND f.mode = 'orm' "
    "  LEFT JOIN entered e ON e.key = r.key "
    "  WHERE r.minute >= CURRENT_TIMESTAMP - :days * INTERVAL '1 day') AS s "
    "GROUP BY s.key ORDER BY s.key"
)


def watch(engine: sa.Engine, store: FlagStore, policy: Policy | None = None) -> list[Trip]:
    """One look at every live and orm function; step back those past their limits."""
    policy = policy or Policy()
    with engine.connect() as connection:
        mismatched = connection.execute(_MISMATCHES).all()
        served = connection.execute(
            _SERVED, {"window": policy.window_minutes, "days": policy.baseline_days}
        ).all()
    trips = []
    for row in mismatched:
        threshold = policy.of(row.key).threshold
        if row.key not in store.keys or row.bad < threshold:
            continue
        # The observation by its id, never its text: the audit is append-only,
        # and nothing that might be personal may enter what can never be erased.
        reason = (
            f"guard: {row.bad} mismatches in live since it went live "
            f"(threshold {threshold}); latest: compat_observations id {row.latest} "
            f"(compat status, compat_observations)"
        )
        trips += _step_back(store, row.key, Mode.LIVE, Mode.SHADOW, reason)
    for row in served:
        if row.key not in store.keys:
            continue
        failing = _error_rate_trip(row, policy.of(row.key), policy)
        if failing is not None:
            trips += _step_back(store, row.key, Mode.ORM, Mode.LIVE, failing)
    return trips


def _error_rate_trip(row: sa.Row[Any], limits: Limits, policy: Policy) -> str | None:
    """Why ``row``'s ORM error rate trips the orm rule, or None when it does not."""
    calls, errors = int(row.orm_calls), int(row.orm_errors)
    if calls < limits.min_orm_calls or errors == 0:
        return None
    legacy_calls, legacy_errors = int(row.legacy_calls), int(row.legacy_errors)
    baseline = legacy_errors / legacy_calls if legacy_calls else 0.0
    bound = max(2 * baseline, baseline + limits.error_margin)
    rate = errors / calls
    if rate <= bound:
        return None
    return (
        f"guard: ORM errors in {errors} of {calls} calls in orm ({rate:.1%}, last "
        f"{policy.window_minutes:g} minutes since it went to orm), above the bound {bound:.1%}: "
        f"legacy's baseline {legacy_errors} of {legacy_calls} calls ({baseline:.1%}, last "
        f"{policy.baseline_days:g} days), margin {limits.error_margin:g} "
        f"(compat_served_rollups)"
    )


def _step_back(store: FlagStore, key: str, old: Mode, new: Mode, reason: str) -> list[Trip]:
    change = store.step_back(key, old, new, reason=reason, by=GUARD)
    if change is None:  # someone moved it meanwhile
        return []
    log.error("compat guard: %s stepped back from %s to %s: %s", key, old, new, reason)
    return [Trip(key, old, new, change)]
