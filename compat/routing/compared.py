"""Compat layer: a compared call: the candidate side, then the serving side, then the observation.

The candidate runs first, in a savepoint that is always rolled back: a write
candidate then cannot collide with the row the serving side writes, and a
failing candidate cannot abort the caller's transaction. A write first locks
the rows it touches, so that no other writer can change them between the
candidate and the serving side. The serving side's
value is always what the caller gets, and its error always propagates.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

import psycopg2.errors

from compat.errors import MismatchError
from compat.flags.modes import Mode
from compat.routing.declaration import FacadeFunction, Kind
from compat.routing.sides import row_locks, run_isolated, run_side, touched_rows
from compat.routing.unit_of_work import UnitOfWork, end_snapshot, unwrap
from compat.runtime import Runtime
from compat.shadow.observation import Observation, Outcome, Side, Verdict

__all__ = ["SERVING", "compared_call", "compared_read"]

SERVING: Final[Mapping[Mode, Side]] = {
    Mode.LEGACY: Side.LEGACY,
    Mode.SHADOW: Side.LEGACY,
    Mode.LIVE: Side.ORM,
    Mode.ORM: Side.ORM,
}
"""The side that serves the caller in each mode."""
_OTHER: Final[Mapping[Side, Side]] = {Side.LEGACY: Side.ORM, Side.ORM: Side.LEGACY}


def compared_call(
    spec: FacadeFunction,
    mode: Mode,
    runtime: Runtime,
    unit: UnitOfWork,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> Any:
    """Run the candidate and the serving side in ``unit``, publish what both did, serve."""
    serving_side = SERVING[mode]
    locks = row_locks(spec, unit, args, kwargs) if spec.kind is Kind.WRITE else ""
    candidate = run_isolated(
        spec, _OTHER[serving_side], unit, args, kwargs, runtime.candidate_timeout_ms, first=locks
    )
    started = time.perf_counter()
    try:
        value = run_side(spec, serving_side, unit, args, kwargs)
    except Exception as error:
        serving = Outcome(serving_side, error=error, seconds=time.perf_counter() - started)
        runtime.dispatcher.submit(Observation.of(spec.key, mode, serving, candidate, spec.volatile))
        raise
    seconds = time.perf_counter() - started
    rows = touched_rows(spec, unit, args, kwargs) if spec.kind is Kind.WRITE else None
    serving = Outcome(serving_side, value=value, seconds=seconds, rows=rows)
    observation = Observation.of(spec.key, mode, serving, candidate, spec.volatile)
    runtime.dispatcher.submit(observation)
    # A fault (a side lost its connection) compared nothing: never a mismatch.
    if runtime.raise_on_mismatch and observation.verdict is Verdict.MISMATCH:
        raise MismatchError(observation.summary())
    return value


def compared_read(
    spec: FacadeFunction,
    mode: Mode,
    runtime: Runtime,
    unit: UnitOfWork,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> Any:
    """A compared read in a ``snapshot_unit`` of its own: the candidate, then the serving side.

    No savepoint: the transaction is this call's alone and is rolled back. A
    failed candidate has aborted it, so the snapshot ends there and the
    serving side runs in autocommit. The candidate's statement timeout also
    binds the serving statement; a serving read it cancelled runs again,
    unbounded, outside the snapshot, so the caller never sees the budget.
    """
    serving_side = SERVING[mode]
    candidate_side = _OTHER[serving_side]
    started = time.perf_counter()
    try:
        candidate = Outcome(
            candidate_side,
            value=run_side(spec, candidate_side, unit, args, kwargs),
            seconds=time.perf_counter() - started,
        )
    except Exception as error:  # a candidate's failure is recorded, never raised
        if unit.lost:
            raise
        candidate = Outcome(
            candidate_side, error=unwrap(error), seconds=time.perf_counter() - started
        )
        end_snapshot(unit)
    started = time.perf_counter()
    try:
        try:
            value = run_side(spec, serving_side, unit, args, kwargs)
        except psycopg2.errors.QueryCanceled:
            if not runtime.candidate_timeout_ms or unit.lost:
                raise
            end_snapshot(unit)
            value = run_side(spec, serving_side, unit, args, kwargs)
    except Exception as error:
        serving = Outcome(serving_side, error=error, seconds=time.perf_counter() - started)
        runtime.dispatcher.submit(Observation.of(spec.key, mode, serving, candidate, spec.volatile))
        raise
    serving = Outcome(serving_side, value=value, seconds=time.perf_counter() - started)
    observation = Observation.of(spec.key, mode, serving, candidate, spec.volatile)
    runtime.dispatcher.submit(observation)
    if runtime.raise_on_mismatch and not observation.matched:
        raise MismatchError(observation.summary())
    return value
