"""Baseline: the schema production has, exactly as legacy/schema.sql creates it.

A database made by the hand-run SQL is adopted with `alembic stamp 0001_baseline`
(see README.md); a new one gets this revision from `alembic upgrade head`.
Every name is the one PostgreSQL gave the hand-run SQL (<table>_pkey,
<table>_<column>_fkey/_key/_check) or the legacy idx_ name, column order is the
file's, and tests/migrations compares the result with schema.sql in the catalog.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-25 15:10:46
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_baseline"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Read by migrations/guard.py: downgrading past this revision refuses unless confirmed.
DATA_LOSS_ON_DOWNGRADE = "drops user_sessions and uploaded_files with all their rows"

# Every name is wrapped in op.f(): Alembic applies the target metadata's naming
# convention to op.create_table, and its "ck" pattern would turn the given
# check name into uploaded_files_uploaded_files_size_bytes_check_check.
# Naive TIMESTAMP on purpose: it is what production has; sessions pin UTC.
_NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=_NOW, nullable=True),
        sa.Column("updated_at", sa.DateTime(), server_default=_NOW, nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("ip_address", sa.Text(), nullable=True),
        sa.Column("consent_user_data", sa.Boolean(), server_default=sa.false(), nullable=True),
        sa.Column("verification_code", sa.String(6), nullable=True),
        sa.Column("verification_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_verification_attempts", sa.Integer(), server_default="3", nullable=False),
        sa.Column("verification_expires_at", sa.DateTime(), nullable=True),
        sa.Column("is_email_verified", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("resend_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_resend_attempts", sa.Integer(), server_default="3", nullable=False),
        sa.Column("last_resend_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("uuid", name=op.f("user_sessions_pkey")),
    )
    op.create_index(op.f("idx_user_sessions_email"), "user_sessions", ["email"])
    op.create_index(op.f("idx_user_sessions_created_at"), "user_sessions", ["created_at"])
    op.create_index(op.f("idx_user_sessions_updated_at"), "user_sessions", ["updated_at"])
    op.create_index(op.f("idx_user_sessions_completed_at"), "user_sessions", ["completed_at"])
    op.create_index(
        op.f("idx_user_sessions_consent_user_data"), "user_sessions", ["consent_user_data"]
    )
    op.create_index(
        op.f("idx_user_sessions_verification_expires_at"),
        "user_sessions",
        ["verification_expires_at"],
    )
    op.create_index(
        op.f("idx_user_sessions_is_email_verified"), "user_sessions", ["is_email_verified"]
    )
    op.create_index(
        op.f("idx_user_sessions_is_email_verified_completed_at"),
        "user_sessions",
        ["is_email_verified", "completed_at"],
    )
    op.create_index(
        op.f("idx_user_sessions_pending_verification_expiry"),
        "user_sessions",
        ["verification_expires_at"],
        postgresql_where=sa.text("verification_expires_at IS NOT NULL"),
    )

    op.create_table(
        "uploaded_files",
        # An autoincrementing BIGINT primary key renders as BIGSERIAL: the
        # sequence uploaded_files_id_seq, owned by the column, as legacy has.
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("session_uuid", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column("sha256", sa.CHAR(64), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), server_default=_NOW, nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("uploaded_files_pkey")),
        sa.ForeignKeyConstraint(
            ["session_uuid"],
            ["user_sessions.uuid"],
            name=op.f("uploaded_files_session_uuid_fkey"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("storage_key", name=op.f("uploaded_files_storage_key_key")),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("uploaded_files_size_bytes_check")),
    )
    op.create_index(
        op.f("idx_uploaded_files_session_uuid_uploaded_at"),
        "uploaded_files",
        ["session_uuid", "uploaded_at"],
    )


def downgrade() -> None:
    # Dropping a table drops its indexes, constraints and owned sequence;
    # the referencing table goes first.
    op.drop_table("uploaded_files")
    op.drop_table("user_sessions")
