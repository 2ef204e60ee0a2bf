"""ORM side: BaseRepository's query builder: filters, ordering, keyset pages, cached statements.

Values never become part of a statement: each statement is built once per
shape (which columns, which operators, which ordering) with bound parameters,
kept in a small cache, and so also hits SQLAlchemy's compiled cache.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, get_args

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Executable,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import QueryableAttribute

from orm.repositories.clock import now
from orm.repositories.mapping import PK_PARAM, ColumnInfo, ModelInfo

__all__ = [
    "FILTER_OPS",
    "Filter",
    "FilterOp",
    "Order",
    "OrderSpec",
    "Shape",
    "SortKey",
    "insert_statement",
    "select_statement",
    "update_statement",
]

FilterOp: TypeAlias = Literal["eq", "ne", "lt", "le", "gt", "ge", "is_null", "in"]
FILTER_OPS: Final[tuple[FilterOp, ...]] = get_args(FilterOp)

#: The values of a row's ordering columns, primary key last: what ``after=`` takes.
SortKey: TypeAlias = tuple[object, ...]

_Comparison = Callable[[QueryableAttribute[Any], BindParameter[Any]], ColumnElement[bool]]
_COMPARISONS: Final[Mapping[str, _Comparison]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


@dataclass(frozen=True, slots=True)
class Filter:
    """One condition on a mapped column: ``Filter("email", "eq", "a@example.com")``.

    ``is_null`` takes True (IS NULL) or False (IS NOT NULL); ``in`` takes an
    iterable of values (kept as a tuple); every other operator takes one
    value that is not None (a comparison with NULL is never true: use
    ``is_null``).
    """

    column: str
    op: FilterOp = "eq"
    value: object = None

    def __post_init__(self) -> None:
        if self.op not in FILTER_OPS:
            raise ValueError(
                f"Filter on {self.column!r}: unknown operator {self.op!r}; "
                f"valid operators are {', '.join(FILTER_OPS)}"
            )
        if self.op == "is_null":
            if not isinstance(self.value, bool):
                raise ValueError(
                    f"Filter on {self.column!r}: is_null takes True (IS NULL) or False "
                    f"(IS NOT NULL), not {type(self.value).__name__}"
                )
        elif self.op == "in":
            if isinstance(self.value, str | bytes) or not isinstance(self.value, Iterable):
                raise ValueError(
                    f"Filter on {self.column!r}: in takes an iterable of values, "
                    f"not {type(self.value).__name__}"
                )
            object.__setattr__(self, "value", tuple(self.value))
        elif self.value is None:
            raise ValueError(
                f"Filter on {self.column!r}: {self.op} None is never true; "
                f"use Filter({self.column!r}, 'is_null', True)"
            )


@dataclass(frozen=True, slots=True)
class Order:
    """Sort by one mapped column; NULLs always sort last."""

    column: str
    descending: bool = False

    @classmethod
    def parse(cls, spec: str) -> Order:
        """``"name"`` sorts ascending, ``"-name"`` descending."""
        if spec.startswith("-"):
            return cls(spec[1:], descending=True)
        return cls(spec)


OrderSpec: TypeAlias = Order | str


@dataclass(frozen=True, slots=True)
class Shape:
    """A list() or count() call without its values: what its statement depends on.

    ``filters`` holds (column, operator, IS NULL?) and ``order`` (column,
    descending?) with the primary key last; ``after_nulls`` says which keyset
    values are NULL (None: no keyset).
    """

    count: bool
    filters: tuple[tuple[str, FilterOp, bool], ...]
    order: tuple[tuple[str, bool], ...]
    limit: bool
    offset: bool
    after_nulls: tuple[bool, ...] | None


@functools.lru_cache(maxsize=512)
def select_statement(model: ModelInfo, shape: Shape) -> Executable:
    """The SELECT for this shape; filter i binds f{i}, keyset value i binds k{i}."""
    conditions = [*model.live]
    for i, (key, op, is_null) in enumerate(shape.filters):
        attribute = model.columns[key].attribute
        if op == "is_null":
            conditions.append(attribute.is_(None) if is_null else attribute.is_not(None))
        elif op == "in":
            conditions.append(attribute.in_(bindparam(f"f{i}", expanding=True)))
        else:
            conditions.append(_COMPARISONS[op](attribute, bindparam(f"f{i}", type_=attribute.type)))
    if shape.count:
        return select(func.count()).select_from(model.model).where(*conditions)
    keys = [(model.columns[key], descending) for key, descending in shape.order]
    if shape.after_nulls is not None:
        conditions.append(_after(keys, shape.after_nulls))
    statement = (
        select(model.model)
        .where(*conditions)
        .order_by(*(column.ordering(descending) for column, descending in keys))
    )
    if shape.limit:
        statement = statement.limit(bindparam("limit"))
    if shape.offset:
        statement = statement.offset(bindparam("offset"))
    return statement


def _after(keys: Sequence[tuple[ColumnInfo, bool]], nulls: Sequence[bool]) -> ColumnElement[bool]:
    """Rows that sort after the key bound as k0, k1, ... (NULLs last, as ORDER BY puts them)."""
    params = [bindparam(f"k{i}", type_=column.attribute.type) for i, (column, _) in enumerate(keys)]
    directions = {descending for _, descending in keys}
    if len(directions) == 1 and not any(column.nullable for column, _ in keys):
        # One direction and no NULLs: a row comparison, which an index can serve.
        row = tuple_(*(column.attribute for column, _ in keys))
        bound = tuple_(*params)
        return row < bound if directions == {True} else row > bound
    later: list[ColumnElement[bool]] = []
    same: list[ColumnElement[bool]] = []
    for (column, descending), param, is_null in zip(keys, params, nulls, strict=True):
        attribute = column.attribute
        if is_null:
            # Nothing but NULLs sorts after a NULL.
            same.append(attribute.is_(None))
            continue
        beyond = attribute < param if descending else attribute > param
        if column.nullable:
            beyond = or_(beyond, attribute.is_(None))
        later.append(and_(*same, beyond))
        same.append(attribute == param)
    return or_(*later)


@functools.lru_cache(maxsize=256)
def insert_statement(model: ModelInfo, keys: tuple[str, ...]) -> Executable:
    """INSERT these columns (bound as set_<column>) RETURNING the row."""
    values = {key: bindparam(f"set_{key}", type_=model.columns[key].attribute.type) for key in keys}
    return insert(model.model).values(values).returning(model.model)


@functools.lru_cache(maxsize=256)
def update_statement(model: ModelInfo, keys: tuple[str, ...]) -> Executable:
    """UPDATE these columns (set_<column>) and updated_at of the live row where_pk, RETURNING it."""
    values: dict[str, Any] = {
        key: bindparam(f"set_{key}", type_=model.columns[key].attribute.type) for key in keys
    }
    if model.touch is not None:
        values.setdefault(model.touch.key, now())
    by_pk = model.pk.attribute == bindparam(PK_PARAM, type_=model.pk.attribute.type)
    return update(model.model).where(by_pk, *model.live).values(values).returning(model.model)
