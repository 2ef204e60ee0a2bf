"""Parity suite: every row of the data tables, in a stable order, as a write's comparable state."""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa

from compat.routing.unit_of_work import UnitOfWork

__all__ = ["TABLES", "read_tables", "table_state"]

TABLES: Final = {"user_sessions": "uuid", "uploaded_files": "id"}
"""Each data table and the column that orders its rows (unique, so the order is stable)."""

_SELECTS: Final = {
    table: sa.text(f"SELECT * FROM {table} ORDER BY {order}") for table, order in TABLES.items()
}


def read_tables(connection: sa.Connection) -> dict[str, list[dict[str, Any]]]:
    """Every row of every data table, as dicts keyed by column."""
    return {
        table: [dict(row._mapping) for row in connection.execute(select)]
        for table, select in _SELECTS.items()
    }


def table_state(unit: UnitOfWork) -> dict[str, list[dict[str, Any]]]:
    """compare_paths' ``read_state``: the tables as a path left them, inside its savepoint."""
    return read_tables(unit.connection)
