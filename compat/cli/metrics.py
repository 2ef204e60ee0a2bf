"""Compat layer: `compat metrics`: serve the layer's Prometheus metrics over HTTP."""

from __future__ import annotations

import argparse
from typing import TextIO

from compat import metrics
from compat.cli.output import EXIT_OK

__all__ = ["serve_metrics"]


def serve_metrics(args: argparse.Namespace, out: TextIO) -> int:
    """Serve /metrics on --host:--port until interrupted."""
    server = metrics.serve(args.port, args.host)
    host, port = server.server_address[:2]
    out.write(f"compat: metrics on http://{host!s}:{port}/metrics\n")
    out.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK
