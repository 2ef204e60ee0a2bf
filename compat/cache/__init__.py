"""Compat layer: opt-in read caching, invalidated by every writer (see docs/caching.md)."""

from typing import Final

__all__ = ["CACHED_TABLES"]

CACHED_TABLES: Final = ("user_sessions", "uploaded_files")
"""The tables whose changes the 0005_cache triggers announce: only reads of these are cached."""
