"""Compat layer: a compared call: the candidate side, then the serving side, then the observation.

The candidate runs first, in a savepoint that is always rolled back: a write
candidate then cannot collide with the row the serving side writes, and a
failing candidate cannot abort the caller's transaction. The serving side's
value is always what the caller gets, and its error always propagates.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

import psycopg2
import psycopg2.errors

from compat.errors import MismatchError
from compat.flags.modes import Mode
from compat.routing.declaration import FacadeFunction, Kind
from compat.routing.sides import run_isolated, run_side, touched_rows
from compat.routing.unit_of_work import UnitOfWork, unwrap
from compat.runtime import Runtime
from compat.shadow.observation import Observation, Outcome, Side

__all__ = ["SERVING", "compared_call"]

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
    candidate = run_isolated(
        spec, _OTHER[serving_side], unit, args, kwargs, runtime.candidate_timeout_ms
    )
    started = time.perf_counter()
    try:
        value = run_side(spec, serving_side, unit, args, kwargs)
    except Exception as error:
        serving = Outcome(serving_side, error=error, seconds=time.perf_counter() - started)
        if not _connection_lost(serving, candidate):
            observation = Observation.of(spec.key, mode, serving, candidate, spec.volatile)
            runtime.dispatcher.submit(observation)
        raise
    seconds = time.perf_counter() - started
    rows = touched_rows(spec, unit, args, kwargs) if spec.kind is Kind.WRITE else None
    serving = Outcome(serving_side, value=value, seconds=seconds, rows=rows)
    observation = Observation.of(spec.key, mode, serving, candidate, spec.volatile)
    runtime.dispatcher.submit(observation)
    if runtime.raise_on_mismatch and not observation.matched:
        raise MismatchError(observation.summary())
    return value


# The server shutting down under the call (57P01 admin, 57P02 crash, 57P03
# cannot connect now) and connection exceptions (class 08).
_SHUTDOWN: Final = (
    psycopg2.errors.AdminShutdown,
    psycopg2.errors.CrashShutdown,
    psycopg2.errors.CannotConnectNow,
)


def _connection_lost(*outcomes: Outcome) -> bool:
    """Whether a side failed because the connection went away (a restart), not by what it did.

    Such a call compared nothing: it is not published, so a server restart is
    never counted as the two paths disagreeing (nor steps a live flag back).
    libpq's own "server closed the connection" is the bare OperationalError.
    """
    for outcome in outcomes:
        error = unwrap(outcome.error) if outcome.error is not None else None
        if (
            isinstance(error, (psycopg2.InterfaceError, *_SHUTDOWN))
            or type(error) is psycopg2.OperationalError
            or (isinstance(error, psycopg2.Error) and (error.pgcode or "").startswith("08"))
        ):
            return True
    return False
