"""Compat layer: `compat metrics`: serve the layer's Prometheus metrics over HTTP."""

from __future__ import annotations

import argparse
from typing import TextIO

from compat import metrics
from compat.cli.output import serve_until_interrupted

__all__ = ["serve_metrics"]


def serve_metrics(args: argparse.Namespace, out: TextIO) -> int:
    """Serve /metrics on --host:--port until interrupted."""
    return serve_until_interrupted(metrics.serve(args.port, args.host), out, "metrics", "/metrics")
