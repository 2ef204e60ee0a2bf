"""Compat layer: route, run, compare, publish — once, for every facade function."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import psycopg2
import sqlalchemy as sa
from sqlalchemy.orm import Session

from compat.errors import MismatchError
from compat.flags.store import Mode
from compat.routing.arguments import Validator
from compat.routing.declaration import REGISTRY, FacadeFunction, Kind, Rows
from compat.routing.unit_of_work import UnitOfWork, in_unit, unwrap
from compat.runtime import get_runtime
from compat.shadow.compare import Difference, compare
from compat.shadow.observation import Observation, Outcome, Path

__all__ = ["differences", "facade", "run_isolated", "run_path"]

P = ParamSpec("P")
R = TypeVar("R")

_SERVING: Mapping[Mode, Path] = {
    Mode.LEGACY: Path.LEGACY,
    Mode.SHADOW: Path.LEGACY,
    Mode.LIVE: Path.ORM,
    Mode.ORM: Path.ORM,
}
_OTHER: Mapping[Path, Path] = {Path.LEGACY: Path.ORM, Path.ORM: Path.LEGACY}

_PositionalCheck = Callable[[tuple[Any, ...]], bool]
_POSITIONAL_CHECKS: dict[str, tuple[FacadeFunction, _PositionalCheck]] = {}
"""Per key: the declaration and its positional check; rebuilt when the declaration changes."""


def _positional_check(spec: FacadeFunction) -> _PositionalCheck:
    """``spec.validate`` for the usual call, positional arguments only, as one small function.

    When every required parameter is given and none is unknown, only the
    values are left to check: the same validators, in the same order. The
    function answers False when the call is not of that shape, and the full
    ``spec.validate`` then runs. It takes about half off the facade's own
    cost in legacy mode.
    """
    found = _POSITIONAL_CHECKS.get(spec.key)
    if found is not None and found[0] is spec:
        return found[1]
    required = len(spec.required)
    key = spec.key
    checks = tuple((name, spec.validators[name]) for name in spec.positional)

    def check(args: tuple[Any, ...]) -> bool:
        if not required <= len(args) <= len(checks):
            return False
        for (name, validator), value in zip(checks, args, strict=False):
            validator(key, name, value)
        return True

    def never(args: tuple[Any, ...]) -> bool:
        return False

    # A keyword-only required parameter cannot be given positionally.
    chosen = check if spec.positional[:required] == spec.required else never
    _POSITIONAL_CHECKS[key] = (spec, chosen)
    return chosen


_SNAPSHOT = "REPEATABLE READ"


def facade(
    legacy: Callable[P, R],
    *,
    kind: Kind,
    touches: tuple[Rows, ...] = (),
    volatile: frozenset[str] = frozenset(),
    arguments: Mapping[str, Validator] | None = None,
    needs_transaction: bool = False,
) -> Callable[[Callable[Concatenate[Session, P], R]], Callable[P, R]]:
    """Declare a facade function: decorate its ORM adapter, get the routed function.

    The adapter has the legacy function's signature with a ``Session`` first
    (mypy checks they agree) and returns the legacy shape. The returned
    function has the legacy signature and is routed by the flag of
    ``<module>.<function>``.
    """

    def declare(orm: Callable[Concatenate[Session, P], R]) -> Callable[P, R]:
        spec = FacadeFunction.declare(
            legacy,
            orm,
            kind=kind,
            touches=touches,
            volatile=volatile,
            arguments=arguments,
            needs_transaction=needs_transaction,
        )
        if spec.key in REGISTRY:
            raise TypeError(f"{spec.key} is declared twice")
        REGISTRY[spec.key] = spec

        key = spec.key

        @functools.wraps(legacy)
        def routed(*args: P.args, **kwargs: P.kwargs) -> R:
            # Looked up per call (a dictionary read) so that a test can swap in
            # a deliberately broken candidate and watch the comparison catch it.
            spec = REGISTRY[key]
            if kwargs or not _positional_check(spec)(args):
                spec.validate(args, kwargs)
            runtime = get_runtime()
            state = runtime.flags.resolve(spec.key)
            serving = _SERVING[state.mode]
            if state.mode in (Mode.LEGACY, Mode.ORM) or (
                state.sample_rate < 1.0 and random.random() >= state.sample_rate
            ):
                result = in_unit(
                    spec.key,
                    lambda unit: run_path(spec, serving, unit, args, kwargs),
                    autocommit=spec.autocommit,
                )
            else:
                # Both paths of a compared read must see one snapshot, or a
                # concurrent commit between them shows up as a false mismatch.
                # Reads cannot fail to serialize, so the caller sees nothing
                # new; writes keep READ COMMITTED, as legacy code ran them.
                result = in_unit(
                    spec.key,
                    lambda unit: _compared(spec, state.mode, unit, args, kwargs),
                    _SNAPSHOT if spec.kind is Kind.READ else None,
                )
            return cast(R, result)

        routed.__compat_key__ = key  # type: ignore[attr-defined]
        return routed

    return declare


def run_path(
    spec: FacadeFunction,
    path: Path,
    unit: UnitOfWork,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> Any:
    """Run one path of ``spec`` in ``unit``; a database error surfaces as psycopg2's class."""
    unit.open()
    if path is Path.LEGACY:
        return spec.legacy(*args, **kwargs)
    with unit.call_session() as session:
        try:
            return spec.orm(session, *args, **kwargs)
        except sa.exc.DBAPIError as error:
            raise unwrap(error) from error


