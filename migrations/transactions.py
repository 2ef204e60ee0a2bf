"""Migrations side: a revision leaves its transaction (CONCURRENTLY) only where Alembic owns it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import op

__all__ = ["CALLER_OWNS_TRANSACTION", "outside_transaction"]

log = logging.getLogger(__name__)

# The MigrationContext option env.py sets when the connection it was lent is
# inside the caller's transaction, which Alembic may neither commit nor leave.
CALLER_OWNS_TRANSACTION = "caller_owns_transaction"


@contextmanager
def outside_transaction() -> Iterator[bool]:
    """Alembic's autocommit_block where Alembic owns the transaction; yields whether it left it.

    On a connection lent inside the caller's transaction (tests, the bench and
    `compat verify --embedded` migrate new databases that way) the block stays
    in that transaction and yields False: the revision then runs the plain
    form of its statement, which PostgreSQL allows in a transaction.
    """
    context = op.get_context()
    if context.opts.get(CALLER_OWNS_TRANSACTION):
        log.info("in the caller's transaction: running the revision's DDL inside it")
        yield False
        return
    with context.autocommit_block():
        yield True
