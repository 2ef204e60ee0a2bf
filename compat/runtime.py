"""Compat layer: the one wiring point: build_runtime() assembles what every facade call consults.

Nothing is built at import time. The process's runtime is built on first use
from the process's settings; tests and ``compat verify`` build one of their
own (another database, other publishers) and install it with
``use_runtime()`` instead of changing the environment.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg2.extensions
import sqlalchemy as sa

import layer_settings
from compat.cache import CACHED_TABLES
from compat.cache.region import ReadCache
from compat.cache.settings import CacheSettings
from compat.flags.store import FlagStore
from compat.routing.declaration import REGISTRY
from compat.shadow.publishers import (
    CounterPublisher,
    Dispatcher,
    LogPublisher,
    Publisher,
    TablePublisher,
)
from orm.database import create_engine, database_url, get_engine
from orm.models import Base

__all__ = ["Runtime", "build_runtime", "get_runtime", "reset_runtime", "use_runtime"]


@dataclass(slots=True)
class Runtime:
    """What every facade call consults: flags, the observation dispatcher, the engine, knobs."""

    flags: FlagStore
    dispatcher: Dispatcher
    counters: CounterPublisher
    cache: ReadCache = field(default_factory=lambda: ReadCache("off", dsn=str))
    """The read cache (docs/caching.md); ``off`` unless the settings say otherwise."""
    cache_settings: CacheSettings | None = None
    """Which functions are cached, and the audited changes (`compat cache`)."""
    raise_on_mismatch: bool = False
    """Raise MismatchError after a compared call whose paths disagree (for tests)."""
    candidate_timeout_ms: int = field(
        default_factory=lambda: layer_settings.current().candidate_timeout_ms
    )
    """The candidate's time budget: a statement timeout inside its savepoint."""
    own_engine: sa.Engine | None = None
    """This runtime's own engine; None: the process's (orm.database, which use_engine sets)."""

    @property
    def engine(self) -> sa.Engine:
        """The engine every unit of work, flag read and publisher of this runtime uses."""
        return self.own_engine if self.own_engine is not None else get_engine()

    def close(self) -> None:
        """Hand over what is still queued, then close this runtime's own connections."""
        self.dispatcher.drain()
        self.cache.close()
        if self.own_engine is not None:
            self.own_engine.dispose()


def build_runtime(
    settings: layer_settings.Settings | None = None,
    *,
    engine: sa.Engine | None = None,
    registry: Mapping[str, Any] = REGISTRY,
    publishers: Sequence[Publisher] | None = None,
    environ: Mapping[str, str] | None = None,
    ttl_seconds: float | None = None,
    raise_on_mismatch: bool = False,
    cache_backend: str | None = None,
) -> Runtime:
    """Build a runtime: the process's database and publishers unless told otherwise.

    With ``settings``, the runtime gets an engine of its own for their
    database (nothing connects until the first call); ``engine`` gives it
    that engine ready-made (a test's recording one). ``publishers`` replaces
    the log and table publishers (the counters are always kept);
    ``environ`` gives the flag store its own flag variables (tests);
    ``cache_backend`` overrides COMPAT_CACHE_BACKEND (``memory``, ``off``, a
    Redis URL).
    """
    if engine is None and settings is not None:
        engine = create_engine(database_url(settings.database))
    knobs = settings or layer_settings.current()

    def engine_of() -> sa.Engine:
        return engine if engine is not None else get_engine()

    counters = CounterPublisher()
    chosen = [LogPublisher(), TablePublisher(engine_of)] if publishers is None else publishers
    backend = knobs.cache_backend if cache_backend is None else cache_backend

    def listener_dsn() -> str:
        # What the engine's own connections are made from (a socket directory as host too).
        chosen = engine_of()
        given, keywords = chosen.dialect.create_connect_args(chosen.url)
        return psycopg2.extensions.make_dsn(given[0] if given else "", **keywords)

    cache = ReadCache(
        backend,
        dsn=listener_dsn,
        tables=CACHED_TABLES,
        dependents=_cascades(),
        prefix=f"compat:{engine_of().url.database}" if backend not in ("memory", "off") else "",
        refresh_seconds=knobs.flags_ttl_seconds if ttl_seconds is None else ttl_seconds,
    )
    return Runtime(
        flags=FlagStore(registry, environ=environ, ttl_seconds=ttl_seconds, engine=engine_of),
        dispatcher=Dispatcher([*chosen, counters]),
        counters=counters,
        cache=cache,
        cache_settings=CacheSettings(registry, engine_of),
        raise_on_mismatch=raise_on_mismatch,
        candidate_timeout_ms=knobs.candidate_timeout_ms,
        own_engine=engine,
    )


def _cascades() -> dict[str, tuple[str, ...]]:
    """Per table, the tables whose rows a delete of its rows deletes too (ON DELETE CASCADE)."""
    found: dict[str, list[str]] = {}
    for table in Base.metadata.tables.values():
        for key in table.foreign_keys:
            if (key.ondelete or "").upper() == "CASCADE":
                found.setdefault(key.column.table.name, []).append(table.name)
    return {parent: tuple(children) for parent, children in found.items()}


_lock = threading.Lock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The process's runtime, built on first use (nothing connects at import time)."""
    global _runtime
    runtime = _runtime
    if runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = build_runtime()
            runtime = _runtime
    return runtime


def reset_runtime(runtime: Runtime | None = None) -> Runtime | None:
    """Replace the process's runtime; None means build afresh on next use. Returns the old one."""
    global _runtime
    with _lock:
        previous, _runtime = _runtime, runtime
    return previous


@contextlib.contextmanager
def use_runtime(runtime: Runtime) -> Iterator[Runtime]:
    """Make ``runtime`` the process's for the block; then close it and restore the previous one."""
    previous = reset_runtime(runtime)
    try:
        yield runtime
    finally:
        reset_runtime(previous)
        runtime.close()


def _after_fork_in_child() -> None:
    runtime = _runtime
    if runtime is not None:
        runtime.flags.after_fork()
        runtime.dispatcher.after_fork()
        runtime.cache.after_fork()
        if runtime.own_engine is not None:
            # The parent's sockets are not ours: a new pool, the parent's left alone.
            runtime.own_engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)
