"""Compat layer: opt-in read caching, invalidated by every writer (see docs/caching.md)."""

from typing import Final

__all__ = ["ANNOUNCED_KEYS", "CACHED_TABLES"]

ANNOUNCED_KEYS: Final = {"user_sessions": "uuid", "uploaded_files": "id"}
"""Per table whose changes the 0005_cache triggers announce, the column each payload names."""
CACHED_TABLES: Final = tuple(ANNOUNCED_KEYS)
"""Only reads of these tables can be cached."""
