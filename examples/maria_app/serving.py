"""Example application: gunicorn's server hooks, what each worker process does at its edges.

After the fork the data layer needs nothing: its ``os.register_at_fork``
handlers drop the engine's pool inherited from the master (without closing
the master's connections) and restart the flag refresher and the observation
publisher, so a worker builds its own on first use, ``--preload`` or not. The
``post_fork`` hook only names the worker's connections (libpq's
``PGAPPNAME``), so that ``pg_stat_activity`` tells which worker holds which.
On exit a worker hands the observations still queued to the publishers and
closes its pooled connections, so that a restart loses no comparison and
leaves no backend waiting for a timeout.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Final

from compat.runtime import get_runtime
from orm.database import dispose_engine

__all__ = ["APPLICATION_NAME", "DRAIN_SECONDS", "post_fork", "worker_exit"]

log = logging.getLogger(__name__)

APPLICATION_NAME: Final = "maria_app"
"""The application_name of the workers' connections, followed by the worker's pid."""
DRAIN_SECONDS: Final = 5.0
"""How long an exiting worker waits for its queued observations to be published."""


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn hook, in a new worker: name its connections after it (after PGAPPNAME, if set)."""
    base = os.environ.get("PGAPPNAME") or APPLICATION_NAME
    os.environ["PGAPPNAME"] = f"{base} worker {os.getpid()}"


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in the worker as it exits: publish what is queued, close the pool."""
    if not get_runtime().dispatcher.drain(timeout=DRAIN_SECONDS):
        log.warning("worker %s exited before its observations were all published", worker.pid)
    dispose_engine()
