"""Compat layer: which read functions are cached and for how long, and the audit of changes.

The settings live in ``compat_cache_settings`` (one row per cached function;
no row: not cached), changed only through ``set`` and ``off`` here (the
`compat cache` commands), each with an append-only ``compat_cache_audit`` row
in the same transaction.
"""

from __future__ import annotations

import getpass
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa

from compat.cache import CACHED_TABLES
from compat.errors import InvalidFlagValue, UnknownFlag
from compat.flags.store import MAX_BY_LENGTH, MAX_REASON_LENGTH

__all__ = ["MAX_TTL_SECONDS", "CacheChange", "CacheSettings", "read_settings"]

MAX_TTL_SECONDS: Final = 86400.0
_READ = "SELECT key, ttl_seconds FROM compat_cache_settings"


@dataclass(frozen=True, slots=True)
class CacheChange:
    """One audited change of a function's cache setting (a TTL of None: not cached)."""

    key: str
    old_ttl_seconds: float | None
    new_ttl_seconds: float | None
    changed_by: str
    reason: str
    changed_at: datetime


def read_settings(cursor: Any) -> dict[str, float]:
    """Every cached function's TTL, read with a DB-API cursor (on the listening connection)."""
    cursor.execute(_READ)
    return {key: float(ttl) for key, ttl in cursor.fetchall()}


class CacheSettings:
    """Reads and changes the cache settings; refuses keys that are not read functions.

    ``registry`` is the facade registry (each declaration's ``kind`` and ``reads``).
    """

    def __init__(self, registry: Mapping[str, Any], engine: Callable[[], sa.Engine]) -> None:
        self._registry = registry
        self._engine = engine

    def cacheable(self) -> list[str]:
        """The keys that may be cached: reads of tables whose changes are announced."""
        return sorted(key for key in self._registry if self._problem(key) is None)

    def _problem(self, key: str) -> str | None:
        spec = self._registry[key]
        if str(spec.kind) != "read":
            return f"{key} is a {spec.kind} ({spec.shape}); only read functions can be cached"
        unseen = [table for table in spec.reads if table not in CACHED_TABLES]
        if not spec.reads or unseen:
            return (
                f"{key} reads tables whose changes are not announced ({unseen or 'none named'}); "
                "it cannot be cached"
            )
        return None

    def check_cacheable(self, key: str) -> None:
        """Raise UnknownFlag or InvalidFlagValue (one line) unless ``key`` may be cached."""
        if key not in self._registry:
            raise UnknownFlag(f"unknown key {key!r}; `compat cache list` shows the read functions")
        problem = self._problem(key)
        if problem is not None:
            raise InvalidFlagValue(problem)

    def ttls(self) -> dict[str, float]:
        """Every cached function's TTL in seconds, from the table."""
        with self._engine().connect() as connection:
            rows = connection.execute(sa.text(_READ))
            return {row.key: float(row.ttl_seconds) for row in rows}

    def set(
        self, key: str, ttl_seconds: float, *, reason: str, by: str | None = None
    ) -> CacheChange:
        """Cache ``key``'s results for up to ``ttl_seconds`` (audited)."""
        self.check_cacheable(key)
        if not (math.isfinite(ttl_seconds) and 0 < ttl_seconds <= MAX_TTL_SECONDS):
            raise InvalidFlagValue(
                f"{key}: --ttl {ttl_seconds!r} is not allowed; give seconds, more than 0 and at "
                f"most {MAX_TTL_SECONDS:g}"
            )
        return self._change(key, float(ttl_seconds), reason, by)

    def off(self, key: str, *, reason: str, by: str | None = None) -> CacheChange:
        """Stop caching ``key`` (audited); its cached results are never served again."""
        self.check_cacheable(key)
        return self._change(key, None, reason, by)

    def _change(self, key: str, ttl: float | None, reason: str, by: str | None) -> CacheChange:
        if not reason or not reason.strip():
            raise InvalidFlagValue(f"{key}: a reason is required for every cache change")
        if len(reason.strip()) > MAX_REASON_LENGTH:
            raise InvalidFlagValue(
                f"{key}: --reason is {len(reason.strip())} characters; at most "
                f"{MAX_REASON_LENGTH} are kept in the audit, so shorten it"
            )
        if by is not None and (not by.strip() or len(by) > MAX_BY_LENGTH):
            raise InvalidFlagValue(f"{key}: --by must be a name of 1 to {MAX_BY_LENGTH} characters")
        who = by or _os_user()
        with self._engine().begin() as connection:
            old = connection.execute(
                sa.text(
                    "SELECT ttl_seconds FROM compat_cache_settings WHERE key = :key FOR UPDATE"
                ),
                {"key": key},
            ).scalar_one_or_none()
            if ttl is None:
                connection.execute(
                    sa.text("DELETE FROM compat_cache_settings WHERE key = :key"), {"key": key}
                )
            else:
                connection.execute(
                    sa.text(
                        "INSERT INTO compat_cache_settings (key, ttl_seconds, updated_by) "
                        "VALUES (:key, :ttl, :by) ON CONFLICT (key) DO UPDATE SET "
                        "ttl_seconds = EXCLUDED.ttl_seconds, updated_by = EXCLUDED.updated_by, "
                        "updated_at = CURRENT_TIMESTAMP"
                    ),
                    {"key": key, "ttl": ttl, "by": who},
                )
            changed_at = connection.execute(
                sa.text(
                    "INSERT INTO compat_cache_audit (key, old_ttl_seconds, new_ttl_seconds, "
                    "changed_by, reason) VALUES (:key, :old, :new, :by, :reason) "
                    "RETURNING changed_at"
                ),
                {"key": key, "old": old, "new": ttl, "by": who, "reason": reason.strip()},
            ).scalar_one()
        return CacheChange(
            key=key,
            old_ttl_seconds=None if old is None else float(old),
            new_ttl_seconds=ttl,
            changed_by=who,
            reason=reason.strip(),
            changed_at=changed_at,
        )

    def history(self, key: str | None = None, limit: int = 100) -> list[CacheChange]:
        """The audited changes, newest first; of one key when given."""
        query = (
            "SELECT key, old_ttl_seconds, new_ttl_seconds, changed_by, reason, changed_at "
            "FROM compat_cache_audit WHERE CAST(:key AS text) IS NULL OR key = :key "
            "ORDER BY changed_at DESC, id DESC LIMIT :limit"
        )
        with self._engine().connect() as connection:
            rows = connection.execute(sa.text(query), {"key": key, "limit": limit})
            return [CacheChange(**row._asdict()) for row in rows]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"
