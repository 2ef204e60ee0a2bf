"""Compat layer: the command line's exit statuses, tables and the database it names."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any, Final, TextIO

import sqlalchemy as sa

from compat.runtime import get_runtime

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "printable",
    "serve_until_interrupted",
    "table",
    "where",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE, as a shell reports a command whose reader went away (``| head``)."""

SHOWN_LENGTH: Final = 80
"""Audit text longer than this is cut in tables (stored whole)."""
# Control, format (bidi overrides, zero-width) and line/paragraph separators.
_HIDDEN: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})


def printable(text: str, limit: int = SHOWN_LENGTH) -> str:
    """``text`` safe for a terminal: control characters escaped (``\\x1b``), cut to ``limit``.

    A backslash is doubled, so that an escape shown always means a character
    that was stored, never one typed as two.
    """
    shown = []
    for char in text:
        if char == "\\":
            shown.append("\\\\")
        elif unicodedata.category(char) in _HIDDEN:
            shown.append(repr(char)[1:-1] if char.isascii() else f"\\u{ord(char):04x}")
        else:
            shown.append(char)
    result = "".join(shown)
    if len(result) > limit:
        return result[: limit - 3] + "..."
    return result


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


def serve_until_interrupted(server: Any, out: TextIO, what: str, path: str = "/") -> int:
    """Say where ``server`` listens, serve until Ctrl-C, close it: a sidecar's life (exit 0)."""
    host, port = server.server_address[:2]
    out.write(f"compat: {what} on http://{host!s}:{port}{path}\n")
    out.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # how a sidecar is stopped: not a failure
    finally:
        server.server_close()
    return EXIT_OK
