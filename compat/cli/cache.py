"""Compat layer: `compat cache list|set|off|history`, the audited per-function read cache."""

from __future__ import annotations

import argparse
from typing import TextIO

from compat.cache.settings import CacheChange, CacheSettings
from compat.cli.output import EXIT_OK, table
from compat.runtime import get_runtime

__all__ = ["cache_history", "cache_list", "cache_off", "cache_set"]


def _settings() -> CacheSettings:
    settings = get_runtime().cache_settings
    assert settings is not None, "the runtime was built without cache settings"
    return settings


def _ttl(seconds: float | None) -> str:
    return "off" if seconds is None else f"{seconds:g} s"


def cache_list(args: argparse.Namespace, out: TextIO) -> int:
    """Every read function and its cache TTL (off unless set)."""
    settings = _settings()
    ttls = settings.ttls()
    table(
        [(key, _ttl(ttls.get(key))) for key in settings.cacheable()],
        ("key", "cache"),
        out,
    )
    backend = get_runtime().cache.backend
    if backend == "off":
        out.write("note: COMPAT_CACHE_BACKEND=off in this environment: nothing is cached here\n")
    return EXIT_OK


def _said(change: CacheChange, out: TextIO) -> None:
    out.write(
        f"{change.key}: cache {_ttl(change.old_ttl_seconds)} -> {_ttl(change.new_ttl_seconds)} "
        f"by {change.changed_by}: {change.reason}\n"
    )


def cache_set(args: argparse.Namespace, out: TextIO) -> int:
    """Cache one read function's results for up to --ttl seconds (audited)."""
    _said(_settings().set(args.key, args.ttl, reason=args.reason, by=args.by), out)
    return EXIT_OK


def cache_off(args: argparse.Namespace, out: TextIO) -> int:
    """Stop caching one read function (audited)."""
    _said(_settings().off(args.key, reason=args.reason, by=args.by), out)
    return EXIT_OK


def cache_history(args: argparse.Namespace, out: TextIO) -> int:
    """The audited cache changes, newest first."""
    changes = _settings().history(args.key, limit=args.limit)
    table(
        [
            (
                c.changed_at.isoformat(sep=" ", timespec="seconds"),
                c.key,
                f"{_ttl(c.old_ttl_seconds)} -> {_ttl(c.new_ttl_seconds)}",
                c.changed_by,
                c.reason,
            )
            for c in changes
        ],
        ("when (UTC)", "key", "change", "by", "reason"),
        out,
    )
    return EXIT_OK
