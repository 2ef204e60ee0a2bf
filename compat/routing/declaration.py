"""Compat layer: the declared facade functions, each with its key, kind, checks and touched rows."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.psycopg2 import dialect as psycopg2_dialect

from compat.routing.arguments import ARGUMENTS, Validator
from orm.models import Base

__all__ = ["REGISTRY", "FacadeFunction", "Kind", "Rows"]


class Kind(StrEnum):
    """Reads are compared by value; writes also by the rows they leave behind."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class Rows:
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


# The comment tells a DBA looking at pg_stat_activity (and the tests) what it is.
_MARKER = "/* compat: touched rows */"


@functools.cache
def _statement(rows: Rows) -> sa.Select[Any]:
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
def _sql(rows: Rows) -> str:
    return str(_statement(rows).compile(dialect=psycopg2_dialect()))  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class FacadeFunction:
    """One facade function: the legacy function, its ORM adapter, and how to compare them."""

    key: str
    kind: Kind
    legacy: Callable[..., Any]
    orm: Callable[..., Any]
    """The ORM adapter: the legacy signature with a ``Session`` first."""
    touches: tuple[Rows, ...] = ()
    volatile: frozenset[str] = frozenset()
    """Result and row fields that legitimately differ between two runs (a sequence id)."""
    validators: Mapping[str, Validator] = field(default_factory=dict)
    positional: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    """Parameters without a default: a call missing one is refused before any SQL."""
    autocommit: bool = False
    """A read that needs no transaction of its own: called outside a unit of work, it runs
    in autocommit, without the BEGIN and COMMIT round trips (each statement is atomic, and
    at READ COMMITTED each takes its own snapshot anyway). Every read but one that keeps a
    server-side cursor open across fetches."""

    @classmethod
    def declare(
        cls,
        legacy: Callable[..., Any],
        orm: Callable[..., Any],
        *,
        kind: Kind,
        touches: tuple[Rows, ...] = (),
        volatile: frozenset[str] = frozenset(),
        arguments: Mapping[str, Validator] | None = None,
        needs_transaction: bool = False,
    ) -> FacadeFunction:
        """Build the declaration, checking that every parameter of ``legacy`` has a validator.

        ``needs_transaction`` marks a read that must run in a transaction even
        on its own (it streams through a server-side cursor); writes always do.
        """
        key = f"{legacy.__module__.rpartition('.')[2]}.{legacy.__name__}"
        parameters = inspect.signature(legacy).parameters
        overrides = arguments or {}
        missing = [name for name in parameters if name not in overrides and name not in ARGUMENTS]
        if missing:
            raise TypeError(f"{key}: no validator for parameters {missing}")
        orm_parameters = list(inspect.signature(orm).parameters)[1:]
        if orm_parameters != list(parameters):
            raise TypeError(
                f"{key}: the ORM adapter takes {orm_parameters}, legacy {list(parameters)}"
            )
        for rows in touches:
            if rows.argument is not None and rows.argument not in parameters:
                raise TypeError(f"{key}: touched rows name unknown argument {rows.argument!r}")
        return cls(
            key=key,
            kind=kind,
            legacy=legacy,
            orm=orm,
            touches=touches,
            volatile=volatile,
            validators={name: overrides.get(name) or ARGUMENTS[name] for name in parameters},
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
            autocommit=kind is Kind.READ and not needs_transaction,
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
