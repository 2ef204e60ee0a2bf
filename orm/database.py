"""ORM side: the engine, the session factory and get_db_session(), all built lazily."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

import layer_settings
from layer_settings import DatabaseSettings
from orm.liveness import TRUST_MS, install_liveness_check

__all__ = [
    "DRIVER",
    "database_url",
    "dispose_engine",
    "get_db_session",
    "get_engine",
    "get_session_factory",
    "use_engine",
]

# SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; we stay on psycopg2.
DRIVER = "postgresql+psycopg2"

# Re-entrant: get_session_factory() builds the engine while it holds the lock.
_lock = threading.RLock()
_engine: sa.Engine | None = None
_session_factory: sessionmaker[Session] | None = None


def database_url(database: DatabaseSettings | None = None) -> sa.URL:
    """The database URL with the psycopg2 dialect, from ``database`` or the process's settings.

    The settings (DATABASE_URL, else the POSTGRES_* variables) are parsed once,
    by ``layer_settings``, for both sides; a bad value raises ``SettingsError``.
    """
    parameters = dict((database or layer_settings.current().database).parameters)
    port = parameters.pop("port", None)
    return sa.URL.create(
        DRIVER,
        username=parameters.pop("user", None),
        password=parameters.pop("password", None),
        host=parameters.pop("host", None),
        port=int(port) if port else None,
        database=parameters.pop("dbname", None),
        query=parameters,
    )


POOL_TIMEOUT_S: Final = 5.0
"""Seconds a call waits for a pooled connection, then sqlalchemy.exc.TimeoutError (SA: 30)."""
_TIME_ZONE: Final = "UTC"


def create_engine(
    url: sa.URL | str,
    *,
    trust_ms: int = TRUST_MS,
    connect_timeout_s: int | None = None,
    **kwargs: Any,
) -> sa.Engine:
    """An engine as the layer needs it: psycopg2, session time zone UTC, a cheap liveness check.

    A pooled connection used in the last ``trust_ms`` milliseconds is handed
    out without a ping, an older one is pinged first (``orm.liveness``): a
    point read costs one round trip, not two. ``pool_pre_ping=True`` asks for
    SQLAlchemy's ping on every checkout instead. Waits are bounded
    (``_fail_fast``): connecting by ``connect_timeout_s`` (default: the
    process's PGCONNECT_TIMEOUT setting), unless the URL or ``connect_args``
    give a connect_timeout. The URL's ``options`` and the caller's
    ``connect_args`` are passed as given.
    """
    url = sa.make_url(url).set(drivername=DRIVER)
    if connect_timeout_s is None:
        connect_timeout_s = layer_settings.current().connect_timeout_s
    kwargs = _fail_fast(url, kwargs, connect_timeout_s)
    engine = sa.create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        install_liveness_check(engine, trust_ms)
    # After the liveness check: a dead connection is replaced before its zone is read.
    _pin_time_zone(engine)
    return engine


def _fail_fast(url: sa.URL, kwargs: dict[str, Any], connect_timeout_s: int) -> dict[str, Any]:
    """Bound a worker's waits: connecting (libpq waits for ever) and the pool's queue.

    The URL's or the caller's ``connect_timeout`` and the caller's
    ``pool_timeout`` win; a pool class without a queue takes no pool_timeout.
    """
    bounded = dict(kwargs)
    connect_args = dict(bounded.pop("connect_args", {}))
    if "connect_timeout" not in url.query:
        connect_args.setdefault("connect_timeout", connect_timeout_s)
    bounded["connect_args"] = connect_args
    poolclass = bounded.get("poolclass")
    if poolclass is None or issubclass(poolclass, sa.pool.QueuePool):
        bounded.setdefault("pool_timeout", POOL_TIMEOUT_S)
    return bounded


def _pin_time_zone(engine: sa.Engine) -> None:
    """Every connection of ``engine`` runs in UTC, direct or behind PgBouncer.

    A SET on each new connection (one round trip), not the startup parameter
    options=-c TimeZone=UTC, which PgBouncer refuses or drops: TimeZone set
    by a statement is tracked by PgBouncer per client and put back on every
    server connection it lends (docs/pooler.md). On checkout the zone libpq
    last heard from the server (ParameterStatus, no round trip) is checked,
    so a session-level SET TIME ZONE by application code is undone.
    """

    def set_utc(dbapi_connection: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET TIME ZONE '{_TIME_ZONE}'")
        finally:
            if not dbapi_connection.closed:
                dbapi_connection.autocommit = autocommit

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        set_utc(dbapi_connection)

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.info.parameter_status("TimeZone") != _TIME_ZONE:
            set_utc(dbapi_connection)

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "checkout", on_checkout)


def get_engine() -> sa.Engine:
    """The process's engine, built on first use from the environment."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = create_engine(database_url())
    return _engine


def get_session_factory() -> sessionmaker[Session]:
    """The process's session factory; its sessions keep instances readable after commit."""
    global _session_factory
    if _session_factory is None:
        with _lock:
            if _session_factory is None:
                _session_factory = sessionmaker(bind=get_engine(), expire_on_commit=False)
    return _session_factory


def use_engine(engine: sa.Engine) -> None:
    """Make ``engine`` the process's engine (an application's own, or a test's)."""
    global _engine, _session_factory
    with _lock:
        _engine = engine
        _session_factory = None


def dispose_engine() -> None:
    """Close every pooled connection and forget the engine; the next use builds a new one."""
    global _engine, _session_factory
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None
        _session_factory = None


def _forget_engine_after_fork() -> None:
    # A child must not share its parent's sockets: drop the pool without
    # closing the parent's connections, and build afresh on first use.
    global _engine, _session_factory, _lock
    _lock = threading.RLock()
    if _engine is not None:
        _engine.dispose(close=False)
    _engine = None
    _session_factory = None


os.register_at_fork(after_in_child=_forget_engine_after_fork)


@contextmanager
def get_db_session() -> Iterator[Session]:
    """A session that commits when the block succeeds, rolls back when it raises, then closes."""
    session = get_session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
