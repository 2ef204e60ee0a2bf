"""ORM side: what a repository knows about its model: mapped columns, value checks, fixed SQL."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, Executable, bindparam, delete, exists, inspect, select, update
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import UnaryExpression

from orm.models import Base
from orm.repositories.clock import now
from orm.repositories.uuids import as_uuid

__all__ = ["SOFT_DELETE_COLUMN", "TOUCH_COLUMN", "ColumnInfo", "ModelInfo", "describe"]

#: A model with this column is soft-deleted: delete() stamps it, reads skip stamped rows.
SOFT_DELETE_COLUMN: Final = "deleted_at"
#: A model with this column gets it set to CURRENT_TIMESTAMP by every write.
TOUCH_COLUMN: Final = "updated_at"
#: The bound parameter that carries a primary key in the statements built here.
PK_PARAM: Final = "where_pk"


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """One mapped column: its attribute, whether it takes NULL, the Python type of its values."""

    key: str
    name: str
    attribute: QueryableAttribute[Any]
    nullable: bool
    python_type: type[Any]

    def check(self, value: object, where: str) -> None:
        """Raise TypeError unless ``value`` is None or of the column's Python type."""
        if value is None or type(value) is self.python_type:
            return
        problem = self.mismatch(value)
        if problem is not None:
            raise TypeError(f"{where}: {problem}")

    def coerce(self, value: Any, where: str, argument: str | None = None) -> Any:
        """``value`` as the column stores it: checked as ``check`` does, a uuid's text parsed.

        ``argument`` names the value in errors (default: the column's key).
        """
        if value is None or type(value) is self.python_type:
            return value
        if self.python_type is uuid.UUID:
            return as_uuid(value, where, argument or self.key)
        self.check(value, where)
        return value

    def mismatch(self, value: object) -> str | None:
        """What is wrong with ``value`` for this column, or None when it fits."""
        expected = self.python_type
        if value is None or type(value) is expected:
            return None
        # bool is an int, but PostgreSQL refuses a boolean for an integer column.
        if isinstance(value, expected) and not isinstance(value, bool):
            return None
        return (
            f"{self.key} takes {expected.__name__}, not {type(value).__name__}; "
            f"convert it before calling (a uuid: uuid.UUID(text))"
        )

    def ordering(self, descending: bool) -> UnaryExpression[Any]:
        """ORDER BY this column, NULLs last."""
        clause = self.attribute.desc() if descending else self.attribute.asc()
        # NULLS LAST only where NULLs can occur: on a NOT NULL column it would
        # change nothing but keep PostgreSQL from reading an index backwards.
        return clause.nulls_last() if self.nullable else clause


@dataclass(frozen=True, slots=True, eq=False)
class ModelInfo:
    """A model as its repository sees it, with the statements that never change, built once.

    Compared and hashed by identity: there is one per model (``describe``), and
    the statement caches are keyed by it.
    """

    model: type[Base]
    table: str
    columns: Mapping[str, ColumnInfo]
    pk: ColumnInfo
    soft_delete: ColumnInfo | None
    touch: ColumnInfo | None
    #: () or (deleted_at IS NULL,): the condition that hides soft-deleted rows.
    live: tuple[ColumnElement[bool], ...]
    get_by_id: Executable
    exists: Executable
    delete: Executable

    def column(self, key: str, where: str) -> ColumnInfo:
        """The mapped column ``key``, or a ValueError that lists the valid ones."""
        column = self.columns.get(key)
        if column is None:
            raise ValueError(
                f"{where}: unknown column {key!r}; "
                f"columns of {self.table} are {', '.join(sorted(self.columns))}"
            )
        return column

    def set_values(
        self, values: Mapping[str, Any], where: str
    ) -> tuple[tuple[str, ...], dict[str, Any]]:
        """Check column values; return their names, sorted, and the values bound as set_<name>.

        A uuid column takes a uuid's text too (see ``ColumnInfo.coerce``).
        """
        keys = tuple(sorted(values))
        params = {f"set_{key}": self.column(key, where).coerce(values[key], where) for key in keys}
        return keys, params


def _python_type(column: Any) -> type[Any]:
    try:
        return cast(type[Any], column.type.python_type)
    except NotImplementedError:
        return object


@functools.cache
def describe(model: type[Base]) -> ModelInfo:
    """The model's columns and fixed statements; built on first use, then shared."""
    mapper = inspect(model)
    columns: dict[str, ColumnInfo] = {}
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        columns[prop.key] = ColumnInfo(
            key=prop.key,
            name=str(column.name),
            attribute=prop.class_attribute,
            nullable=bool(column.nullable),
            python_type=_python_type(column),
        )
    if len(mapper.primary_key) != 1:
        raise TypeError(f"a repository needs a single-column primary key; {model} has another")
    pk = columns[mapper.get_property_by_column(mapper.primary_key[0]).key]
    soft_delete = columns.get(SOFT_DELETE_COLUMN)
    touch = columns.get(TOUCH_COLUMN)
    live = () if soft_delete is None else (soft_delete.attribute.is_(None),)
    by_pk = pk.attribute == bindparam(PK_PARAM, type_=pk.attribute.type)
    remove: Executable
    if soft_delete is None:
        remove = delete(model).where(by_pk)
    else:
        stamps = {soft_delete.key: now()} | ({} if touch is None else {touch.key: now()})
        remove = update(model).where(by_pk, *live).values(stamps)
    return ModelInfo(
        model=model,
        table=str(mapper.local_table.description),
        columns=columns,
        pk=pk,
        soft_delete=soft_delete,
        touch=touch,
        live=live,
        get_by_id=select(model).where(by_pk, *live),
        exists=select(exists().where(by_pk, *live)),
        delete=remove,
    )
