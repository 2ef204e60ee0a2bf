"""ORM side: the pool's liveness check, a round trip only for a connection that may be stale.

SQLAlchemy's ``pool_pre_ping`` sends ``SELECT 1`` on every checkout: one
round trip of the two a pooled point read used to cost. Here, as HikariCP
does, a connection given back to the pool less than ``trust_ms`` ago is
trusted without one, unless its socket says otherwise: an idle connection's
socket has nothing to read, so a readable one means the server sent
something on its own (the FATAL of a terminated backend or a shutdown,
followed by end of file) and the connection is pinged. An older one is
pinged. A failed ping invalidates every connection the pool made before it
(a restart ends them all) and the pool hands out a fresh one instead.
What this cannot see (a network that dropped silently within ``trust_ms``)
surfaces on the call's first statement; the facade retries a read once
(``compat.routing.unit_of_work.in_unit``), never a write.
"""

from __future__ import annotations

import select
import time
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event, exc

__all__ = ["TRUST_MS", "install_liveness_check"]

TRUST_MS: Final = 500
"""How long after its last use a pooled connection is trusted without a ping (HikariCP's 500 ms)."""

_LAST_USED: Final = "compat_last_used"


def install_liveness_check(engine: sa.Engine, trust_ms: int = TRUST_MS) -> None:
    """Check each connection the engine's pool hands out, pinging only one that may be stale."""
    trust = trust_ms / 1000
    clock = time.monotonic
    dialect = engine.dialect
    dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
    poll = select.select

    def stamp(dbapi_connection: Any, record: Any, *_: Any) -> None:
        record.info[_LAST_USED] = clock()

    def check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get(_LAST_USED)
        try:
            quiet = not poll((dbapi_connection.fileno(),), (), (), 0)[0]
        except (OSError, ValueError, dbapi_error):  # a closed socket
            quiet = False
        if quiet and last is not None and clock() - last < trust:
            return
        try:
            # The dialect's ping runs in autocommit: no BEGIN, and no transaction left open.
            dialect.do_ping(dbapi_connection)
        except dbapi_error as error:
            raise exc.InvalidatePoolError(f"liveness ping failed: {error}") from error

    event.listen(engine, "connect", stamp)
    event.listen(engine, "checkin", stamp)
    event.listen(engine, "checkout", check)
