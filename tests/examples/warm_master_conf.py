"""gunicorn settings for the --preload test: the example's own, and a master that used the layer.

Before forking, the master makes a facade call and then marks one of its
pooled connections with a query of its own: it holds a pool and a flag store
that read the table. The workers forked from it must build their own (the
layer's os.register_at_fork handlers) and never use or close the master's
connection, whose backend must still show the master's query at the end.
"""

from __future__ import annotations

import logging
import runpy
from pathlib import Path
from typing import Any, Final

_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "maria_app" / "gunicorn.conf.py"
globals().update({k: v for k, v in runpy.run_path(str(_EXAMPLE)).items() if not k.startswith("__")})

MASTER_QUERY: Final = "SELECT pg_backend_pid() /* the gunicorn master's own */"


def when_ready(server: Any) -> None:
    """In the master, after the app was preloaded and before any worker is forked."""
    from compat import user_sessions
    from compat.runtime import get_runtime
    from orm.database import get_engine

    user_sessions.check_uuid_exists("00000000-0000-0000-0000-000000000000")
    # The call started the master's flag listener, whose first act is a read of
    # the flags on a pooled connection: let it finish before marking one.
    listener = get_runtime().flags.listener
    assert listener is None or listener.connected.wait(20)
    # The call was counted: store the count now, and stop the master's counting
    # thread, so that nothing writes on a pooled connection after the marking.
    assert get_runtime().served.close(5)
    # Mark every connection the master's pool holds (the first call may have
    # used more than one: the flag read, the cache's settings), each at once, in
    # autocommit, so that returning it sends no ROLLBACK after the marking query.
    engine = get_engine()
    held = [
        engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        for _ in range(max(1, engine.pool.checkedin()))  # type: ignore[attr-defined]
    ]
    pids = [connection.exec_driver_sql(MASTER_QUERY).scalar_one() for connection in held]
    for connection in held:
        connection.close()
    pid = pids[0]
    logging.getLogger("gunicorn.error").info(
        "master used the data layer before forking; its backend pid is %s", pid
    )
