"""Compat layer: `compat status`: modes, compared calls, mismatches, faults and drops."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

import sqlalchemy as sa

from compat.cli.output import EXIT_OK, table, where
from compat.runtime import get_runtime
from compat.shadow.stored import counts, last_mismatches

__all__ = ["status"]

# A fault (a side lost its connection) compared nothing: counted apart, never as a mismatch.
_FAULTS = sa.text(
    "SELECT key, count(*) AS faults FROM compat_observations WHERE fault IS NOT NULL "
    "AND observed_at >= CURRENT_TIMESTAMP - :minutes * INTERVAL '1 minute' GROUP BY key"
)
_DROPPED = sa.text(
    "SELECT key, sum(dropped) AS dropped FROM compat_observation_drops "
    "WHERE recorded_at >= CURRENT_TIMESTAMP - :minutes * INTERVAL '1 minute' GROUP BY key"
)


@dataclass(frozen=True, slots=True)
class _Seen:
    observations: int = 0
    mismatches: int = 0
    last_mismatch: datetime | None = None


def status(args: argparse.Namespace, out: TextIO) -> int:
    """Per key: mode, compared calls, mismatches, faults and drops in the window, last mismatch."""
    runtime = get_runtime()
    window = {"minutes": args.window}
    with runtime.engine.connect() as connection:
        seen: dict[str, _Seen] = {}
        for found in counts(connection, args.window).values():
            before = seen.get(found.key, _Seen())
            seen[found.key] = _Seen(
                before.observations + found.compared, before.mismatches + found.mismatches
            )
        for key, at in last_mismatches(connection, args.window).items():
            before = seen.get(key, _Seen())
            seen[key] = _Seen(before.observations, before.mismatches, at)
        faults = {row.key: int(row.faults) for row in connection.execute(_FAULTS, window)}
        dropped = {row.key: int(row.dropped) for row in connection.execute(_DROPPED, window)}
    # The modes shown must be the table's: a failed read raises rather than show defaults.
    runtime.flags.refresh(strict=True)
    states = runtime.flags.states()
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
                        "faults": faults.get(state.key, 0),
                        "dropped": dropped.get(state.key, 0),
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
                faults.get(state.key, 0),
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
