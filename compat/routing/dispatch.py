"""Compat layer: the facade decorator, and one facade call from top to bottom.

A call validates its arguments, resolves its function's mode (and, when the
function is ramped, whether this call is inside the ramp), and either
serves from one side (``legacy``, ``orm``, or a compared mode's unsampled
call) or runs the compared call (compat.routing.compared), which also runs
the candidate side and publishes the observation.
"""

from __future__ import annotations

import functools
import random
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Concatenate, Final, ParamSpec, TypeVar, cast

from sqlalchemy.orm import Session

from compat.cache.region import Change
from compat.errors import MismatchError
from compat.flags.modes import Mode
from compat.routing.arguments import Validator
from compat.routing.compared import SERVING, compared_call, compared_read
from compat.routing.declaration import (
    REGISTRY,
    STICKY,
    Calls,
    FacadeFunction,
    Kind,
    Shape,
    TouchedRows,
    positional_check,
)
from compat.routing.sides import run_side
from compat.routing.unit_of_work import (
    DATABASE_ERRORS,
    UnitOfWork,
    current_unit,
    in_unit,
    legacy_alone,
    snapshot_unit,
)
from compat.runtime import Runtime, get_runtime
from compat.shadow.metrics import meter
from compat.shadow.observation import Side

__all__ = ["facade"]

P = ParamSpec("P")
R = TypeVar("R")

_SNAPSHOT: Final = "REPEATABLE READ"
_UNCOMPARED: Final = frozenset({Mode.LEGACY, Mode.ORM})
_STAGE_BEFORE: Final = {
    Mode.LEGACY: Mode.LEGACY,
    Mode.SHADOW: Mode.LEGACY,
    Mode.LIVE: Mode.SHADOW,
    Mode.ORM: Mode.LIVE,
}
"""What a call outside a ramp gets: the stage before the ramped mode."""
_BUCKETS: Final = 10_000
# Bulk maintenance may delete too (delete_abandoned_sessions); an ON DELETE CASCADE follows.
_MAY_DELETE: Final = frozenset({Shape.ROW_DELETE, Shape.BULK_WRITE})


def facade(
    legacy: Callable[P, R],
    *,
    shape: Shape,
    touches: tuple[TouchedRows, ...] = (),
    reads: tuple[str, ...] = (),
    row: TouchedRows | None = None,
    calls: Calls | None = None,
    volatile: frozenset[str] = frozenset(),
    arguments: Mapping[str, Validator] | None = None,
    needs_transaction: bool = False,
) -> Callable[[Callable[Concatenate[Session, P], R]], Callable[P, R]]:
    """Declare a facade function: decorate its ORM adapter, get the routed function.

    The adapter has the legacy function's signature with a ``Session`` first
    (mypy checks they agree) and returns the legacy shape. The returned
    function has the legacy signature and is routed by the flag of
    ``<module>.<function>``. ``shape`` says what the call does to the tables
    (and so its kind), ``touches`` which rows a write leaves to compare,
    ``reads`` which tables a read's result comes from (what may invalidate it
    when it is cached), ``row`` for a point read the row it reads (so that only
    a change to that row drops its cached results), ``calls`` how `compat
    verify` and the bench call it, ``arguments`` overrides a rule derived
    from the legacy signature.
    """

    def declare(orm: Callable[Concatenate[Session, P], R]) -> Callable[P, R]:
        key = f"{legacy.__module__.rpartition('.')[2]}.{legacy.__name__}"

        @functools.wraps(legacy)
        def routed(*args: P.args, **kwargs: P.kwargs) -> R:
            # Looked up per call (a dictionary read) so that a test can swap in
            # a deliberately broken candidate and watch the comparison catch it.
            return cast(R, call(REGISTRY[key], args, kwargs))

        spec = FacadeFunction.declare(
            legacy,
            orm,
            routed,
            shape=shape,
            touches=touches,
            reads=reads,
            row=row,
            volatile=volatile,
            calls=calls,
            arguments=arguments,
            needs_transaction=needs_transaction,
        )
        if key in REGISTRY:
            raise TypeError(f"{key} is declared twice")
        REGISTRY[key] = spec
        return routed

    return declare


