"""Percentage ramps: a flag serves its mode to a share of calls, the stage before to the rest.

``compat_flags.percent`` (100: every call; the default, so existing rows keep
their meaning) and the audit's ``old_percent``/``new_percent``. Adding a
column with a constant default is instant on PostgreSQL 11 and later (no
rewrite), and its range check comes with it.

Revision ID: 0004_flag_ramps
Revises: 0003_sessions_lower_email_index
Create Date: 2026-12-06 21:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004_flag_ramps"
down_revision: str | Sequence[str] | None = "0003_sessions_lower_email_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECK = "compat_flags_percent_check"

DATA_LOSS_ON_DOWNGRADE = "drops the ramp percentage of every compat_flags row"


def upgrade() -> None:
    # The check comes with the column: a new column holds only its default, so
    # validating it is no scan of rows anyone else could be waiting on.
    op.execute(
        "ALTER TABLE compat_flags ADD COLUMN percent DOUBLE PRECISION DEFAULT 100 NOT NULL "
        f"CONSTRAINT {_CHECK} CHECK (percent >= 0 AND percent <= 100)"
    )
    # IF NOT EXISTS: a downgrade leaves these (see below), and the upgrade after it runs again.
    op.execute(
        "ALTER TABLE compat_flag_audit ADD COLUMN IF NOT EXISTS old_percent DOUBLE PRECISION, "
        "ADD COLUMN IF NOT EXISTS new_percent DOUBLE PRECISION"
    )


def downgrade() -> None:
    # The audit is append-only evidence: its percentage columns stay (nullable,
    # unknown to the code before this revision). Only the live ramps go: the
    # code before this revision has none, so a ramped flag there is its whole mode.
    op.drop_column("compat_flags", "percent")
