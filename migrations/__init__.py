"""Migrations side: Alembic's environment and revisions; the baseline is legacy/schema.sql."""

from migrations.config import SCRIPT_LOCATION, alembic_config

__all__ = ["SCRIPT_LOCATION", "alembic_config"]
