"""Compat layer: `compat dashboard`: serve the read-only migration page."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from compat import dashboard
from compat.cli.output import EXIT_OK, EXIT_USAGE

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
    server = dashboard.serve(args.port, args.host)
    host, port = server.server_address[:2]
    out.write(f"compat: dashboard on http://{host!s}:{port}/ (read-only)\n")
    out.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK
