"""Benchmarks: the real peer, the legacy SQL on a psycopg2 ThreadedConnectionPool, no facade.

What a hand-written psycopg2 application would do with the same SQL: a
pooled connection per call, autocommit for a read (one round trip), one
transaction for a write (BEGIN, the statement, COMMIT), no liveness ping.
The legacy functions run unchanged on the pooled connection through their
own seam (``legacy.db.lend_connection``), so the SQL is byte for byte the
legacy path's; only the connection handling differs from the facade's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2.extensions
import psycopg2.pool

from bench.operations import Call, Operation
from legacy.db import database_dsn, lend_connection

__all__ = ["PEER", "peer_caller", "peer_pool"]

PEER = "peer"
"""The variant's name in the tables."""


@contextmanager
def peer_pool(size: int = 4) -> Iterator[psycopg2.pool.ThreadedConnectionPool]:
    """A ThreadedConnectionPool on the bench's database (DATABASE_URL), session zone UTC."""
    params = psycopg2.extensions.parse_dsn(database_dsn())
    params["options"] = (params.get("options", "") + " -c TimeZone=UTC").strip()
    pool = psycopg2.pool.ThreadedConnectionPool(1, size, **params)
    try:
        yield pool
    finally:
        pool.closeall()


def peer_caller(
    operation: Operation, pool: psycopg2.pool.ThreadedConnectionPool
) -> Callable[[Call], object]:
    """One call of ``operation``'s legacy SQL on a connection of ``pool``."""
    autocommit = operation.autocommit
    function = operation.legacy

    def call(arguments: Call) -> Any:
        args, kwargs = arguments
        conn = pool.getconn()
        try:
            if conn.autocommit is not autocommit:
                conn.autocommit = autocommit
            with lend_connection(conn):
                result = function(*args, **kwargs)
            if not autocommit:
                conn.commit()
            return result
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise
        finally:
            pool.putconn(conn)

    return call
