"""Served calls counted per side: what the guard compares an ORM error rate with.

``compat_served_rollups`` holds, per key, mode, serving side and minute, the
calls that side served and how many raised: ``errors`` (the call's own
outcome) apart from ``faults`` (the connection or the server failed). Every
process adds its in-memory counts to it every second or so
(compat/shadow/served.py). In ``orm`` mode nothing is compared, so these
counts are the guard's only evidence: the ORM's error rate since the function
went to orm, against legacy's rate while legacy served it (docs/flags.md).

Revision ID: 0007_served_calls
Revises: 0006_observability
Create Date: 2026-12-06 23:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_served_calls"
down_revision: str | Sequence[str] | None = "0006_observability"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Read by migrations/guard.py: downgrading past this revision refuses unless confirmed.
DATA_LOSS_ON_DOWNGRADE = (
    "drops compat_served_rollups: the counts of calls and errors each side served, "
    "the orm guard's baseline"
)


def upgrade() -> None:
    op.create_table(
        "compat_served_rollups",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("faults", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "side IN ('legacy', 'orm')", name=op.f("compat_served_rollups_side_check")
        ),
        sa.CheckConstraint(
            "calls >= errors + faults AND errors >= 0 AND faults >= 0",
            name=op.f("compat_served_rollups_counts_check"),
        ),
        sa.PrimaryKeyConstraint(
            "key", "mode", "side", "minute", name=op.f("compat_served_rollups_pkey")
        ),
    )


def downgrade() -> None:
    op.drop_table("compat_served_rollups")
