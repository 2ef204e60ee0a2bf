"""An index on lower(email) for find_sessions_by_email, built CONCURRENTLY (issue 16).

Both sides look sessions up with ``WHERE lower(email) = lower(%s)``, which the
baseline's plain index on email cannot serve: PostgreSQL reads the whole
table. An index on the same expression can. A plain CREATE INDEX would block
every write to user_sessions while it builds; CONCURRENTLY lets writes go on
(it takes SHARE UPDATE EXCLUSIVE), but cannot run inside a transaction, so the
revision leaves Alembic's transaction for it (migrations/transactions.py).

Revision ID: 0003_sessions_lower_email_index
Revises: 0002_compat_tables
Create Date: 2026-12-06 20:45:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.transactions import outside_transaction

revision: str = "0003_sessions_lower_email_index"
down_revision: str | Sequence[str] | None = "0002_compat_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)

INDEX = "idx_user_sessions_lower_email"


def upgrade() -> None:
    with outside_transaction() as concurrently:
        if concurrently:
            _drop_invalid_leftover()
        op.create_index(
            INDEX,
            "user_sessions",
            [sa.text("lower(email)")],
            postgresql_concurrently=concurrently,
            # Rerunnable after a failure part way (squawk's prefer-robust-stmts);
            # an INVALID leftover was dropped above, so this skips only a real index.
            if_not_exists=True,
        )


def downgrade() -> None:
    with outside_transaction() as concurrently:
        op.drop_index(
            INDEX, table_name="user_sessions", postgresql_concurrently=concurrently, if_exists=True
        )


def _drop_invalid_leftover() -> None:
    """Drop an INVALID index of this name, as a failed or cancelled CONCURRENTLY build leaves.

    Without this, the retry after a lock_timeout (or a rerun after a cancelled
    build) would stop at "relation already exists" on an index that serves no
    query. Offline SQL cannot look, so it skips this.
    """
    if op.get_context().as_sql:
        return
    invalid = op.get_bind().scalar(
        sa.text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
        {"name": INDEX},
    )
    if invalid:
        log.warning("dropping %s, left INVALID by an earlier build that did not finish", INDEX)
        op.drop_index(INDEX, table_name="user_sessions", postgresql_concurrently=True)
