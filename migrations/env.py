"""Migrations side: the Alembic environment; ORM models are the target, orm.database the engine."""

from __future__ import annotations

import logging
from functools import partial
from logging.config import fileConfig
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import context
from alembic.util import CommandError
from sqlalchemy.pool import NullPool

from migrations.config import ALLOW_DATA_LOSS_ATTRIBUTE, data_loss_allowed_by_environment
from migrations.guard import CONFIRM_OPTION, refusing_unconfirmed_data_loss
from migrations.locking import (
    LOCK_POLICY_ATTRIBUTE,
    LockPolicy,
    lock_timeout,
    retrying_lock_timeouts,
)
from migrations.transactions import CALLER_OWNS_TRANSACTION
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


def _data_loss_confirmed() -> bool:
    """Confirmed by -x allow-data-loss=yes|no, else alembic_config(), else the environment."""
    given = context.get_x_argument(as_dictionary=True).get(CONFIRM_OPTION)
    if given is not None:
        if given not in ("yes", "no"):
            raise CommandError(f"-x {CONFIRM_OPTION}={given!r}: say yes or no")
        return given == "yes"
    if config.attributes.get(ALLOW_DATA_LOSS_ATTRIBUTE):
        return True
    return data_loss_allowed_by_environment()


def _lock_policy() -> LockPolicy:
    """The caller's LockPolicy (alembic_config(lock_policy=...)), else the defaults."""
    policy = config.attributes.get(LOCK_POLICY_ATTRIBUTE)
    return policy if isinstance(policy, LockPolicy) else LockPolicy()


def _configure(**kwargs: Any) -> None:
    # compare_type catches a changed type or length, compare_server_default a
    # drifted default: autogenerate and `alembic check` ignore both otherwise.
    # Each revision in its own transaction: a retry after lock_timeout reruns
    # only the revision that failed, no lock is held across revisions, and a
    # revision may leave its transaction (CREATE INDEX CONCURRENTLY).
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=True,
        **kwargs,
    )


def _configure_guarded(**kwargs: Any) -> None:
    """_configure, with the command's steps refusing a downgrade that drops unconfirmed data.

    The command's step function is only reachable through the configured
    context, so configure once to read it and again with it wrapped.
    """
    _configure(**kwargs)
    command_steps = context.get_context().opts.get("fn")
    if command_steps is None:
        return
    _configure(
        fn=refusing_unconfirmed_data_loss(
            command_steps, confirmed=_data_loss_confirmed, destination=_destination
        ),
        **kwargs,
    )


def _destination() -> str:
    """The downgrade's target as the command line spells it (None from Alembic means base)."""
    destination = context.get_revision_argument()
    if destination is None:
        return "base"
    return destination if isinstance(destination, str) else " ".join(destination)


def run_migrations_offline() -> None:
    """`alembic upgrade --sql`: print the DDL for a DBA instead of running it."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    # The script a DBA runs waits for locks no longer than `alembic upgrade` does.
    context.execute(f"SET lock_timeout = '{_lock_policy().timeout_ms}ms'")
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: sa.Connection) -> None:
    # On a connection already inside a transaction Alembic neither begins nor
    # commits: the caller who lent it owns the transaction, and each attempt
    # runs in a savepoint instead, so that a retry starts from a clean state.
    owned = not connection.in_transaction()
    policy = _lock_policy()
    with lock_timeout(connection, policy.timeout_ms, owned=owned):
        _configure_guarded(connection=connection, **{CALLER_OWNS_TRANSACTION: not owned})
        retrying_lock_timeouts(partial(_attempt, connection, owned=owned), policy, where=_where)


def _attempt(connection: sa.Connection, *, owned: bool) -> None:
    if owned:
        with context.begin_transaction():
            context.run_migrations()
    else:
        with connection.begin_nested():
            context.run_migrations()


def _where() -> str:
    """The revision(s) the database is at now, for a message about a failed attempt."""
    return ", ".join(context.get_context().get_current_heads()) or "base"


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
