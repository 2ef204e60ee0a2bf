"""Compat layer: the read cache: opt-in per read function, on a dogpile.cache region.

What is stored is the pickled legacy-shaped value, so every hit is a new
object the caller may mutate. A key is the function, generations taken
before the read ran, and its arguments; see compat.cache.generations for
why that is enough for correctness. The generations of a read are its
tables' (``t:<table>``: any change to the table moves it on); those of a
point read by a row's announced key are its table's bulk counter
(``b:<table>``: a change whose rows are not known one by one) and its row's
bucket (``r:<table>:<n>``, one of ``BUCKETS`` by a stable hash of the key:
a collision only costs a miss). The cache serves nothing until its
listener is listening, and nothing while the listener is disconnected.
"""

from __future__ import annotations

import logging
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from dogpile.cache import make_region
from dogpile.cache.api import NO_VALUE
from dogpile.cache.region import CacheRegion
from dogpile.cache.util import sha1_mangle_key

from compat.cache import ANNOUNCED_KEYS
from compat.cache.generations import Generations, LocalGenerations, RedisGenerations
from compat.cache.listener import Listener

__all__ = ["BUCKETS", "MAX_ENTRIES", "CacheStats", "Change", "ReadCache"]

log = logging.getLogger("compat.cache")

MAX_ENTRIES: Final = 100_000
"""The memory backend's bound: beyond it the oldest entry goes (entries of old generations
are never found again, so without a bound they would pile up)."""


