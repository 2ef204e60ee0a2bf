"""Compat layer: opt-in read caching, invalidated by every writer (see docs/caching.md)."""
