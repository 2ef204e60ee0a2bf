"""Compat layer: the read cache's channel on the process's shared listener (compat.listening).

The 0008_cache triggers send ``NOTIFY compat_cache, '<table>:<key>'`` for
every row changed by anyone, and ``compat_cache_settings:<key>`` for a
settings change. This subscriber turns what the listener hears into the
cache's terms: the rows that changed, the settings as read again on the
listening connection, and the moments the connection is (again) listening
or lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import psycopg2.errors

from compat.cache import SETTINGS_TABLE
from compat.cache.settings import read_settings

__all__ = ["CacheEvents", "CacheSubscriber"]


class CacheEvents(Protocol):
    """What the subscriber tells the cache (compat.cache.region.ReadCache)."""

    def ready(self, settings: dict[str, float]) -> None:
        """Listening (again): nothing heard before counts; these are the settings."""

    def changed(self, rows: set[tuple[str, str]]) -> None:
        """These rows changed, and the changes are committed: (table, key; ``*``: every row)."""

    def settings(self, settings: dict[str, float]) -> None:
        """The settings as just read."""

    def lost(self, reason: str) -> None:
        """The connection is gone: notifications may be missed from now on."""


class CacheSubscriber:
    """Hands ``compat_cache`` notifications to the cache."""

    def __init__(self, events: CacheEvents) -> None:
        self._events = events

    def listening(self, connection: Any) -> None:
        # The listener LISTENs before it calls this: a change from now on is heard.
        self._events.ready(_read(connection))

    def notified(self, payloads: Sequence[str], connection: Any) -> None:
        rows: set[tuple[str, str]] = set()
        reread = False
        for payload in payloads:
            table, _, key = payload.partition(":")
            if table == SETTINGS_TABLE:
                reread = True
            else:
                rows.add((table, key))
        if rows:
            self._events.changed(rows)
        if reread:
            self._events.settings(_read(connection))

    def lost(self, reason: str) -> None:
        self._events.lost(reason)


def _read(connection: Any) -> dict[str, float]:
    with connection.cursor() as cursor:
        try:
            return read_settings(cursor)
        except psycopg2.errors.UndefinedTable:
            # Not migrated to 0008_cache yet: nothing is cached, changes are still heard.
            return {}
