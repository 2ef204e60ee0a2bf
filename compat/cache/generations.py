"""Compat layer: per-table generation counters, the part of every cache key a change moves on.

A cached entry's key carries the generations of the tables its read came
from, taken *before* the read ran. Any change to one of those tables moves
its generation on, so the entry is never found again, including an entry
stored after the change by a read that began before it (the classic
read-then-invalidate-then-store race).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["Generations", "LocalGenerations", "RedisGenerations"]


class Generations(Protocol):
    """Where the counters live: this process, or the Redis every process shares."""

    def current(self, tables: Iterable[str]) -> str:
        """The generations of ``tables`` (and of the whole cache), as a key fragment."""
        ...

    def bump(self, tables: Iterable[str]) -> None:
        """Move the tables on: every entry read from them before is unreachable."""
        ...

    def bump_all(self) -> None:
        """Move every table on (the cache is cleared)."""
        ...


class LocalGenerations:
    """Counters in this process: for the memory backend, whose entries are this process's too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch = 0
        self._tables: dict[str, int] = {}

    def current(self, tables: Iterable[str]) -> str:
        got = self._tables.get
        return ".".join([str(self._epoch), *(str(got(table, 0)) for table in tables)])

    def bump(self, tables: Iterable[str]) -> None:
        with self._lock:
            for table in tables:
                self._tables[table] = self._tables.get(table, 0) + 1

    def bump_all(self) -> None:
        with self._lock:
            self._epoch += 1


class RedisGenerations:
    """Counters in Redis, shared with every process, read from Redis on every cached read.

    Each process moves a table on (``INCR``) when it hears of a change, so a
    change moves it on once per process: more misses, never a stale hit. A
    read takes the counters from Redis (one ``MGET``), so the first process to
    hear of a change invalidates it for all of them, and every process agrees
    on the key of a fresh entry.
    """

    def __init__(self, client: Any, prefix: str, tables: Iterable[str]) -> None:
        self._client = client
        self._prefix = prefix
        self._tables = tuple(tables)

    def _name(self, table: str) -> str:
        return f"{self._prefix}:gen:{table}"

    def current(self, tables: Iterable[str]) -> str:
        names = [self._name(table) for table in tables]
        values = self._client.mget(names) if names else []
        return ".".join((value or b"0").decode() for value in values)

    def bump(self, tables: Iterable[str]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for table in dict.fromkeys(tables):
            pipe.incr(self._name(table))
        pipe.execute()

    def bump_all(self) -> None:
        self.bump(self._tables)
