"""Compat layer: `compat dashboard`: serve the read-only migration page."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from compat import dashboard
from compat.cli.output import EXIT_USAGE, serve_until_interrupted

__all__ = ["serve_dashboard"]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def serve_dashboard(args: argparse.Namespace, out: TextIO) -> int:
    """Serve the page on --host:--port until interrupted; loopback unless told otherwise."""
    if args.host not in _LOOPBACK and not args.behind_authenticating_proxy:
        sys.stderr.write(
            f"compat: refusing to serve the dashboard on {args.host}: it has no login of its "
            "own. Put it behind a proxy that authenticates, then pass "
            "--behind-authenticating-proxy\n"
        )
        return EXIT_USAGE
    return serve_until_interrupted(
        dashboard.serve(args.port, args.host), out, "dashboard (read-only)"
    )
