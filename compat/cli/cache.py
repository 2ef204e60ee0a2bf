"""Compat layer: `compat cache list|set|off|history`, the audited per-function read cache."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TextIO

from compat.cache.settings import CacheChange, CacheSettings
from compat.cli.output import EXIT_OK, printable, table
from compat.runtime import get_runtime

__all__ = ["cache_history", "cache_list", "cache_off", "cache_set"]


def _settings() -> CacheSettings:
    settings = get_runtime().cache_settings
    assert settings is not None, "the runtime was built without cache settings"
    return settings


def _ttl(seconds: float | None) -> str:
    return "off" if seconds is None else f"{seconds:g} s"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")


def cache_list(args: argparse.Namespace, out: TextIO) -> int:
    """Every read function that can be cached and its TTL (off unless set)."""
    settings = _settings()
    ttls = settings.ttls()
    table([(key, _ttl(ttls.get(key))) for key in settings.cacheable()], ("key", "cache"), out)
    cache = get_runtime().cache
    if cache.backend == "off":
        out.write("note: COMPAT_CACHE_BACKEND=off in this environment: nothing is cached here\n")
    elif not cache.enabled:
        out.write(
            "note: COMPAT_FLAGS_LISTEN=0 in this environment: nothing could tell this process "
            "of a change, so nothing is cached here\n"
        )
    return EXIT_OK


def _said(change: CacheChange, out: TextIO) -> None:
    out.write(
        f"{change.key}: cache {_ttl(change.old_ttl_seconds)} -> {_ttl(change.new_ttl_seconds)} "
        f"by {printable(change.changed_by)}: {printable(change.reason)}\n"
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
                _utc(c.changed_at),
                c.key,
                f"{_ttl(c.old_ttl_seconds)} -> {_ttl(c.new_ttl_seconds)}",
                printable(c.changed_by),
                printable(c.reason),
            )
            for c in changes
        ],
        ("when (UTC)", "key", "change", "by", "reason"),
        out,
    )
    return EXIT_OK