class _Bounded(dict[Any, Any]):
    """A dict that forgets its oldest entry when it grows past ``limit`` (memory backend)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._lock = threading.Lock()

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            super().__setitem__(key, value)
            while len(self) > self._limit:
                super().pop(next(iter(self)), None)

    def clear(self) -> None:
        with self._lock:
            super().clear()


BUCKETS: Final = 4096
"""Row buckets per table: bounded counters, whatever the number of rows."""


@dataclass(frozen=True, slots=True)
class Change:
    """Rows a write may change, or a point read reads: ``table`` rows whose ``column`` is
    ``value`` (a facade argument); no column: any rows of the table."""

    table: str
    column: str | None = None
    value: Any = None
    deletes: bool = False
    """The write may delete rows, and so the rows an ON DELETE CASCADE reaches."""


@dataclass(slots=True)
class CacheStats:
    """How the cached reads went in this process (read by the bench and the tests)."""

    hits: int = 0
    misses: int = 0
    bypassed: int = 0
    """Calls of a cached function served without the cache (not listening, or in a unit)."""
    invalidations: int = 0
    """Table changes heard (notifications and facade writes)."""
    lost: int = 0
    """Times the listening connection was lost."""


class ReadCache:
    """The process's read cache. ``backend`` is ``memory``, ``off`` or a Redis URL.

    ``dsn`` gives the listener its connection string, ``tables`` are the
    cached tables (what ``bump_all`` moves on), ``dependents`` maps a table to
    the tables a change to it may change too (foreign keys with ON DELETE
    CASCADE), ``prefix`` keeps two databases apart in a shared Redis.
    """

    def __init__(
        self,
        backend: str,
        *,
        dsn: Callable[[], str],
        tables: Iterable[str] = (),
        dependents: Mapping[str, tuple[str, ...]] | None = None,
        prefix: str = "compat",
        refresh_seconds: float = 5.0,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.backend = backend
        self.stats = CacheStats()
        self._dsn = dsn
        self._tables = tuple(tables)
        self._dependents = dict(dependents or {})
        self._refresh = refresh_seconds
        self._lock = threading.Lock()
        self._ttls: dict[str, float] = {}
        self._listening = False
        """Serving from the cache: listening, and every change since recorded."""
        self._connected = False
        self._listener: Listener | None = None
        self._ready = threading.Event()
        self._warned_backend = False
        self._memory: _Bounded | None = None
        self._region: CacheRegion | None = None
        self._generations: Generations = LocalGenerations()
        if backend == "off":
            return
        if backend == "memory":
            self._max_entries = max_entries
            self._memory = _Bounded(max_entries)
            # memory_pickle: a hit is unpickled anew, never the object another caller holds.
            self._region = make_region().configure(
                "dogpile.cache.memory_pickle", arguments={"cache_dict": self._memory}
            )
            return
        import redis  # the optional extra: imported only when asked for

        client = redis.Redis.from_url(backend, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._generations = RedisGenerations(client, prefix)
        self._region = make_region(key_mangler=lambda key: f"{prefix}:" + sha1_mangle_key(key))
        self._region.configure(
            "dogpile.cache.redis",
            arguments={
                "connection_pool": client.connection_pool,
                # A backstop only: freshness is the TTL check on read; old generations age out.
                "redis_expiration_time": 86400 + 60,
            },
        )

    # -- the call path ---------------------------------------------------

    def ttl_of(self, key: str) -> float | None:
        """How long ``key``'s results may be served from the cache; None: not now.

        The first call starts the listener; until it listens, nothing is cached.
        """
        if not self._listening:
            if self._region is not None and self._listener is None:
                self._start()
            return None
        return self._ttls.get(key)

    def read(
        self,
        key: str,
        tables: tuple[str, ...],
        arguments: Mapping[str, Any],
        ttl: float,
        load: Callable[[], Any],
        *,
        store: bool = True,
        row: Change | None = None,
    ) -> Any:
        """The cached value of this call, or ``load()``'s (stored when ``store``).

        ``row``: the call reads that one row (a point read by its key).
        """
        region = self._region
        assert region is not None
        bucket = None if row is None else _bucket(row)
        if bucket is None:
            counters = [f"t:{table}" for table in tables]
        else:
            counters = [f"b:{bucket[0]}", f"r:{bucket[0]}:{bucket[1]}"]
        try:
            # Taken before the read runs: a change during it makes what it stores unreachable.
            generations = self._generations.current(counters)
            cache_key = f"{key}|{generations}|{_arguments_key(arguments)}"
            found = region.get(cache_key, expiration_time=ttl)
        except Exception as error:  # a backend failure never fails the call
            self._backend_failed(error)
            return load()
        if found is not NO_VALUE:
            self.stats.hits += 1
            return found
        self.stats.misses += 1
        value = load()
        if store and self._listening:
            try:
                region.set(cache_key, value)
            except Exception as error:
                self._backend_failed(error)
        return value

    def written(self, changes: Iterable[Change]) -> None:
        """A facade write that may have changed these rows ended: its process sees it at once."""
        if self._region is None:
            return
        counters: list[str] = []
        for change in changes:
            bucket = _bucket(change)
            table = change.table
            counters += [
                f"t:{table}",
                f"b:{table}" if bucket is None else f"r:{bucket[0]}:{bucket[1]}",
            ]
            if change.deletes:
                # The rows a delete cascades to are not known one by one.
                for child in self._dependents.get(table, ()):
                    counters += [f"t:{child}", f"b:{child}"]
        self._bump(counters)

    # -- what the listener says ------------------------------------------

    def ready(self, settings: dict[str, float]) -> None:
        self._ttls = settings
        self._connected = True
        self._resync()

    def changed(self, rows: set[tuple[str, str]]) -> None:
        counters: list[str] = []
        for table, key in rows:
            # The trigger announces cascaded rows itself: no dependents needed here.
            bucket = None if key == "*" else zlib.crc32(key.encode()) % BUCKETS
            counters += [f"t:{table}", f"b:{table}" if bucket is None else f"r:{table}:{bucket}"]
        self._bump(counters)

    def settings(self, settings: dict[str, float]) -> None:
        self._ttls = settings
        if self._connected and not self._listening:
            self._resync()  # a backend failure made the cache stop; try again

    def lost(self, reason: str) -> None:
        self._connected = False
        self._listening = False
        self._ready.clear()
        self.stats.lost += 1
        self._clear()

    def _resync(self) -> None:
        # Whatever changed while nobody listened is unknown: start from nothing.
        if self._clear():
            self._listening = True
            self._ready.set()

    # -- lifecycle ---------------------------------------------------------

    def clear(self) -> None:
        """Drop every cached value of this process (with Redis, of every process)."""
        self._clear()

    def wait_ready(self, timeout: float) -> bool:
        """Start the listener if needed and wait until it listens; False on timeout."""
        if self._region is None:
            return False
        if self._listener is None:
            self._start()
        return self._ready.wait(timeout)

    def listener_dsn(self) -> str:
        """The connection string the listener connects with (libpq keywords)."""
        return self._dsn()

    @property
    def listening(self) -> bool:
        return self._listening

    @property
    def listener_pid(self) -> int | None:
        """The listening session's server pid, when connected."""
        return None if self._listener is None else self._listener.backend_pid

    def close(self) -> None:
        listener, self._listener = self._listener, None
        self._listening = False
        if listener is not None:
            listener.stop()

    def after_fork(self) -> None:
        """In a forked child: listen on a connection of its own, from an empty cache."""
        if self._listener is not None:
            self._listener.abandon()
        self._listener = None
        self._listening = False
        self._connected = False
        self._lock = threading.Lock()
        self._ready = threading.Event()
        if self._memory is not None:
            self._memory = _Bounded(self._max_entries)
            region = make_region().configure(
                "dogpile.cache.memory_pickle", arguments={"cache_dict": self._memory}
            )
            self._region = region

    # -- inside --------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = Listener(self._dsn, self, self._refresh)
            self._listener = listener
        listener.start()

    def _bump(self, counters: list[str]) -> None:
        self.stats.invalidations += 1
        try:
            self._generations.bump(dict.fromkeys(counters))
        except Exception as error:
            # A change this process could not record must not leave old entries findable:
            # bypass until the listener's next settings read records a clear.
            self._backend_failed(error)
            self._listening = False
            self._ready.clear()

    def _clear(self) -> bool:
        if self._memory is not None:
            self._memory.clear()
        try:
            self._generations.bump_all()
        except Exception as error:
            self._backend_failed(error)
            return False
        return True

    def _backend_failed(self, error: Exception) -> None:
        if not self._warned_backend:
            self._warned_backend = True
            log.warning(
                "compat cache: the %s backend failed (%s: %s); reads go to the database",
                "redis" if self._memory is None else "memory",
                type(error).__name__,
                next(iter(str(error).splitlines()), ""),
            )


def _bucket(change: Change) -> tuple[str, int] | None:
    """The table and bucket of the one row ``change`` names by its announced key, if it does.

    The key is spelled as the trigger spells it (``uuid::text``, ``bigint::text``); a value
    that cannot be (the validators let no such value through) names no row: the table's
    counters apply instead, which is always correct.
    """
    if change.column is None or change.column != ANNOUNCED_KEYS.get(change.table):
        return None
    try:
        if change.column == "uuid":
            key = str(uuid.UUID(str(change.value)))
        elif isinstance(change.value, int) and not isinstance(change.value, bool):
            key = str(change.value)
        else:
            return None
    except (ValueError, TypeError, AttributeError):
        return None
    return change.table, zlib.crc32(key.encode()) % BUCKETS


def _arguments_key(arguments: Mapping[str, Any]) -> str:
    # repr is exact for the argument types the validators admit (str, int, bool, None,
    # datetime, dicts of them) and tells "1" from 1.
    return repr(sorted(arguments.items()))
