"""A tiny WSGI application for the metrics test: known facade calls per request, and /metrics."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from compat import metrics, user_sessions

_metrics = metrics.wsgi_app()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``/metrics``: the scrape; any other path: one compared and one uncompared facade call."""
    if environ.get("PATH_INFO") == "/metrics":
        return _metrics(environ, start_response)
    user_sessions.count_sessions()  # shadow (COMPAT_FLAGS): compared, observed
    user_sessions.check_uuid_exists(str(uuid.uuid4()))  # legacy: served alone
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
