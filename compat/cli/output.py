"""Compat layer: the command line's exit statuses, tables and the database it names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

import sqlalchemy as sa

from compat.runtime import get_runtime

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "table",
    "where",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130


def table(rows: Sequence[Sequence[object]], header: Sequence[str], out: TextIO) -> None:
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        out.write("\n")
        if index == 0:
            out.write("  ".join("-" * width for width in widths) + "\n")


def where() -> str:
    try:
        return get_runtime().engine.url.render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        # Called while reporting an error: never raise again, never echo the raw URL.
        return "DATABASE_URL (which cannot be parsed)"
