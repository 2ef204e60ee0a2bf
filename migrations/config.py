"""Migrations side: an Alembic Config that finds these migrations wherever the package lives."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config

__all__ = ["SCRIPT_LOCATION", "alembic_config"]

# The package's own directory, so an installed wheel (no pyproject.toml, no
# checkout) migrates from the env.py and versions/ it ships.
SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(url: str | sa.URL | None = None) -> Config:
    """An Alembic Config for these migrations, for alembic.command.upgrade(config, "head") and kin.

    With ``url`` the migrations run on that database; without it env.py reads
    DATABASE_URL, else the POSTGRES_* variables, as the rest of the layer does.
    A caller that already holds a Connection puts it in
    ``config.attributes["connection"]``; env.py then uses it (and leaves an
    open transaction on it for the caller to commit).
    """
    config = Config()
    # ConfigParser interpolates "%": escape it, or a percent-encoded password
    # or an odd install path would be mangled.
    config.set_main_option("script_location", _escaped(SCRIPT_LOCATION.as_posix()))
    if url is not None:
        rendered = sa.make_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", _escaped(rendered))
    return config


def _escaped(value: str) -> str:
    return value.replace("%", "%%")
