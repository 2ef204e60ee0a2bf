"""Migrations side: the Alembic environment; ORM models are the target, orm.database the engine."""

from __future__ import annotations

import logging
from logging.config import fileConfig
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlalchemy.pool import NullPool

from orm.database import DRIVER, create_engine, database_url
from orm.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_logging() -> None:
    ini = config.config_file_name
    if ini is not None and Path(ini).is_file():
        fileConfig(ini, disable_existing_loggers=False)
    elif config.cmd_opts is not None:
        # The alembic command line configured by pyproject.toml alone: report
        # each step as the stock alembic.ini's logging section would. Library
        # callers (tests, an app's own startup) keep their own logging.
        logging.basicConfig(format="%(levelname)-5.5s [%(name)s] %(message)s")
        logging.getLogger("alembic").setLevel(logging.INFO)


def _url() -> sa.URL:
    """The URL migrations.alembic_config(url) set, else DATABASE_URL or the POSTGRES_* variables."""
    given = config.get_section(config.config_ini_section, {}).get("sqlalchemy.url")
    if given:
        return sa.make_url(given).set(drivername=DRIVER)
    return database_url()


def _configure(**kwargs: Any) -> None:
    # compare_type catches a changed type or length, compare_server_default a
    # drifted default: autogenerate and `alembic check` ignore both otherwise.
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """`alembic upgrade --sql`: print the DDL for a DBA instead of running it."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: sa.Connection) -> None:
    # On a connection already inside a transaction Alembic neither begins nor
    # commits: the caller who lent it owns the transaction.
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate on config.attributes["connection"] (Connection or Engine), else on a new engine."""
    lent = config.attributes.get("connection")
    if isinstance(lent, sa.Connection):
        _run_on(lent)
    elif isinstance(lent, sa.Engine):
        with lent.connect() as connection:
            _run_on(connection)
    elif lent is None:
        engine = create_engine(_url(), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                _run_on(connection)
        finally:
            engine.dispose()
    else:
        raise TypeError(
            'config.attributes["connection"] must be a SQLAlchemy Connection or Engine, '
            f"not {type(lent).__name__}; pass one, or leave it unset to use DATABASE_URL"
        )


_configure_logging()
if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
