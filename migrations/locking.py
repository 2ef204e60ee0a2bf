"""Migrations side: DDL waits at most lock_timeout for a lock; a revision that timed out is retried.

A migration's ALTER or CREATE INDEX queues for its lock behind any long
transaction on the table, and every query that arrives after it queues behind
the migration: a short lock_timeout turns that outage into a quick failure,
and a bounded retry turns most such failures into a short delay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from alembic.util import CommandError

__all__ = [
    "LOCK_NOT_AVAILABLE",
    "LOCK_POLICY_ATTRIBUTE",
    "LockPolicy",
    "LockTimeoutExhausted",
    "is_lock_timeout",
    "lock_timeout",
    "retrying_lock_timeouts",
]

log = logging.getLogger(__name__)

# SQLSTATE lock_not_available: what PostgreSQL raises when lock_timeout expires.
LOCK_NOT_AVAILABLE = "55P03"
# config.attributes key by which a caller (a test) sets another policy.
LOCK_POLICY_ATTRIBUTE = "lock_policy"


@dataclass(frozen=True, slots=True)
class LockPolicy:
    """How long DDL waits for a lock, and how many times a revision that timed out is run.

    The defaults: 5 s per lock, 3 attempts, 1 s then 2 s between them, so a
    blocked revision gives up after about 18 s rather than queueing every
    other query behind it for as long as the blocker lives.
    """

    timeout_ms: int = 5000
    attempts: int = 3
    pause_s: float = 1.0

    def __post_init__(self) -> None:
        if self.timeout_ms < 1 or self.attempts < 1 or self.pause_s < 0:
            raise ValueError(
                f"{self!r}: timeout_ms and attempts must be at least 1, pause_s not negative"
            )


class LockTimeoutExhausted(CommandError):
    """Every attempt of a revision hit lock_timeout; what was committed before it stays."""


def is_lock_timeout(error: BaseException) -> bool:
    """Whether ``error`` is PostgreSQL's lock_not_available (55P03), as lock_timeout raises it."""
    return (
        isinstance(error, sa.exc.DBAPIError)
        and getattr(error.orig, "pgcode", None) == LOCK_NOT_AVAILABLE
    )


@contextmanager
def lock_timeout(connection: sa.Connection, timeout_ms: int, *, owned: bool) -> Iterator[None]:
    """Set the session's lock_timeout for the block, then put back the value it had.

    ``owned``: the connection is not inside a caller's transaction, so the
    setting is committed at once (Alembic must find no transaction open, or it
    would take it for the caller's) and again when put back.
    """
    previous = connection.scalar(sa.text("SELECT current_setting('lock_timeout')"))
    _set(connection, f"{timeout_ms}ms", owned=owned)
    try:
        yield
    finally:
        _set(connection, previous, owned=owned)


def _set(connection: sa.Connection, value: str, *, owned: bool) -> None:
    connection.execute(
        sa.text("SELECT set_config('lock_timeout', :value, false)"), {"value": value}
    )
    if owned:
        connection.commit()


def retrying_lock_timeouts(
    attempt: Callable[[], None], policy: LockPolicy, *, where: Callable[[], str]
) -> None:
    """Run ``attempt`` until it does not fail with lock_timeout, at most ``policy.attempts`` times.

    ``attempt`` must leave the database as it found it when it fails (each
    revision in its own transaction, or a savepoint): a retry then runs the
    revision that failed, and those committed before it are not run again.
    ``where`` names the revision the database is at, for the messages.
    """
    for number in range(1, policy.attempts + 1):
        try:
            attempt()
            return
        except sa.exc.DBAPIError as error:
            if not is_lock_timeout(error):
                raise
            statement = " ".join(str(error.statement).split())
            if number == policy.attempts:
                raise LockTimeoutExhausted(
                    f"Gave up after {number} attempt(s): at {where()}, the next revision waited "
                    f"more than lock_timeout ({policy.timeout_ms} ms) for a lock, in: {statement}. "
                    "Another session holds a lock on that table; find it with "
                    "pg_blocking_pids() or pg_stat_activity, then run the command again."
                ) from error
            pause = policy.pause_s * 2 ** (number - 1)
            log.warning(
                "at %s, the next revision waited more than lock_timeout (%d ms) for a lock, in: "
                "%s; attempt %d of %d in %.1f s",
                where(),
                policy.timeout_ms,
                statement,
                number + 1,
                policy.attempts,
                pause,
            )
            time.sleep(pause)
