"""The migration layer's own tables: shared flags, their append-only audit, observations.

Revision ID: 0002_compat_tables
Revises: 0001_baseline
Create Date: 2026-11-25 15:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_compat_tables"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Read by migrations/guard.py: downgrading past this revision refuses unless confirmed.
DATA_LOSS_ON_DOWNGRADE = (
    "drops compat_flags, the append-only audit compat_flag_audit and compat_observations "
    "with all their rows"
)

_NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "compat_flags",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("sample_rate", sa.Double(), server_default=sa.text("1"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), server_default=_NOW, nullable=False),
        sa.CheckConstraint(
            "mode IN ('legacy', 'shadow', 'live', 'orm')", name=op.f("compat_flags_mode_check")
        ),
        sa.CheckConstraint(
            "sample_rate >= 0 AND sample_rate <= 1", name=op.f("compat_flags_sample_rate_check")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("compat_flags_pkey")),
    )
    op.create_table(
        "compat_flag_audit",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("old_mode", sa.Text(), nullable=True),
        sa.Column("new_mode", sa.Text(), nullable=False),
        sa.Column("old_sample_rate", sa.Double(), nullable=True),
        sa.Column("new_sample_rate", sa.Double(), nullable=False),
        sa.Column("changed_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), server_default=_NOW, nullable=False),
        sa.CheckConstraint("btrim(reason) <> ''", name=op.f("compat_flag_audit_reason_check")),
        sa.PrimaryKeyConstraint("id", name=op.f("compat_flag_audit_pkey")),
    )
    op.create_index(
        op.f("idx_compat_flag_audit_key_changed_at"), "compat_flag_audit", ["key", "changed_at"]
    )
    # The audit is evidence: nothing may rewrite or erase it, whoever connects.
    op.execute(
        "CREATE FUNCTION compat_flag_audit_is_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'compat_flag_audit is append-only: % is not allowed', TG_OP "
        "USING ERRCODE = 'insufficient_privilege'; "
        "END $$"
    )
    op.execute(
        "CREATE TRIGGER compat_flag_audit_append_only "
        "BEFORE UPDATE OR DELETE OR TRUNCATE ON compat_flag_audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION compat_flag_audit_is_append_only()"
    )
    op.create_table(
        "compat_observations",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", sa.DateTime(), server_default=_NOW, nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("serving", sa.Text(), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("legacy_ms", sa.Double(), nullable=True),
        sa.Column("orm_ms", sa.Double(), nullable=True),
        sa.Column("candidate_error", sa.Text(), nullable=True),
        sa.Column("diff", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("compat_observations_pkey")),
    )
    op.create_index(
        op.f("idx_compat_observations_key_observed_at"),
        "compat_observations",
        ["key", "observed_at"],
    )


def downgrade() -> None:
    op.drop_table("compat_observations")
    op.execute("DROP TRIGGER compat_flag_audit_append_only ON compat_flag_audit")
    op.drop_table("compat_flag_audit")
    op.execute("DROP FUNCTION compat_flag_audit_is_append_only()")
    op.drop_table("compat_flags")
