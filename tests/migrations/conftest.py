"""Migrations tests: fixtures for pytest-alembic and for databases at a chosen revision."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_alembic
import sqlalchemy as sa
from alembic import command

import migrations
from tests.fixtures.postgres import make_engine


@pytest.fixture
def alembic_config() -> pytest_alembic.Config:
    """pytest-alembic's configuration: the packaged migrations, not a path relative to the cwd.

    Its up/down consistency test downgrades past revisions that drop tables:
    it confirms that, as an operator must (migrations/guard.py).
    """
    return pytest_alembic.Config(alembic_config=migrations.alembic_config(allow_data_loss=True))


@pytest.fixture
def alembic_engine(empty_database: str) -> Iterator[sa.Engine]:
    """pytest-alembic's database: a new, empty one per test, never SQLite."""
    engine = make_engine(empty_database, poolclass=sa.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def migrated_database(empty_database: str) -> str:
    """URL of a new database brought to head by the migrations alone."""
    command.upgrade(migrations.alembic_config(empty_database), "head")
    return empty_database


@pytest.fixture
def migrated_engine(migrated_database: str) -> Iterator[sa.Engine]:
    engine = make_engine(migrated_database, poolclass=sa.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
