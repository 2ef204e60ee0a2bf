"""Migrations side: an Alembic Config that finds these migrations wherever the package lives."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config

import layer_settings
from migrations.locking import LOCK_POLICY_ATTRIBUTE, LockPolicy

__all__ = [
    "ALLOW_DATA_LOSS_ATTRIBUTE",
    "ALLOW_DATA_LOSS_VARIABLE",
    "SCRIPT_LOCATION",
    "alembic_config",
    "data_loss_allowed_by_environment",
]

# The package's own directory, so an installed wheel (no pyproject.toml, no
# checkout) migrates from the env.py and versions/ it ships.
SCRIPT_LOCATION = Path(__file__).resolve().parent

# config.attributes key by which a Python caller confirms a downgrade that drops data.
ALLOW_DATA_LOSS_ATTRIBUTE = "allow_data_loss"
ALLOW_DATA_LOSS_VARIABLE = "COMPAT_ALLOW_DATA_LOSS"


def alembic_config(
    url: str | sa.URL | None = None,
    *,
    allow_data_loss: bool = False,
    lock_policy: LockPolicy | None = None,
) -> Config:
    """An Alembic Config for these migrations, for alembic.command.upgrade(config, "head") and kin.

    With ``url`` the migrations run on that database; without it env.py reads
    DATABASE_URL, else the POSTGRES_* variables, as the rest of the layer does.
    A caller that already holds a Connection puts it in
    ``config.attributes["connection"]``; env.py then uses it (and leaves an
    open transaction on it for the caller to commit).

    ``allow_data_loss=True`` confirms downgrades that drop tables with their
    rows (migrations/guard.py), as ``-x allow-data-loss=yes`` does on the
    command line; without it such a downgrade refuses before running any DDL.
    ``lock_policy`` replaces the default lock_timeout and retries
    (migrations/locking.py): tests use a short one.
    """
    config = Config()
    # ConfigParser interpolates "%": escape it, or a percent-encoded password
    # or an odd install path would be mangled.
    config.set_main_option("script_location", _escaped(SCRIPT_LOCATION.as_posix()))
    if url is not None:
        rendered = sa.make_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", _escaped(rendered))
    if allow_data_loss:
        config.attributes[ALLOW_DATA_LOSS_ATTRIBUTE] = True
    if lock_policy is not None:
        config.attributes[LOCK_POLICY_ATTRIBUTE] = lock_policy
    return config


def data_loss_allowed_by_environment() -> bool:
    """Whether COMPAT_ALLOW_DATA_LOSS confirms downgrades that drop data (layer_settings parses it).

    A value that is neither on nor off confirms nothing: layer_settings logs
    it once, and the downgrade refuses as if the variable were unset.
    """
    return layer_settings.current().allow_data_loss


def _escaped(value: str) -> str:
    return value.replace("%", "%%")
