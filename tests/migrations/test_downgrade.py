"""Migrations tests: every revision's downgrade undoes it completely, down to an empty schema."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

import migrations
from tests.fixtures.postgres import make_engine
from tests.migrations.catalog import SchemaSnapshot, snapshot

# Reading the scripts touches no database; a new revision is covered without editing this file.
REVISIONS = [
    script.revision
    for script in ScriptDirectory.from_config(migrations.alembic_config()).walk_revisions()
]


class TestDowngradeToBase:
    @pytest.mark.parametrize("revision", REVISIONS)
    def test_downgrade_to_base_leaves_nothing_behind(
        self, empty_database: str, revision: str
    ) -> None:
        """A table, sequence, type or function a downgrade forgets breaks the next upgrade."""
        # Confirmed: every table goes, on purpose (test_guarded_downgrade.py tests the refusal).
        config = migrations.alembic_config(empty_database, allow_data_loss=True)
        command.upgrade(config, revision)

        command.downgrade(config, "base")

        engine = make_engine(empty_database, poolclass=sa.NullPool)
        try:
            with engine.connect() as connection:
                left = snapshot(connection)
                versions = connection.scalars(sa.text("SELECT version_num FROM alembic_version"))
                assert versions.all() == [], "alembic_version still names a revision"
        finally:
            engine.dispose()
        diff = SchemaSnapshot.empty().diff(
            left, expected_name="base", actual_name=f"downgraded from {revision}"
        )
        assert not diff, f"downgrading from {revision} to base left objects behind:\n{diff}"

    def test_every_revision_is_covered(self) -> None:
        """An unreadable history would parametrize the downgrade check into nothing."""
        assert "0001_baseline" in REVISIONS
