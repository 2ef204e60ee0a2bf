"""Compat layer: `compat mismatches`: the stored mismatches grouped by fingerprint."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from compat.cli.output import EXIT_OK, table, where
from compat.flags.modes import check_key
from compat.runtime import get_runtime
from compat.shadow.stored import mismatch_groups

__all__ = ["mismatches"]


def mismatches(args: argparse.Namespace, out: TextIO) -> int:
    """One line per fingerprint: count, key, fields, latest time; then the latest redacted diff."""
    runtime = get_runtime()
    if args.key is not None:
        check_key(args.key, runtime.flags.keys)
    with runtime.engine.connect() as connection:
        groups = mismatch_groups(connection, args.key)
    if args.json:
        json.dump([group.as_json() for group in groups], out, indent=2, ensure_ascii=False)
        out.write("\n")
        return EXIT_OK
    out.write(f"database: {where()}; {sum(g.count for g in groups)} stored mismatches\n")
    rows = [
        (
            group.fingerprint,
            group.count,
            group.key,
            group.latest_at.isoformat(sep=" ", timespec="seconds"),
            "; ".join([*group.latest_diff.splitlines(), *_raised(group.latest_candidate_error)]),
        )
        for group in groups
    ]
    table(rows, ("fingerprint", "count", "key", "latest (UTC)", "latest diff (redacted)"), out)
    return EXIT_OK


def _raised(error: str | None) -> list[str]:
    return [] if error is None else [f"candidate raised {error}"]
