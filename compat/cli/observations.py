"""Compat layer: `compat observations prune`: apply the documented retention of the observations."""

from __future__ import annotations

import argparse
from typing import TextIO

from compat.cli.output import EXIT_OK, where
from compat.runtime import get_runtime
from compat.shadow.stored import prune

__all__ = ["observations_prune"]


def observations_prune(args: argparse.Namespace, out: TextIO) -> int:
    """Keep --keep rows per key and --days of everything; say what went."""
    with get_runtime().engine.begin() as connection:
        pruned = prune(connection, keep=args.keep, days=args.days)
    out.write(
        f"database: {where()}; removed {pruned.rows} observation rows (beyond the newest "
        f"{args.keep} per key, or older than {args.days:g} days) and {pruned.rollups} "
        "per-minute counts older than that; no count changed\n"
    )
    return EXIT_OK
