"""Compat layer: opt-in read caching, invalidated by every writer (see docs/caching.md)."""

from typing import Final

__all__ = ["ANNOUNCED_KEYS", "CACHED_TABLES", "CHANNEL", "SETTINGS_TABLE"]

ANNOUNCED_KEYS: Final = {"user_sessions": "uuid", "uploaded_files": "id"}
"""Per table whose changes the 0008_cache triggers announce, the column each payload names."""
CACHED_TABLES: Final = tuple(ANNOUNCED_KEYS)
"""Only reads of these tables can be cached."""
CHANNEL: Final = "compat_cache"
"""What the triggers NOTIFY: ``<table>:<key>``, ``<table>:*`` for a TRUNCATE."""
SETTINGS_TABLE: Final = "compat_cache_settings"
"""Its trigger announces a settings change on the same channel."""
