"""Compat layer: `compat flags list|set|history`."""

from __future__ import annotations

import argparse
from typing import TextIO

from compat.cli.output import EXIT_OK, printable, table
from compat.runtime import get_runtime

__all__ = ["flags_history", "flags_list", "flags_set"]


def flags_list(args: argparse.Namespace, out: TextIO) -> int:
    """Every key, its effective mode, where that mode comes from, its sample rate."""
    store = get_runtime().flags
    # The store keeps serving the defaults when it cannot read the table; listing
    # them as the effective modes would mislead whoever decides the next flip.
    store.refresh(strict=True)
    states = store.states()
    table(
        [(s.key, s.mode.value, s.source, f"{s.sample_rate:g}") for s in states],
        ("key", "mode", "source", "sample"),
        out,
    )
    for problem in store.problems:
        out.write(f"warning: {problem} (ignored)\n")
    return EXIT_OK


def flags_set(args: argparse.Namespace, out: TextIO) -> int:
    """Set one flag in the shared table, with an audit row."""
    change = get_runtime().flags.set(
        args.key, args.mode, reason=args.reason, by=args.by, sample_rate=args.sample
    )
    out.write(
        f"{change.key}: {change.old_mode or 'legacy (default)'} -> {change.new_mode} "
        f"(sample {change.new_sample_rate:g}) by {printable(change.changed_by)}: "
        f"{printable(change.reason)}\n"
    )
    effective = next(s for s in get_runtime().flags.states() if s.key == change.key)
    if effective.source != "table":
        out.write(
            f"note: {change.key} is overridden by {effective.source} "
            f"(effective mode {effective.mode.value})\n"
        )
    return EXIT_OK


def flags_history(args: argparse.Namespace, out: TextIO) -> int:
    """The audited flag changes, newest first."""
    changes = get_runtime().flags.history(args.key, limit=args.limit)
    table(
        [
            (
                c.changed_at.isoformat(sep=" ", timespec="seconds"),
                c.key,
                f"{c.old_mode or '-'} -> {c.new_mode}",
                f"{c.new_sample_rate:g}",
                # Stored as given; shown with control characters escaped, long text cut.
                printable(c.changed_by),
                printable(c.reason),
            )
            for c in changes
        ],
        ("when (UTC)", "key", "change", "sample", "by", "reason"),
        out,
    )
    return EXIT_OK
