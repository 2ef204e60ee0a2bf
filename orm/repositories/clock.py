"""ORM side: database time for the repositories (CURRENT_TIMESTAMP), never Python's clock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Integer, Interval, bindparam, func, literal_column

__all__ = ["hours_ago", "now"]


def now() -> ColumnElement[datetime]:
    """CURRENT_TIMESTAMP: the transaction's start time, the same on the legacy and ORM paths."""
    return func.current_timestamp()


def hours_ago(param: str) -> ColumnElement[datetime]:
    """``CURRENT_TIMESTAMP - :param * INTERVAL '1 hour'``, as the legacy SQL writes it.

    ``param`` names the bound parameter that carries the number of hours.
    """
    hours = bindparam(param, type_=Integer)
    return now() - hours * literal_column("INTERVAL '1 hour'", Interval)
