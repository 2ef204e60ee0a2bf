"""Service layer: the clock the services read, in naive UTC as the data layer returns times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utc_now"]

Clock = Callable[[], datetime]
"""Returns the current time as a naive UTC datetime; tests pass a fixed one."""


def utc_now() -> datetime:
    """Now, in UTC, without tzinfo (the columns are naive TIMESTAMP holding UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)
