"""Compat layer: `compat status`: modes and recent mismatches per function."""

from __future__ import annotations

import argparse
from typing import TextIO

import sqlalchemy as sa

from compat.cli.output import EXIT_OK, table, where
from compat.runtime import get_runtime

__all__ = ["status"]

# A fault (a side lost its connection) compared nothing: counted apart, never as a mismatch.
_STATUS = sa.text(
    "SELECT key, count(*) AS observations, "
    "count(*) FILTER (WHERE NOT matched AND fault IS NULL) AS mismatches, "
    "count(*) FILTER (WHERE fault IS NOT NULL) AS faults, "
    "max(observed_at) FILTER (WHERE NOT matched AND fault IS NULL) AS last_mismatch "
    "FROM compat_observations "
    "WHERE observed_at >= CURRENT_TIMESTAMP - :minutes * INTERVAL '1 minute' GROUP BY key"
)
_DROPPED = sa.text(
    "SELECT key, sum(dropped) AS dropped FROM compat_observation_drops "
    "WHERE recorded_at >= CURRENT_TIMESTAMP - :minutes * INTERVAL '1 minute' GROUP BY key"
)


def status(args: argparse.Namespace, out: TextIO) -> int:
    """Per key: mode, observations, mismatches, faults and drops in the window, last mismatch."""
    runtime = get_runtime()
    window = {"minutes": args.window}
    with runtime.engine.connect() as connection:
        seen = {row.key: row for row in connection.execute(_STATUS, window)}
        dropped = {row.key: int(row.dropped) for row in connection.execute(_DROPPED, window)}
    # The modes shown must be the table's: a failed read raises rather than show defaults.
    runtime.flags.refresh(strict=True)
    rows = []
    for state in runtime.flags.states():
        row = seen.get(state.key)
        rows.append(
            (
                state.key,
                state.mode.value,
                row.observations if row else 0,
                row.mismatches if row else 0,
                row.faults if row else 0,
                dropped.get(state.key, 0),
                row.last_mismatch.isoformat(sep=" ", timespec="seconds")
                if row and row.last_mismatch
                else "-",
            )
        )
    out.write(f"database: {where()}; window: last {args.window:g} minutes\n")
    table(
        rows,
        (
            "key",
            "mode",
            "observations",
            "mismatches",
            "faults",
            "dropped",
            "last mismatch (UTC)",
        ),
        out,
    )
    return EXIT_OK
