"""Compat layer: `compat status`: modes and recent mismatches per function."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

import sqlalchemy as sa

from compat.cli.output import EXIT_OK, table, where
from compat.runtime import get_runtime

__all__ = ["status"]

_STATUS = sa.text(
    "SELECT key, count(*) AS observations, count(*) FILTER (WHERE NOT matched) AS mismatches, "
    "max(observed_at) FILTER (WHERE NOT matched) AS last_mismatch "
    "FROM compat_observations "
    "WHERE observed_at >= CURRENT_TIMESTAMP - :minutes * INTERVAL '1 minute' GROUP BY key"
)


def status(args: argparse.Namespace, out: TextIO) -> int:
    """Per key: mode, observations and mismatches in the window, last mismatch time."""
    with get_runtime().engine.connect() as connection:
        seen = {row.key: row for row in connection.execute(_STATUS, {"minutes": args.window})}
    states = get_runtime().flags.states()
    if args.json:
        json.dump(
            {
                "database": where(),
                "window_minutes": args.window,
                "functions": [
                    {
                        "key": state.key,
                        "mode": state.mode.value,
                        "sample_rate": state.sample_rate,
                        "source": state.source,
                        "observations": row.observations if row else 0,
                        "mismatches": row.mismatches if row else 0,
                        "last_mismatch": row.last_mismatch.isoformat(timespec="seconds")
                        if row and row.last_mismatch
                        else None,
                    }
                    for state in states
                    for row in (seen.get(state.key),)
                ],
            },
            out,
            indent=2,
        )
        out.write("\n")
        return EXIT_OK
    rows = []
    for state in states:
        row = seen.get(state.key)
        rows.append(
            (
                state.key,
                state.mode.value,
                row.observations if row else 0,
                row.mismatches if row else 0,
                row.last_mismatch.isoformat(sep=" ", timespec="seconds")
                if row and row.last_mismatch
                else "-",
            )
        )
    out.write(f"database: {where()}; window: last {args.window:g} minutes\n")
    table(rows, ("key", "mode", "observations", "mismatches", "last mismatch (UTC)"), out)
    return EXIT_OK
