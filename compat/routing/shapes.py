"""Compat layer: ORM instances and rows as the legacy code's dicts, derived from its TypedDicts.

psycopg2 (the legacy side) returns uuid columns as str and everything else as
the same Python types SQLAlchemy gives (naive datetimes, int, bool, str), so
only the uuid fields are converted: the fields a legacy TypedDict types as
``str`` and names ``uuid`` or ``*_uuid``, the same convention the argument
rules use.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Row

__all__ = ["LegacyShape"]

RowT = TypeVar("RowT")


class LegacyShape(Generic[RowT]):
    """The legacy dict of one TypedDict: ``LegacyShape(SessionRow).one(instance_or_row)``."""

    __slots__ = ("keys", "uuid_keys")

    def __init__(self, typed_dict: type[RowT]) -> None:
        hints = typing.get_type_hints(typed_dict)
        self.keys: tuple[str, ...] = tuple(hints)
        self.uuid_keys: tuple[str, ...] = tuple(
            key for key, hint in hints.items() if hint is str and _is_uuid_name(key)
        )

    def one(self, source: Any) -> RowT:
        """An ORM instance, or a Row of the TypedDict's columns, as the legacy dict."""
        if isinstance(source, Row):
            return self.many([source])[0]
        values = {key: getattr(source, key) for key in self.keys}
        for key in self.uuid_keys:
            values[key] = str(values[key])
        return cast(RowT, values)

    def optional(self, source: Any) -> RowT | None:
        """``one(source)``, or None for None (a missing row)."""
        return None if source is None else self.one(source)

    def many(self, rows: Sequence[Row[Any]]) -> list[RowT]:
        """Rows of the TypedDict's columns as legacy dicts.

        Zipping with the names, looked up once per result, costs a fraction
        of reading each column by attribute; parity checks that the selected
        columns are the TypedDict's.
        """
        if not rows:
            return []
        names = rows[0]._fields
        uuid_keys = self.uuid_keys
        dicts = []
        for row in rows:
            values = dict(zip(names, row, strict=True))
            for key in uuid_keys:
                values[key] = str(values[key])
            dicts.append(values)
        return cast(list[RowT], dicts)


def _is_uuid_name(name: str) -> bool:
    return name == "uuid" or name.endswith("_uuid")