def _compared(
    spec: FacadeFunction,
    mode: Mode,
    unit: UnitOfWork,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> Any:
    runtime = get_runtime()
    serving_path = _SERVING[mode]
    # The candidate runs first, in a savepoint that is always rolled back: a
    # write candidate then cannot collide with the row the serving path
    # writes, and a failing candidate cannot abort the caller's transaction.
    candidate = run_isolated(
        spec, _OTHER[serving_path], unit, args, kwargs, runtime.candidate_timeout_ms
    )
    started = time.perf_counter()
    try:
        value = run_path(spec, serving_path, unit, args, kwargs)
    except Exception as error:
        serving = Outcome(serving_path, error=error, seconds=time.perf_counter() - started)
        _observe(spec, mode, serving, candidate)
        raise
    seconds = time.perf_counter() - started
    rows = _touched(spec, unit, args, kwargs) if spec.kind is Kind.WRITE else None
    serving = Outcome(serving_path, value=value, seconds=seconds, rows=rows)
    observation = _observe(spec, mode, serving, candidate)
    if runtime.raise_on_mismatch and not observation.matched:
        raise MismatchError(observation.summary())
    return value


def run_isolated(
    spec: FacadeFunction,
    path: Path,
    unit: UnitOfWork,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    budget_ms: int = 0,
    read_state: Callable[[UnitOfWork], Any] | None = None,
) -> Outcome:
    """Run one path in a savepoint that is always rolled back; never raise, record instead.

    For a write, the rows it touched are read back inside the savepoint, and
    ``read_state`` (when given) reads whatever else should be compared, such
    as whole tables. With ``budget_ms``, a statement timeout bounds the run
    (undone with the savepoint). The one error raised is a lost connection:
    nothing else can run in the unit then.
    """
    started = time.perf_counter()
    try:
        with unit.rolled_back_savepoint(budget_ms):
            value = run_path(spec, path, unit, args, kwargs)
            seconds = time.perf_counter() - started
            rows = _touched(spec, unit, args, kwargs) if spec.kind is Kind.WRITE else None
            state = None if read_state is None else read_state(unit)
    except Exception as error:  # a candidate's failure is recorded, never raised
        if unit.connection.invalidated:
            # The server ended the connection (a restart, say): the serving path
            # would fail next with a vaguer error, so the caller gets this one.
            raise
        return Outcome(path, error=unwrap(error), seconds=time.perf_counter() - started)
    return Outcome(path, value=value, seconds=seconds, rows=rows, state=state)


def _touched(
    spec: FacadeFunction, unit: UnitOfWork, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> list[list[dict[str, Any]]]:
    """The rows each declared ``Rows`` names, as dicts, read on the unit's connection.

    Read with a plain psycopg2 cursor: SQLAlchemy's execution machinery cost
    more CPU than the read itself, twice per compared write. Both paths' rows
    are read alike, so their types agree.
    """
    named = spec.arguments(args, kwargs)
    raw = unit.dbapi_connection
    found = []
    with raw.cursor() as cursor:
        for rows in spec.touches:
            # Always a mapping: the compiled SQL escapes a literal % as %%.
            parameters = {"value": named[rows.argument]} if rows.argument else {}
            try:
                cursor.execute(rows.sql(), parameters)
            except psycopg2.Error as error:
                # (SQLAlchemy's typing knows no psycopg2 classes, hence Any.)
                dialect: Any = unit.connection.dialect
                if raw.closed or dialect.is_disconnect(error, raw, cursor):
                    # Lost: tell SQLAlchemy, as its own execution would have, so that the
                    # pool discards the connection and the caller hears of it.
                    unit.connection.invalidate(error)
                raise
            names = [column.name for column in cursor.description or ()]
            found.append([dict(zip(names, row, strict=True)) for row in cursor.fetchall()])
    return found


def differences(
    legacy: Outcome, orm: Outcome, volatile: frozenset[str] = frozenset()
) -> tuple[Difference, ...]:
    """Where the two outcomes disagree: the same error (class and SQLSTATE), or equal values."""
    if legacy.error is not None or orm.error is not None:
        if (
            legacy.error is not None
            and orm.error is not None
            and type(legacy.error) is type(orm.error)
            and getattr(legacy.error, "pgcode", None) == getattr(orm.error, "pgcode", None)
        ):
            return ()
        return (
            Difference(
                "<raised>",
                legacy.error_text or legacy.value,
                orm.error_text or orm.value,
                "one path raised, or they raised differently",
            ),
        )
    return compare(
        {"result": legacy.value, "rows": legacy.rows, "state": legacy.state},
        {"result": orm.value, "rows": orm.rows, "state": orm.state},
        ignore=volatile,
    )


def _observe(spec: FacadeFunction, mode: Mode, serving: Outcome, candidate: Outcome) -> Observation:
    legacy, orm = (serving, candidate) if serving.path is Path.LEGACY else (candidate, serving)
    observation = Observation(
        key=spec.key,
        mode=mode,
        serving=serving,
        candidate=candidate,
        differences=differences(legacy, orm, spec.volatile),
    )
    get_runtime().dispatcher.submit(observation)
    return observation
