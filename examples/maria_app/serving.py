"""Example application: gunicorn's server hooks, what each worker process does at its edges.

After the fork nothing is needed: the data layer registers ``os.register_at_fork``
handlers that drop the engine's pool inherited from the master (without closing
the master's connections), restart the flag refresher and the observation
publisher, so a worker builds its own on first use, ``--preload`` or not. On
exit a worker hands the observations still queued to the publishers and closes
its pooled connections, so that a restart loses no comparison and leaves no
backend waiting for a timeout.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from compat.runtime import get_runtime
from orm.database import dispose_engine

__all__ = ["DRAIN_SECONDS", "worker_exit"]

log = logging.getLogger(__name__)

DRAIN_SECONDS: Final = 5.0
"""How long an exiting worker waits for its queued observations to be published."""


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in the worker as it exits: publish what is queued, close the pool."""
    if not get_runtime().dispatcher.drain(timeout=DRAIN_SECONDS):
        log.warning("worker %s exited before its observations were all published", worker.pid)
    dispose_engine()
