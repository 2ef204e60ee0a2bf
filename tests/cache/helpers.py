"""Cache tests: waiting for what the listener thread does, with a deadline, and test rows."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from compat import user_sessions
from tests.fixtures.layer import Layer

POLL_SECONDS = 0.002


def wait_until(condition: Callable[[], bool], what: str, deadline: float = 10.0) -> float:
    """Poll ``condition`` until it holds; return how long it took; fail naming ``what``."""
    started = time.monotonic()
    pause = threading.Event()
    while not condition():
        if time.monotonic() - started > deadline:
            raise AssertionError(f"{what}: not within {deadline} s")
        pause.wait(POLL_SECONDS)
    return time.monotonic() - started


def cache(layer: Layer, key: str, ttl: float = 60.0) -> None:
    """Cache ``key`` through the audited settings and wait until this process applies it."""
    settings = layer.runtime.cache_settings
    assert settings is not None
    settings.set(key, ttl, reason="test", by="tests")
    wait_until(lambda: layer.runtime.cache.ttl_of(key) == ttl, f"{key} cached")


def new_session(name: str = "before") -> str:
    """A committed session (through the facade) with a fresh uuid."""
    session_uuid = str(uuid.uuid4())
    user_sessions.insert_session(session_uuid, name, f"{session_uuid[:8]}@example.com")
    return session_uuid
