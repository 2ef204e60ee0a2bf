"""Observations tell faults from mismatches, and what a process could not store is counted.

``compat_observations.fault`` names the side whose connection failed during a
compared call (such a call compared nothing; ``matched`` is false and it is
not a mismatch). ``compat_observation_drops`` holds, per process and key, how
many observations were made but never stored (a full queue, a database that
stayed unreachable, the exit timeout), so that ``compat status`` can show them.

Revision ID: 0005_observation_faults
Revises: 0004_flag_ramps
Create Date: 2026-12-06 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_observation_faults"
down_revision: str | Sequence[str] | None = "0004_flag_ramps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


DATA_LOSS_ON_DOWNGRADE = (
    "drops compat_observation_drops (the counts of observations that could not be stored) "
    "and the fault side of every compat_observations row"
)


def upgrade() -> None:
    # Nullable, no default, its check with it: adding it rewrites nothing, and a
    # new column holds only NULLs, which pass the check (no NOT VALID dance needed).
    op.execute(
        "ALTER TABLE compat_observations ADD COLUMN fault TEXT "
        "CONSTRAINT compat_observations_fault_check CHECK (fault IN ('legacy', 'orm'))"
    )
    op.create_table(
        "compat_observation_drops",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.CheckConstraint("dropped > 0", name=op.f("compat_observation_drops_dropped_check")),
        sa.PrimaryKeyConstraint("id", name=op.f("compat_observation_drops_pkey")),
    )
    op.create_index(
        op.f("idx_compat_observation_drops_key_recorded_at"),
        "compat_observation_drops",
        ["key", "recorded_at"],
    )


def downgrade() -> None:
    op.drop_table("compat_observation_drops")
    op.drop_constraint(op.f("compat_observations_fault_check"), "compat_observations")
    op.drop_column("compat_observations", "fault")
