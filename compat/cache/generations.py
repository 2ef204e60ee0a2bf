"""Compat layer: generation counters, the part of every cache key a change moves on.

A cached entry's key carries the generations of what its read depends on,
taken *before* the read ran: the tables it reads, or for a point read its
table's bulk counter and its row's bucket. Any change moves the counters
it affects on, so the entry is never found again, including an entry stored
after the change by a read that began before it (the classic
read-then-invalidate-then-store race). Counters are named by the cache
(compat.cache.region); besides them there is one epoch, moved on to clear.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["Generations", "LocalGenerations", "RedisGenerations"]


class Generations(Protocol):
    """Where the counters live: this process, or the Redis every process shares."""

    def current(self, names: Iterable[str]) -> str:
        """The counters ``names`` (and the epoch), as a key fragment."""
        ...

    def bump(self, names: Iterable[str]) -> None:
        """Move the counters on: every entry keyed by their old values is unreachable."""
        ...

    def bump_all(self) -> None:
        """Move the epoch on: every entry is unreachable (the cache is cleared)."""
        ...


class LocalGenerations:
    """Counters in this process: for the memory backend, whose entries are this process's too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch = 0
        self._counters: dict[str, int] = {}

    def current(self, names: Iterable[str]) -> str:
        got = self._counters.get
        return ".".join([str(self._epoch), *(str(got(name, 0)) for name in names)])

    def bump(self, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                self._counters[name] = self._counters.get(name, 0) + 1

    def bump_all(self) -> None:
        with self._lock:
            self._epoch += 1


class RedisGenerations:
    """Counters in Redis, shared with every process, read from Redis on every cached read.

    Each process moves a counter on (``INCR``) when it hears of a change, so a
    change moves it on once per process: more misses, never a stale hit. A
    read takes the counters from Redis (one ``MGET``), so the first process to
    hear of a change invalidates it for all of them, and every process agrees
    on the key of a fresh entry.
    """

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def _name(self, name: str) -> str:
        return f"{self._prefix}:gen:{name}"

    def current(self, names: Iterable[str]) -> str:
        keys = [self._name("epoch"), *(self._name(name) for name in names)]
        return ".".join((value or b"0").decode() for value in self._client.mget(keys))

    def bump(self, names: Iterable[str]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for name in dict.fromkeys(names):
            pipe.incr(self._name(name))
        pipe.execute()

    def bump_all(self) -> None:
        self._client.incr(self._name("epoch"))
