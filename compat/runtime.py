"""Compat layer: the one wiring point: build_runtime() assembles what every facade call consults.

Nothing is built at import time. The process's runtime is built on first use
from the process's settings; tests and ``compat verify`` build one of their
own (another database, other publishers) and install it with
``use_runtime()`` instead of changing the environment.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

import layer_settings
from compat.cache.region import ReadCache
from compat.cache.settings import CacheSettings
from compat.flags.store import FlagStore
from compat.listening import Listener
from compat.routing.declaration import REGISTRY
from compat.shadow.metrics import MetricsPublisher
from compat.shadow.publishers import (
    CounterPublisher,
    Dispatcher,
    LogPublisher,
    Publisher,
    TablePublisher,
)
from compat.shadow.served import ServedTally
from orm.database import create_engine, database_url, get_engine
from orm.models import Base

__all__ = [
    "Runtime",
    "build_runtime",
    "get_runtime",
    "gunicorn_worker_exit",
    "reset_runtime",
    "shutdown",
    "use_runtime",
]

log = logging.getLogger("compat.runtime")


@dataclass(slots=True)
class Runtime:
    """What every facade call consults: flags, the observation dispatcher, the engine, knobs."""

    flags: FlagStore
    dispatcher: Dispatcher
    counters: CounterPublisher
    served: ServedTally = field(default_factory=ServedTally)
    """The calls each side served and how many raised (stored for the guard's orm rule)."""
    cache: ReadCache = field(default_factory=lambda: ReadCache("off"))
    """The read cache (docs/caching.md); it serves nothing unless a function's cache is set."""
    cache_settings: CacheSettings | None = None
    """Which functions are cached, and the audited changes (`compat cache`)."""
    raise_on_mismatch: bool = False
    """Raise MismatchError after a compared call whose paths disagree (for tests)."""
    candidate_timeout_ms: int = field(
        default_factory=lambda: layer_settings.current().candidate_timeout_ms
    )
    """The candidate's time budget: a statement timeout inside its savepoint."""
    drain_timeout_ms: int = field(default_factory=lambda: layer_settings.current().drain_timeout_ms)
    """How long close() (at exit, at compat.shutdown()) waits for queued observations."""
    own_engine: sa.Engine | None = None
    """This runtime's own engine; None: the process's (orm.database, which use_engine sets)."""
    listener: Listener | None = None
    """The process's one LISTEN connection (flag flips, cache invalidations); None: no push."""

    @property
    def engine(self) -> sa.Engine:
        """The engine every unit of work, flag read and publisher of this runtime uses."""
        return self.own_engine if self.own_engine is not None else get_engine()

    @property
    def dropped(self) -> int:
        """Observations this process made and could not store (also in ``counters``)."""
        return self.dispatcher.dropped

    def close(self, timeout: float | None = None) -> int:
        """Store what is still queued (up to ``timeout`` s, else the drain timeout), then close.

        What could not be stored in time is counted as dropped; returns the
        number of observations this runtime dropped in all.
        """
        wait = self.drain_timeout_ms / 1000 if timeout is None else timeout
        dropped = self.dispatcher.close(wait)
        if not self.served.close(wait):
            log.warning("compat: served-call counts of this process were not stored in time")
        self.flags.close()
        if self.listener is not None:
            self.listener.stop()
        if self.own_engine is not None:
            self.own_engine.dispose()
        return dropped


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
    the log and table publishers (the counters and the metrics are always kept),
    and the served-call counts are stored only with the default publishers;
    ``environ`` gives the flag store its own flag variables (tests);
    ``cache_backend`` overrides COMPAT_CACHE_BACKEND (``memory``, ``off``, a
    Redis URL).
    """
    if engine is None and settings is not None:
        engine = create_engine(
            database_url(settings.database), connect_timeout_s=settings.connect_timeout_s
        )
    knobs = settings or layer_settings.current()

    def engine_of() -> sa.Engine:
        return engine if engine is not None else get_engine()

    counters = CounterPublisher()
    chosen = [LogPublisher(), TablePublisher(engine_of)] if publishers is None else publishers
    # Whoever stores observations stores the count of those it could not.
    recorders = [p.record_drops for p in chosen if isinstance(p, TablePublisher)]
    # The process's runtime listens for flips; a test's (own environ) does not.
    push_flags = environ is None and knobs.flags_listen
    backend = knobs.cache_backend if cache_backend is None else cache_backend
    # Where LISTEN cannot work (COMPAT_FLAGS_LISTEN=0: a transaction-pooling PgBouncer)
    # nothing would tell the cache of a change: it stays off.
    # A test's runtime (its own environ) listens only when it asks for a cache backend:
    # its engine may be one connection (compat.session_state) that a listener would take.
    cache_listens = (
        backend != "off" and knobs.flags_listen and (environ is None or cache_backend is not None)
    )
    # One connection for every channel (compat.listening), none when nothing listens.
    listener = Listener(engine_of) if push_flags or cache_listens else None
    cache = ReadCache(
        backend,
        listener=listener if cache_listens else None,
        dependents=_cascades(),
        prefix=f"compat:{engine_of().url.database}" if backend not in ("memory", "off") else "",
    )
    return Runtime(
        flags=FlagStore(
            registry,
            environ=environ,
            ttl_seconds=ttl_seconds,
            engine=engine_of,
            listener=listener if push_flags else None,
            # A runtime built for other settings takes its flag knobs from them too.
            settings=settings if environ is None else None,
        ),
        dispatcher=Dispatcher(
            [*chosen, counters, MetricsPublisher()],
            on_drop=counters.count_dropped,
            record_drops=recorders[0] if recorders else None,
        ),
        counters=counters,
        served=ServedTally(engine_of if publishers is None else None),
        cache=cache,
        cache_settings=CacheSettings(registry, engine_of),
        raise_on_mismatch=raise_on_mismatch,
        candidate_timeout_ms=knobs.candidate_timeout_ms,
        drain_timeout_ms=knobs.drain_timeout_ms,
        own_engine=engine,
        listener=listener,
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


def shutdown(timeout: float | None = None) -> int:
    """Store the observations this process still holds, then close its runtime.

    Waits up to ``timeout`` seconds (default: ``COMPAT_DRAIN_TIMEOUT_MS``);
    what is still queued then is counted as dropped, and the count of dropped
    observations is stored for ``compat status``. Returns how many
    observations the process dropped. A facade call made afterwards builds a
    new runtime. Runs by itself at interpreter exit; call it where a process
    ends without one (``os._exit``, a pre-fork server's worker: see
    ``gunicorn_worker_exit``).
    """
    runtime = reset_runtime(None)
    if runtime is None:
        return 0
    return runtime.close(timeout)


def gunicorn_worker_exit(server: object, worker: object) -> None:
    """gunicorn's ``worker_exit`` hook: ``worker_exit = compat.gunicorn_worker_exit``."""
    shutdown()


def _at_exit() -> None:
    try:
        dropped = shutdown()
    except Exception:  # an exit must never fail because of the layer
        log.exception("compat: storing the last observations at exit failed")
        return
    if dropped:
        log.warning("compat: %d observations of this process were dropped (counted)", dropped)


# Registered at import, run at exit: closing a runtime that was never built does nothing.
atexit.register(_at_exit)


def _after_fork_in_child() -> None:
    runtime = _runtime
    if runtime is not None:
        runtime.flags.after_fork()
        runtime.dispatcher.after_fork()
        runtime.served.after_fork()
        runtime.cache.after_fork()
        if runtime.listener is not None:
            runtime.listener.after_fork()
        if runtime.own_engine is not None:
            # The parent's sockets are not ours: a new pool, the parent's left alone.
            runtime.own_engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)
