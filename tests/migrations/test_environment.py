"""Migrations tests: the packaged Alembic config and env.py, the parts no migration exercises."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

import migrations

REPO_ROOT = Path(__file__).resolve().parents[2]

# Nothing listens here: a test that reaches it fails instead of passing by luck.
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nowhere"


class TestPackagedConfig:
    def test_finds_the_migrations_pyproject_names(self) -> None:
        """An installed wheel has no pyproject.toml: its config must find the same history."""
        packaged = ScriptDirectory.from_config(migrations.alembic_config())
        checkout = ScriptDirectory.from_config(Config(toml_file=REPO_ROOT / "pyproject.toml"))

        assert Path(packaged.dir) == Path(checkout.dir) == migrations.SCRIPT_LOCATION
        assert [s.revision for s in packaged.walk_revisions()] == [
            s.revision for s in checkout.walk_revisions()
        ]

    def test_url_with_a_percent_survives_config_interpolation(self) -> None:
        """ConfigParser reads '%' as interpolation: an encoded password must come back intact."""
        url = "postgresql+psycopg2://app:p%25ss%40word@db.internal:5432/maria"

        stored = migrations.alembic_config(url).get_main_option("sqlalchemy.url")

        assert stored is not None
        assert sa.make_url(stored).password == "p%ss@word"

    def test_offline_mode_prints_the_baseline_ddl_without_connecting(self) -> None:
        """`alembic upgrade head --sql` gives a DBA the DDL to review; it must not need a server."""
        config = migrations.alembic_config(UNREACHABLE)
        config.output_buffer = io.StringIO()

        command.upgrade(config, "head", sql=True)

        ddl = config.output_buffer.getvalue()
        assert "CREATE TABLE user_sessions" in ddl
        assert "id BIGSERIAL NOT NULL" in ddl
        assert "WHERE verification_expires_at IS NOT NULL" in ddl
        assert "INSERT INTO alembic_version (version_num) VALUES ('0001_baseline')" in ddl


class TestEnvironment:
    def test_refuses_a_lent_connection_it_cannot_use(self) -> None:
        """A URL string lent as the connection is a caller's mistake: say so, do not guess."""
        config = migrations.alembic_config()
        config.attributes["connection"] = UNREACHABLE

        with pytest.raises(TypeError, match=r"must be a SQLAlchemy Connection or Engine, not str"):
            command.upgrade(config, "head")
