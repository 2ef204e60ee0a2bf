"""Compat layer: promotion gates: a function moves forward only on evidence from the stage before.

The stages are the modes in order, legacy -> shadow -> live -> orm. Moving
back, or to shadow, is always allowed (it is how an incident is handled).
Moving to ``live`` needs evidence from ``shadow``, and to ``orm`` evidence
from ``live``: at least ``min_calls`` compared calls in the window with no
mismatch and no candidate error, and `compat verify` ready on that function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa

from compat.flags.modes import Mode
from compat.shadow.stored import counts

__all__ = [
    "DEFAULT_MIN_CALLS",
    "DEFAULT_WINDOW_MINUTES",
    "STAGES",
    "Evidence",
    "Gate",
    "evidence",
    "gate",
    "next_step",
]

STAGES: Final = (Mode.LEGACY, Mode.SHADOW, Mode.LIVE, Mode.ORM)
DEFAULT_MIN_CALLS: Final = 1000
"""Compared calls a stage must have seen before the next step (``--min-calls``)."""
DEFAULT_WINDOW_MINUTES: Final = 24 * 60.0
"""How far back the evidence is looked for (``--window``, minutes)."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one stage saw of one function in the window."""

    key: str
    stage: Mode
    calls: int
    mismatches: int
    candidate_errors: int
    window_minutes: float

    def summary(self, min_calls: int) -> str:
        """``312 of 1000 compared calls in shadow (last 1440 minutes), 0 mismatches, ...``."""
        return (
            f"{self.calls} of {min_calls} compared calls in {self.stage.value} "
            f"(last {self.window_minutes:g} minutes), {self.mismatches} mismatches, "
            f"{self.candidate_errors} candidate errors"
        )


@dataclass(frozen=True, slots=True)
class Gate:
    """Whether a step is allowed, and why (or what is missing)."""

    key: str
    old: Mode
    new: Mode
    allowed: bool
    reason: str
    evidence: Evidence | None = None


def evidence(connection: sa.Connection, key: str, stage: Mode, window_minutes: float) -> Evidence:
    """The compared calls ``stage`` recorded for ``key`` in the window (to the minute).

    Counted from the per-minute rollups, which count every stored observation:
    the matches (of which no row is kept) and the mismatches and candidate
    errors (kept as rows up to a bound, counted whether or not pruned since).
    """
    seen = counts(connection, window_minutes, key).get((key, stage.value))
    if seen is None:
        return Evidence(key, stage, 0, 0, 0, window_minutes)
    return Evidence(
        key, stage, seen.compared, seen.mismatches, seen.candidate_errors, window_minutes
    )


def gate(
    connection: sa.Connection,
    key: str,
    old: Mode,
    new: Mode,
    *,
    min_calls: int = DEFAULT_MIN_CALLS,
    window_minutes: float = DEFAULT_WINDOW_MINUTES,
    verified: Callable[[str], str | None] | None = None,
) -> Gate:
    """Decide the step ``old -> new`` for ``key``.

    ``verified(key)`` runs `compat verify` on the function and returns None
    when it is ready, else what blocked it; it runs only when the observed
    evidence is enough (it costs a rolled-back pass over sampled rows).
    """
    if STAGES.index(new) <= STAGES.index(old) or new is Mode.SHADOW:
        return Gate(key, old, new, True, "a step back, or into shadow, needs no evidence")
    needed = STAGES[STAGES.index(new) - 1]
    if needed is Mode.LEGACY:  # legacy -> live or orm skips shadow: no comparison ever ran
        needed = Mode.SHADOW
    if STAGES.index(old) < STAGES.index(needed):
        return Gate(
            key, old, new, False, f"{key} is in {old.value}; move it to {needed.value} first"
        )
    seen = evidence(connection, key, needed, window_minutes)
    if seen.calls < min_calls or seen.mismatches or seen.candidate_errors:
        advice = (
            "fix the mismatches (compat status) and start again"
            if seen.mismatches or seen.candidate_errors
            else "run longer or lower --min-calls"
        )
        return Gate(key, old, new, False, f"{seen.summary(min_calls)}; {advice}", seen)
    if verified is not None and (blocked := verified(key)) is not None:  # (the CLI verifies later)
        return Gate(key, old, new, False, f"compat verify is not ready: {blocked}", seen)
    return Gate(key, old, new, True, seen.summary(min_calls), seen)


def next_step(mode: Mode) -> Mode | None:
    """The stage after ``mode`` (None after orm)."""
    index = STAGES.index(mode)
    return STAGES[index + 1] if index + 1 < len(STAGES) else None
