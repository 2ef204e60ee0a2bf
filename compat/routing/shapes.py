"""Compat layer: rows of columns from the ORM repositories as the legacy code's dicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row

__all__ = ["legacy_dicts"]


def legacy_dicts(rows: Sequence[Row[Any]], uuid_keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each row as a dict keyed by its column names, with the uuid columns as str.

    psycopg2 (the legacy path) returns uuid columns as str and everything else
    as the same Python types SQLAlchemy gives here (naive datetimes, int,
    bool, str), so those values pass through as they are. Zipping with the
    names, looked up once per result, costs a fraction of reading each
    column by attribute.
    """
    if not rows:
        return []
    keys = rows[0]._fields
    dicts = []
    for row in rows:
        values = dict(zip(keys, row, strict=True))
        for key in uuid_keys:
            values[key] = str(values[key])
        dicts.append(values)
    return dicts
