"""Compat layer: which errors are faults of the connection or the server, not of a path's code.

A compared call in which a side lost its connection (a restart, a backend
ended by an operator, a server shutting down) compared nothing: that side
never ran to its end. Its observation is a fault of that side, never a
mismatch, so that an outage does not read as the ORM disagreeing with legacy.
"""

from __future__ import annotations

from typing import Final

import psycopg2
import sqlalchemy as sa

__all__ = ["FAULT_SQLSTATES", "is_connection_fault"]

FAULT_SQLSTATES: Final = frozenset({"57P01", "57P02", "57P03"})
"""admin_shutdown, crash_shutdown, cannot_connect_now; and every code of class 08."""


def is_connection_fault(error: BaseException | None) -> bool:
    """True when ``error`` says the connection or the server failed, not the statement.

    That is: SQLSTATE class 08 (connection exception) or 57P01/57P02/57P03
    (the server shutting down or not accepting connections); a psycopg2
    ``OperationalError`` or ``InterfaceError`` with no SQLSTATE (libpq's own
    "server closed the connection unexpectedly", "connection already
    closed"); a SQLAlchemy error that invalidated its connection. A timeout
    (57014), a lock not granted (55P03) or a serialization failure (40001)
    is a statement's outcome, compared like any other.
    """
    if error is None:
        return False
    if isinstance(error, sa.exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return is_connection_fault(error.orig)
    if not isinstance(error, psycopg2.Error):
        return False
    code = error.pgcode
    if code:
        return code.startswith("08") or code in FAULT_SQLSTATES
    return isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError)
