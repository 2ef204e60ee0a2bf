"""Compat layer: the declared facade functions, each with its key, kind, checks and touched rows."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.psycopg2 import dialect as psycopg2_dialect

from compat.routing.arguments import Validator, rules_for
from orm.models import Base

__all__ = ["REGISTRY", "FacadeFunction", "Kind", "Shape", "TouchedRows", "positional_check"]


class Kind(StrEnum):
    """Reads are compared by value; writes also by the rows they leave behind."""

    READ = "read"
    WRITE = "write"


class Shape(StrEnum):
    """What a call does to the tables: it decides the kind, how verify and the bench call it.

    Verify calls a function that reads or rewrites a whole table only a few
    times (``whole_table``); the bench leaves out the deletes, which would
    empty the rows the next calls need (``benchmarked``).
    """

    POINT_READ = "point read"
    """One row or one value by its key."""
    LIST = "list"
    """The rows that share a key (a session's uploads, the sessions of an email)."""
    PAGE = "page"
    """A page of a table, filtered and ordered."""
    AGGREGATE = "aggregate"
    """A count or sum over a table."""
    SCAN = "scan"
    """Every row of a table."""
    ROW_WRITE = "single-row write"
    """Inserts or updates one row."""
    ROW_DELETE = "single-row delete"
    """Deletes one row (and what cascades from it)."""
    BULK_WRITE = "bulk write"
    """Rewrites or deletes many rows of a table (maintenance)."""

    @property
    def kind(self) -> Kind:
        return Kind.WRITE if self in _WRITES else Kind.READ

    @property
    def whole_table(self) -> bool:
        return self in (Shape.AGGREGATE, Shape.SCAN, Shape.BULK_WRITE)

    @property
    def benchmarked(self) -> bool:
        return self not in (Shape.ROW_DELETE, Shape.BULK_WRITE)

    @property
    def weight(self) -> float:
        """Calls per bench batch relative to a point read: heavy calls get fewer."""
        return _WEIGHTS.get(self, 1.0)


_WRITES: Final = frozenset({Shape.ROW_WRITE, Shape.ROW_DELETE, Shape.BULK_WRITE})
_WEIGHTS: Final = {Shape.PAGE: 0.5, Shape.AGGREGATE: 0.25, Shape.LIST: 0.5, Shape.SCAN: 0.1}


@dataclass(frozen=True, slots=True)
class TouchedRows:
    """The rows a write touches, read back after it ran to compare the two paths.

    ``table`` rows whose ``column`` equals the call's ``argument``; with no
    column, the whole table as a count and a digest (for bulk maintenance
    functions, which scan the table anyway).
    """

    table: str
    column: str | None = None
    argument: str | None = None
    order_by: str = "uuid"

    def sql(self) -> str:
        """The SELECT that reads these rows back, as psycopg2 SQL with ``%(value)s``.

        Its identifiers are declared, never caller input.
        """
        return _sql(self)

    def lock_sql(self) -> str | None:
        """``SELECT ... FOR UPDATE`` of these rows (None for a whole table, which is not locked).

        A compared write takes these locks before its candidate runs: the
        candidate's own row locks go with its rolled-back savepoint, and
        without them another writer could commit between the candidate and
        the serving side, which would then see another row (a false mismatch).
        """
        return _lock_sql(self)


# The comment tells a DBA looking at pg_stat_activity (and the tests) what it is.
_MARKER = "/* compat: touched rows */"


@functools.cache
def _statement(rows: TouchedRows) -> sa.Select[Any]:
    table = sa.table(rows.table)
    if rows.column is None:
        row_text: sa.ColumnElement[str] = sa.literal_column(f"{rows.table}::text")
        in_order: sa.ColumnElement[str] = sa.literal_column(f"'|' ORDER BY {rows.order_by}")
        empty: sa.ColumnElement[str] = sa.literal_column("''")
        digest = sa.func.md5(sa.func.coalesce(sa.func.string_agg(row_text, in_order), empty))
        return (
            sa.select(sa.func.count().label("rows"), digest.label("digest"))
            .prefix_with(_MARKER)
            .select_from(table)
        )
    # Every column by name from the mapped table rather than ``*``: SQLAlchemy
    # then caches the result's metadata instead of building it from the
    # cursor on every call (a third of a compared write's CPU).
    mapped = Base.metadata.tables[rows.table]
    return (
        sa.select(mapped)
        .prefix_with(_MARKER)
        .where(mapped.c[rows.column] == sa.bindparam("value"))
        .order_by(mapped.c[rows.order_by])
    )


@functools.cache
def _lock_sql(rows: TouchedRows) -> str | None:
    if rows.column is None:
        return None
    mapped = Base.metadata.tables[rows.table]
    column = mapped.c[rows.column]  # declared names, looked up in the mapped table
    where = f"{column.name} = %(value)s FOR UPDATE"
    # Declared identifiers, never caller input; one line, as a DBA reads it.
    return f"SELECT {_MARKER} 1 FROM {mapped.name} WHERE {where}"  # noqa: S608


@functools.cache
def _sql(rows: TouchedRows) -> str:
    return str(_statement(rows).compile(dialect=psycopg2_dialect()))  # type: ignore[no-untyped-call]


STICKY: Final = "session_uuid"
"""The argument a percentage ramp is sticky by."""

Calls = Callable[..., Sequence[Any]]
"""How `compat verify` and the bench call a function: ``calls(samples, n, rng)`` (see
compat.verify.calls, where the builders are)."""


@dataclass(frozen=True, slots=True)
class FacadeFunction:
    """One facade function: the legacy function, its ORM adapter, and how to check, compare, call.

    Everything that needs to know the facade functions reads the REGISTRY of
    these: routing, validation, the flag store, `compat verify`, the bench
    and the parity suite's coverage test.
    """

    key: str
    shape: Shape
    legacy: Callable[..., Any]
    orm: Callable[..., Any]
    """The ORM adapter: the legacy signature with a ``Session`` first."""
    routed: Callable[..., Any]
    """The facade function itself (what application code calls)."""
    touches: tuple[TouchedRows, ...] = ()
    reads: tuple[str, ...] = ()
    """The tables a read's result comes from: a change to any of them invalidates its cached
    results (compat.cache). A read that names none cannot be cached."""
    row: TouchedRows | None = None
    """A point read of one row by its key: its cached results are dropped by a change to that
    row (or a bulk change of the table), not by a change to any other row."""
    volatile: frozenset[str] = frozenset()
    """Result and row fields that legitimately differ between two runs (a sequence id)."""
    calls: Calls | None = None
    validators: Mapping[str, Validator] = field(default_factory=dict)
    positional: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    """Parameters without a default: a call missing one is refused before any SQL."""
    sticky: int | None = None
    """Where the call's session uuid is (its position; by name ``session_uuid``): a ramp
    chooses by it, so one session always sees one side; None: chosen per call."""
    autocommit: bool = False
    """A read that needs no transaction of its own: called outside a unit of work, it runs
    in autocommit, without the BEGIN and COMMIT round trips (each statement is atomic, and
    at READ COMMITTED each takes its own snapshot anyway). Every read but one that keeps a
    server-side cursor open across fetches."""

    @property
    def kind(self) -> Kind:
        return self.shape.kind

    @classmethod
    def declare(
        cls,
        legacy: Callable[..., Any],
        orm: Callable[..., Any],
        routed: Callable[..., Any],
        *,
        shape: Shape,
        touches: tuple[TouchedRows, ...] = (),
        reads: tuple[str, ...] = (),
        row: TouchedRows | None = None,
        volatile: frozenset[str] = frozenset(),
        calls: Calls | None = None,
        arguments: Mapping[str, Validator] | None = None,
        needs_transaction: bool = False,
    ) -> FacadeFunction:
        """Build the declaration; its argument rules come from the legacy signature.

        ``arguments`` overrides the derived rule of a parameter (see
        compat.routing.arguments.rules_for). ``needs_transaction`` marks a
        read that must run in a transaction even on its own (it streams
        through a server-side cursor); writes always do.
        """
        key = f"{legacy.__module__.rpartition('.')[2]}.{legacy.__name__}"
        parameters = inspect.signature(legacy).parameters
        orm_parameters = list(inspect.signature(orm).parameters)[1:]
        if orm_parameters != list(parameters):
            raise TypeError(
                f"{key}: the ORM adapter takes {orm_parameters}, legacy {list(parameters)}"
            )
        for rows in touches:
            if rows.argument is not None and rows.argument not in parameters:
                raise TypeError(f"{key}: touched rows name unknown argument {rows.argument!r}")
        if reads and shape.kind is not Kind.READ:
            raise TypeError(f"{key}: only a read declares reads=; a write declares touches=")
        unknown = [table for table in reads if table not in Base.metadata.tables]
        if unknown:
            raise TypeError(f"{key}: reads= names tables that are not mapped: {unknown}")
        if row is not None and (
            reads != (row.table,) or row.column is None or row.argument not in parameters
        ):
            raise TypeError(
                f"{key}: row= names one row of the one table it reads, by an argument: "
                f"reads={reads!r}, row={row!r}"
            )
        tables = tuple(dict.fromkeys(rows.table for rows in touches))
        return cls(
            key=key,
            shape=shape,
            legacy=legacy,
            orm=orm,
            routed=routed,
            touches=touches,
            reads=reads,
            row=row,
            volatile=volatile,
            calls=calls,
            validators=rules_for(legacy, tables, arguments or {}),
            positional=tuple(
                name
                for name, parameter in parameters.items()
                if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
            ),
            required=tuple(
                name
                for name, parameter in parameters.items()
                if parameter.default is inspect.Parameter.empty
            ),
            sticky=list(parameters).index(STICKY) if STICKY in parameters else None,
            autocommit=shape.kind is Kind.READ and not needs_transaction,
        )

    def validate(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Check every argument given, before any SQL; raise InvalidArgument or TypeError."""
        if len(args) > len(self.positional):
            raise TypeError(
                f"{self.key}() takes {len(self.positional)} positional arguments "
                f"but {len(args)} were given"
            )
        validators = self.validators
        for name, value in zip(self.positional, args, strict=False):
            validators[name](self.key, name, value)
        for name, value in kwargs.items():
            check = validators.get(name)
            if check is None:
                raise TypeError(f"{self.key}() got an unexpected keyword argument {name!r}")
            check(self.key, name, value)
        twice = [name for name in self.positional[: len(args)] if name in kwargs]
        if twice:
            raise TypeError(f"{self.key}() got multiple values for arguments {twice}")
        named = {*self.positional[: len(args)], *kwargs}
        missing = [name for name in self.required if name not in named]
        if missing:
            raise TypeError(f"{self.key}() missing required arguments {missing}")

    def arguments(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The call's arguments by name (defaults left out)."""
        return {**dict(zip(self.positional, args, strict=False)), **kwargs}


REGISTRY: dict[str, FacadeFunction] = {}
"""Every declared facade function by key (``user_sessions.get_session``)."""


_PositionalCheck = Callable[[tuple[Any, ...]], bool]
_POSITIONAL_CHECKS: dict[str, tuple[FacadeFunction, _PositionalCheck]] = {}
"""Per key: the declaration and its positional check; rebuilt when the declaration changes."""


def positional_check(spec: FacadeFunction) -> _PositionalCheck:
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
