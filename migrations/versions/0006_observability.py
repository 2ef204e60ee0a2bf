"""Bounded observation storage: matches counted into per-minute rollups, not kept one row each.

Every observation the table publisher inserts is counted, by a trigger, into
``compat_observation_rollups`` (per key, mode and minute: compared calls,
mismatches, candidate errors, and each side's time in fixed buckets). A match
(no difference, no candidate error) is then not kept as a row: the trigger
drops it. Mismatches and candidate errors are kept in full, up to the bound
`compat observations prune` applies (docs/observability.md). Rows already
stored are counted into the rollups here, and their matches removed. The
publisher itself is unchanged: the counting is the database's.

Revision ID: 0006_observability
Revises: 0005_observation_faults
Create Date: 2026-12-06 21:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_observability"
down_revision: str | Sequence[str] | None = "0005_observation_faults"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Read by migrations/guard.py: downgrading past this revision refuses unless confirmed.
DATA_LOSS_ON_DOWNGRADE = (
    "drops compat_observation_rollups: the counts of every observation, the only record "
    "of the matches"
)

# Milliseconds: the upper bounds of compat_call_seconds's buckets (compat/shadow/metrics.py),
# so that the stored percentiles and the scraped ones agree.
BOUNDS_MS = "ARRAY[0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]"
BUCKETS = 15  # one per bound, and one above the last (the trigger spells it out)


def upgrade() -> None:
    op.create_table(
        "compat_observation_rollups",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("compared", sa.BigInteger(), nullable=False),
        sa.Column("mismatches", sa.BigInteger(), nullable=False),
        sa.Column("candidate_errors", sa.BigInteger(), nullable=False),
        sa.Column("legacy_ms_buckets", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("orm_ms_buckets", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.PrimaryKeyConstraint(
            "key", "mode", "minute", name=op.f("compat_observation_rollups_pkey")
        ),
    )
    # The bucket of a time: 1 below 0.5 ms, ..., 15 at 10 s or more (width_bucket counts from 0).
    op.execute(
        "CREATE FUNCTION compat_ms_bucket(ms double precision) RETURNS integer "
        "LANGUAGE sql IMMUTABLE AS "
        f"$$ SELECT width_bucket(coalesce(ms, 0)::numeric, {BOUNDS_MS}::numeric[]) + 1 $$"
    )
    op.execute(
        "CREATE FUNCTION compat_observations_roll_up() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ "
        "DECLARE "
        "  lb integer := compat_ms_bucket(NEW.legacy_ms); "
        "  ob integer := compat_ms_bucket(NEW.orm_ms); "
        "  bad integer := CASE WHEN NEW.matched THEN 0 ELSE 1 END; "
        # A candidate error the serving side shared is a match, not evidence against it.
        "  raised integer := CASE WHEN NOT NEW.matched AND NEW.candidate_error IS NOT NULL "
        "    THEN 1 ELSE 0 END; "
        "BEGIN "
        # A fault (a side lost its connection) compared nothing: kept as a row, not counted.
        "  IF NEW.fault IS NOT NULL THEN RETURN NEW; END IF; "
        "  INSERT INTO compat_observation_rollups AS r (key, mode, minute, compared, mismatches, "
        "    candidate_errors, legacy_ms_buckets, orm_ms_buckets) "
        "  VALUES (NEW.key, NEW.mode, date_trunc('minute', NEW.observed_at) AT TIME ZONE 'UTC', "
        "    1, bad, raised, "
        "    array_fill(0::bigint, ARRAY[lb - 1]) || 1::bigint || "
        "array_fill(0::bigint, ARRAY[15 - lb]), "
        "    array_fill(0::bigint, ARRAY[ob - 1]) || 1::bigint || "
        "array_fill(0::bigint, ARRAY[15 - ob])) "
        "  ON CONFLICT (key, mode, minute) DO UPDATE SET compared = r.compared + 1, "
        "    mismatches = r.mismatches + bad, candidate_errors = r.candidate_errors + raised, "
        "    legacy_ms_buckets[lb] = r.legacy_ms_buckets[lb] + 1, "
        "    orm_ms_buckets[ob] = r.orm_ms_buckets[ob] + 1; "
        "  IF NEW.matched AND NEW.candidate_error IS NULL THEN "
        "    RETURN NULL; "  # counted: a match is not kept as a row
        "  END IF; "
        "  RETURN NEW; "
        "END $$"
    )
    # What is already stored is counted once, here; its matches then go.
    op.execute(_ROLL_UP_STORED)
    op.execute(
        "DELETE FROM compat_observations "
        "WHERE matched AND candidate_error IS NULL AND fault IS NULL"
    )
    op.execute(
        "CREATE TRIGGER compat_observations_roll_up BEFORE INSERT ON compat_observations "
        "FOR EACH ROW EXECUTE FUNCTION compat_observations_roll_up()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER compat_observations_roll_up ON compat_observations")
    op.execute("DROP FUNCTION compat_observations_roll_up()")
    op.execute("DROP FUNCTION compat_ms_bucket(double precision)")
    op.drop_table("compat_observation_rollups")


def _bucket_counts(column: str) -> str:
    counts = ", ".join(f"count(*) FILTER (WHERE {column} = {i})" for i in range(1, BUCKETS + 1))
    return f"ARRAY[{counts}]"


# Module constants only: no value from outside is part of the text.
_ROLL_UP_STORED = (
    "INSERT INTO compat_observation_rollups (key, mode, minute, compared, mismatches, "  # noqa: S608
    "candidate_errors, legacy_ms_buckets, orm_ms_buckets) "
    "SELECT key, mode, minute, count(*), count(*) FILTER (WHERE NOT matched), "
    "count(*) FILTER (WHERE NOT matched AND candidate_error IS NOT NULL), "
    f"{_bucket_counts('lb')}, {_bucket_counts('ob')} "
    "FROM (SELECT key, mode, matched, candidate_error, "
    "date_trunc('minute', observed_at) AT TIME ZONE 'UTC' AS minute, "
    "compat_ms_bucket(legacy_ms) AS lb, compat_ms_bucket(orm_ms) AS ob "
    "FROM compat_observations WHERE fault IS NULL) AS stored "
    "GROUP BY key, mode, minute"
)
"""Counts every stored observation into the rollups."""
