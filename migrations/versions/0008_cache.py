"""Read caching: per-function cache settings, their append-only audit, change notifications.

The triggers on the cached tables send ``NOTIFY compat_cache, '<table>:<key>'``
for every row changed, by whichever client: the facade, legacy code called
directly, a psql session. Notifications are delivered at commit only, so a
rolled-back write is never announced. Every process using the cache listens
(docs/caching.md). Creating a trigger takes a SHARE ROW EXCLUSIVE lock on
its table for an instant (no scan, no rewrite), bounded by env.py's
lock_timeout like every DDL here.

Revision ID: 0008_cache
Revises: 0007_served_calls
Create Date: 2026-12-06 23:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_cache"
down_revision: str | Sequence[str] | None = "0007_served_calls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Read by migrations/guard.py: downgrading past this revision refuses unless confirmed.
DATA_LOSS_ON_DOWNGRADE = (
    "drops compat_cache_settings and compat_cache_audit: which functions are cached, and the "
    "audit of every cache change"
)

_NOW = sa.text("CURRENT_TIMESTAMP")

# (table, the column that names a row in the payload); compat/cache/__init__.py says the same.
_CACHED_TABLES = (("user_sessions", "uuid"), ("uploaded_files", "id"))


def upgrade() -> None:
    op.create_table(
        "compat_cache_settings",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("ttl_seconds", sa.Double(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.CheckConstraint(
            "ttl_seconds > 0 AND ttl_seconds <= 86400",
            name=op.f("compat_cache_settings_ttl_seconds_check"),
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("compat_cache_settings_pkey")),
    )
    op.create_table(
        "compat_cache_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("old_ttl_seconds", sa.Double(), nullable=True),
        sa.Column("new_ttl_seconds", sa.Double(), nullable=True),
        sa.Column("changed_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.CheckConstraint("btrim(reason) <> ''", name=op.f("compat_cache_audit_reason_check")),
        sa.PrimaryKeyConstraint("id", name=op.f("compat_cache_audit_pkey")),
    )
    op.create_index(
        op.f("idx_compat_cache_audit_key_changed_at"), "compat_cache_audit", ["key", "changed_at"]
    )
    # Evidence, like the flag audit: nothing may rewrite or erase it.
    op.execute(
        "CREATE FUNCTION compat_cache_audit_is_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'compat_cache_audit is append-only: % is not allowed', TG_OP "
        "USING ERRCODE = 'insufficient_privilege'; "
        "END $$"
    )
    op.execute(
        "CREATE TRIGGER compat_cache_audit_append_only "
        "BEFORE UPDATE OR DELETE OR TRUNCATE ON compat_cache_audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION compat_cache_audit_is_append_only()"
    )
    # A settings change reaches every listening process at once, not at its next read.
    _notify_trigger("compat_cache_settings", "key")
    for table, column in _CACHED_TABLES:
        _notify_trigger(table, column)


def _notify_trigger(table: str, column: str) -> None:
    op.execute(
        f"CREATE FUNCTION compat_cache_notify_{table}() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP <> 'INSERT' THEN "
        f"PERFORM pg_notify('compat_cache', '{table}:' || OLD.{column}); END IF; "
        f"IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.{column} <> OLD.{column}) THEN "
        f"PERFORM pg_notify('compat_cache', '{table}:' || NEW.{column}); END IF; "
        "RETURN NULL; END $$"
    )
    op.execute(
        f"CREATE TRIGGER compat_cache_notify AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION compat_cache_notify_{table}()"
    )
    op.execute(
        f"CREATE FUNCTION compat_cache_notify_{table}_truncate() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('compat_cache', '{table}:*'); "
        "RETURN NULL; END $$"
    )
    op.execute(
        f"CREATE TRIGGER compat_cache_notify_truncate AFTER TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION compat_cache_notify_{table}_truncate()"
    )


def _drop_notify_trigger(table: str) -> None:
    op.execute(f"DROP TRIGGER compat_cache_notify_truncate ON {table}")
    op.execute(f"DROP FUNCTION compat_cache_notify_{table}_truncate()")
    op.execute(f"DROP TRIGGER compat_cache_notify ON {table}")
    op.execute(f"DROP FUNCTION compat_cache_notify_{table}()")


def downgrade() -> None:
    for table, _column in reversed(_CACHED_TABLES):
        _drop_notify_trigger(table)
    _drop_notify_trigger("compat_cache_settings")
    op.execute("DROP TRIGGER compat_cache_audit_append_only ON compat_cache_audit")
    op.drop_table("compat_cache_audit")
    op.execute("DROP FUNCTION compat_cache_audit_is_append_only()")
    op.drop_table("compat_cache_settings")
