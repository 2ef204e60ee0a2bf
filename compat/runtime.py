"""Compat layer: the process-wide flag store and publishers, built on first use."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from compat.flags.store import FlagStore
from compat.routing.unit_of_work import MAX_STATEMENT_TIMEOUT_MS
from compat.shadow.publishers import CounterPublisher, Dispatcher, LogPublisher, TablePublisher

__all__ = ["Runtime", "get_runtime", "reset_runtime"]


@dataclass(slots=True)
class Runtime:
    """What every facade call consults: flags, the observation dispatcher, the settings."""

    flags: FlagStore
    dispatcher: Dispatcher
    counters: CounterPublisher
    raise_on_mismatch: bool = False
    """Raise MismatchError after a compared call whose paths disagree (for tests)."""
    candidate_timeout_ms: int = field(default_factory=lambda: _candidate_timeout_ms(os.environ))
    """The candidate's time budget: a statement timeout inside its savepoint."""


def _candidate_timeout_ms(environ: Mapping[str, str]) -> int:
    text = environ.get("COMPAT_CANDIDATE_TIMEOUT_MS", "2000")
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_STATEMENT_TIMEOUT_MS:
        raise ValueError(
            f"COMPAT_CANDIDATE_TIMEOUT_MS={text!r}: give whole milliseconds, "
            f"0..{MAX_STATEMENT_TIMEOUT_MS} (0: no budget)"
        )
    return value


_lock = threading.Lock()
_runtime: Runtime | None = None


def _build() -> Runtime:
    import compat  # noqa: F401  (declares every facade function)
    from compat.routing.declaration import REGISTRY

    counters = CounterPublisher()
    dispatcher = Dispatcher([LogPublisher(), counters, TablePublisher()])
    return Runtime(flags=FlagStore(REGISTRY), dispatcher=dispatcher, counters=counters)


def get_runtime() -> Runtime:
    """The process's runtime, built on first use (nothing connects at import time)."""
    global _runtime
    runtime = _runtime
    if runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = _build()
            runtime = _runtime
    return runtime


def reset_runtime(runtime: Runtime | None = None) -> Runtime | None:
    """Replace the runtime (tests build their own); None means build afresh on next use."""
    global _runtime
    with _lock:
        previous, _runtime = _runtime, runtime
    return previous


def _after_fork_in_child() -> None:
    runtime = _runtime
    if runtime is not None:
        runtime.flags.after_fork()
        runtime.dispatcher.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
