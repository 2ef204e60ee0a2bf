"""Compat layer: the read cache: opt-in per read function, on a dogpile.cache region.

What is stored is the pickled legacy-shaped value, so every hit is a new
object the caller may mutate. A key is the function, generations taken
before the read ran, and its arguments; see compat.cache.generations for
why that is enough for correctness. The generations of a read are its
tables' (``t:<table>``: any change to the table moves it on); those of a
point read by a row's announced key are its table's bulk counter
(``b:<table>``: a change whose rows are not known one by one) and its row's
bucket (``r:<table>:<n>``, one of ``BUCKETS`` by a stable hash of the key:
a collision only costs a miss). The cache serves nothing until the
process's listener is listening, and nothing while it is disconnected.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from dogpile.cache import make_region
from dogpile.cache.region import CacheRegion
from dogpile.cache.util import sha1_mangle_key

from compat.cache import ANNOUNCED_KEYS, CHANNEL
from compat.cache.generations import Generations, LocalGenerations, RedisGenerations
from compat.cache.listener import CacheSubscriber
from compat.listening import Listener

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
_RETRY_SECONDS: Final = 1.0
"""How often a cache whose backend failed tries to clear it and serve again."""


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

    ``listener`` is the process's listening connection (compat.listening): the
    cache subscribes to its channel and serves nothing while it does not
    listen; without one (``off``, or COMPAT_FLAGS_LISTEN=0: nothing could
    tell it of a change) it never serves. ``dependents`` maps a table to the
    tables a delete of its rows may change too (foreign keys with ON DELETE
    CASCADE); ``prefix`` keeps two databases apart in a shared Redis.
    """

    def __init__(
        self,
        backend: str,
        *,
        listener: Listener | None = None,
        dependents: Mapping[str, tuple[str, ...]] | None = None,
        prefix: str = "compat",
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.backend = backend
        self.stats = CacheStats()
        self._dependents = dict(dependents or {})
        self._ttls: dict[str, float] = {}
        self._listening = False
        """Serving from the cache: listening, and every change since recorded."""
        self._connected = False
        self._retry_at = 0.0
        self._ready = threading.Event()
        self._warned_backend = False
        self._max_entries = max_entries
        self._memory: _Bounded | None = None
        self._region: CacheRegion | None = None
        self._generations: Generations = LocalGenerations()
        self._listener = None if backend == "off" else listener
        if self._listener is None:
            return
        self._listener.subscribe(CHANNEL, CacheSubscriber(self))
        if backend == "memory":
            self._memory, self._region = _memory_region(max_entries)
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

    @property
    def enabled(self) -> bool:
        """Whether this cache may ever serve (a backend, and a listener to hear changes)."""
        return self._region is not None

    def ttl_of(self, key: str) -> float | None:
        """How long ``key``'s results may be served from the cache; None: not now.

        The first call starts the listener; until it listens, nothing is cached.
        """
        if not self._listening:
            listener = self._listener
            if listener is not None:
                if not listener.started:
                    listener.start()
                elif self._connected and time.monotonic() >= self._retry_at:
                    # Listening, but the backend failed: clear it and serve again when it can.
                    self._retry_at = time.monotonic() + _RETRY_SECONDS
                    self._resync()
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

        On a miss, dogpile's per-key lock lets one caller load while the
        others of this process wait for its value. ``row``: the call reads
        that one row (a point read by its key).
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
        except Exception as error:  # a backend failure never fails the call
            self._backend_failed(error)
            return load()
        cache_key = f"{key}|{generations}|{_arguments_key(arguments)}"
        loaded: list[Any] = []
        ran = False

        def create() -> Any:
            nonlocal ran
            ran = True
            value = load()
            loaded.append(value)
            return value

        try:
            found = region.get_or_create(
                cache_key,
                create,
                expiration_time=ttl,
                should_cache_fn=lambda _value: store and self._listening,
            )
        except Exception as error:
            if loaded:  # loaded, then the backend failed to store it
                self._backend_failed(error)
                return loaded[0]
            if ran:  # the read itself failed: the caller gets its error
                raise
            self._backend_failed(error)
            return load()
        if ran:
            self.stats.misses += 1
            # The value as loaded, not a copy: nobody else holds it.
            return loaded[0]
        self.stats.hits += 1
        return found

    def written(self, changes: Iterable[Change]) -> None:
        """A facade write that may have changed these rows ended: its process sees it at once."""
        if not self._listening:
            # Nothing is served until the listener is back, and then everything is cleared.
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

    # -- what the listener says (on its thread) ------------------------------

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

    def lost(self, reason: str) -> None:
        self._connected = False
        self._listening = False
        self._ready.clear()
        self.stats.lost += 1
        # What is held locally is never served again (a reconnect clears it all anyway).
        if self._memory is not None:
            self._memory.clear()

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
        """Start the listener if needed and wait until the cache serves; False on timeout."""
        listener = self._listener
        if self._region is None or listener is None:
            return False
        listener.start()
        return self._ready.wait(timeout)

    @property
    def listening(self) -> bool:
        """Whether cached values may be served now."""
        return self._listening

    def after_fork(self) -> None:
        """In a forked child: an empty cache that serves nothing until its own listener listens.

        The runtime hands the listener a connection of the child's own
        (compat.listening.Listener.after_fork).
        """
        self._listening = False
        self._connected = False
        self._ready = threading.Event()
        if self._memory is not None:
            self._memory, self._region = _memory_region(self._max_entries)

    # -- inside --------------------------------------------------------------

    def _bump(self, counters: list[str]) -> None:
        self.stats.invalidations += 1
        try:
            self._generations.bump(dict.fromkeys(counters))
        except Exception as error:
            # A change this process could not record must not leave old entries findable:
            # bypass until a clear succeeds (ttl_of retries it).
            self._backend_failed(error)
            self._listening = False
            self._ready.clear()
            self._retry_at = time.monotonic() + _RETRY_SECONDS

    def _clear(self) -> bool:
        if self._memory is not None:
            self._memory.clear()
        try:
            self._generations.bump_all()
        except Exception as error:
            self._backend_failed(error)
            return False
        self._warned_backend = False  # the next failure is logged again
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


def _memory_region(max_entries: int) -> tuple[_Bounded, CacheRegion]:
    memory = _Bounded(max_entries)
    # memory_pickle: a hit is unpickled anew, never the object another caller holds.
    region = make_region().configure(
        "dogpile.cache.memory_pickle", arguments={"cache_dict": memory}
    )
    return memory, region


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