def call(spec: FacadeFunction, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """One facade call: validate, consult the cache, resolve the mode, serve (and compare)."""
    # Bad input is refused before anything else, the database included.
    if kwargs or not positional_check(spec)(args):
        spec.validate(args, kwargs)
    runtime = get_runtime()
    cache = runtime.cache
    if not cache.enabled:
        return _routed(spec, runtime, args, kwargs)
    if spec.kind is Kind.READ:
        ttl = cache.ttl_of(spec.key)
        if ttl is None:
            return _routed(spec, runtime, args, kwargs)
        unit = current_unit()
        if unit is not None and not unit.reads_cache:
            cache.stats.bypassed += 1
            return _routed(spec, runtime, args, kwargs)
        named = spec.arguments(args, kwargs)
        row = spec.row
        return cache.read(
            spec.key,
            spec.reads,
            named,
            ttl,
            lambda: _routed(spec, runtime, args, kwargs),
            # Inside a unit nothing is stored: it may yet write, or hold what others did not commit.
            store=unit is None,
            row=None
            if row is None
            else Change(row.table, row.column, named.get(row.argument or "")),
        )
    changes = _changes(spec, args, kwargs)
    unit = current_unit()
    if unit is not None:
        # Marked first: a read later in the unit must not be served from the cache even when
        # this write failed half-way (it may have changed rows before failing). The unit
        # tells the cache when it ends.
        unit.wrote(changes)
        return _routed(spec, runtime, args, kwargs)
    try:
        return _routed(spec, runtime, args, kwargs)
    finally:
        # Committed (or rolled back) by now: this process drops what it may have changed.
        cache.written(changes)


def _changes(
    spec: FacadeFunction, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> list[Change]:
    """What a write may change, as its declared touched rows name it (no column: the table)."""
    named = spec.arguments(args, kwargs)
    deletes = spec.shape in _MAY_DELETE
    return [
        Change(
            rows.table, rows.column, named.get(rows.argument) if rows.argument else None, deletes
        )
        for rows in spec.touches
    ]


def _routed(
    spec: FacadeFunction, runtime: Runtime, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Any:
    """Resolve the mode and serve: one side, or the compared call."""
    state = runtime.flags.resolve(spec.key)
    mode = state.mode
    if state.percent < 100.0 and not _in_ramp(spec, state.percent, args, kwargs):
        mode = _STAGE_BEFORE[mode]
    if mode in _UNCOMPARED or (state.sample_rate < 1.0 and random.random() >= state.sample_rate):
        side = SERVING[mode]
        metered = meter(spec.key, mode, side)
        started = time.perf_counter()
        raised: BaseException | None = None
        try:
            if side is Side.LEGACY and current_unit() is None:
                return legacy_alone(
                    lambda: spec.legacy(*args, **kwargs),
                    autocommit=spec.autocommit,
                    retry_lost=spec.kind is Kind.READ,
                )
            return in_unit(
                spec.key,
                lambda unit: run_side(spec, side, unit, args, kwargs),
                autocommit=spec.autocommit,
                retry_lost=spec.kind is Kind.READ,
                lend=False,
            )
        except BaseException as error:
            metered.errors.inc()
            raised = error
            raise
        finally:
            metered.calls.inc()
            metered.seconds.observe(time.perf_counter() - started)
            runtime.served.count(spec.key, mode, side, raised)
    # Counted here, timed from the observation (each side's own time, not the pair's).
    metered = meter(spec.key, mode, SERVING[mode])
    raised = None
    try:
        # Both sides of a compared read must see one snapshot, or a concurrent
        # commit between them shows up as a false mismatch. Reads cannot fail to
        # serialize, so the caller sees nothing new; writes keep READ COMMITTED,
        # as legacy code ran them. A compared read of its own needs no savepoint
        # (compared_read); one that streams through a named cursor needs
        # psycopg2's own transaction.
        if spec.autocommit and current_unit() is None:
            return _compared_read_alone(spec, mode, runtime, args, kwargs)
        return in_unit(
            spec.key,
            lambda unit: compared_call(spec, mode, runtime, unit, args, kwargs),
            _SNAPSHOT if spec.kind is Kind.READ else None,
        )
    except BaseException as error:
        metered.errors.inc()
        # A test's raise_on_mismatch: the serving side itself succeeded.
        raised = None if isinstance(error, MismatchError) else error
        raise
    finally:
        metered.calls.inc()
        runtime.served.count(spec.key, mode, SERVING[mode], raised)


def _in_ramp(
    spec: FacadeFunction, percent: float, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> bool:
    """Whether this call is inside a ``percent`` ramp: sticky by session uuid, else at random.

    A session's bucket is a hash of its uuid (any spelling of it gives the
    same one), so it stays on one side while the percentage stands, and a
    higher percentage only adds sessions. The bucket does not depend on the
    function: one session is in or out of every ramp at the same percentage.
    """
    index = spec.sticky
    value = None
    if index is not None:
        value = args[index] if index < len(args) else kwargs.get(STICKY)
    if isinstance(value, str):
        bucket = zlib.crc32(uuid.UUID(value).bytes) % _BUCKETS
    else:
        bucket = random.randrange(_BUCKETS)
    return bucket < percent * (_BUCKETS / 100)


def _compared_read_alone(
    spec: FacadeFunction,
    mode: Mode,
    runtime: Runtime,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> Any:
    """A compared read outside a unit: a snapshot of its own, retried once on a lost connection."""
    unit: UnitOfWork | None = None
    try:
        with snapshot_unit(runtime.candidate_timeout_ms) as unit:
            return unit.run(
                spec.key, lambda unit: compared_read(spec, mode, runtime, unit, args, kwargs)
            )
    except DATABASE_ERRORS:
        if unit is None or not unit.was_lost:
            raise
    with snapshot_unit(runtime.candidate_timeout_ms) as unit:
        return unit.run(
            spec.key, lambda unit: compared_read(spec, mode, runtime, unit, args, kwargs)
        )
