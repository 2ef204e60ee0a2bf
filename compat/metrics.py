"""Compat layer: the layer's Prometheus metrics as a scrape sees them: a WSGI app, a server, a hook.

Mount ``wsgi_app()`` at ``/metrics`` in the application, or run
``compat metrics --port N``. With PROMETHEUS_MULTIPROC_DIR set (gunicorn with
several workers), a scrape of any worker adds up every worker's files; give
gunicorn ``child_exit`` as its hook so a dead worker's mode gauge is dropped.
The instruments are in compat.shadow.metrics; docs/observability.md lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app, multiprocess

import layer_settings
from compat.runtime import get_runtime
from compat.shadow.metrics import REGISTRY, set_modes

__all__ = ["child_exit", "registry", "serve", "wsgi_app"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def registry(settings: layer_settings.Settings | None = None) -> CollectorRegistry:
    """What a scrape reads: every worker's files in multiprocess mode, else this process's."""
    directory = (settings or layer_settings.current()).metrics_dir
    if directory is None:
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined, path=directory)  # type: ignore[no-untyped-call]
    return combined


def wsgi_app(settings: layer_settings.Settings | None = None) -> WSGIApp:
    """A WSGI app serving the metrics in Prometheus's text format (mount it at /metrics).

    Each scrape first sets the mode gauge of every key from this process's
    flags, so a key no call has reached yet shows its mode too.
    """
    served = make_wsgi_app(registry(settings))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        set_modes((state.key, state.mode) for state in get_runtime().flags.states())
        result: Iterable[bytes] = served(environ, start_response)
        return result

    return app


def serve(port: int, host: str = "127.0.0.1") -> WSGIServer:
    """A server of ``wsgi_app()`` on ``host:port`` (not started: call serve_forever())."""
    return make_server(host, port, wsgi_app())


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's child_exit hook: forget a dead worker's live gauges (multiprocess mode)."""
    directory = layer_settings.current().metrics_dir
    if directory is not None:
        multiprocess.mark_process_dead(worker.pid, directory)  # type: ignore[no-untyped-call]
