"""The strangler: routes each legacy function to the legacy SQL, the ORM, or both.

Application code changes only its import (``from compat import user_sessions``)
and may group calls in ``compat.transaction()``; engineers flip each
function's flag with the ``compat`` command line. ``compat.shutdown()`` stores
the observations a process still holds (it also runs at interpreter exit).
"""

from compat import email_verification, uploads, user_sessions
from compat.errors import (
    CompatError,
    InvalidArgument,
    MismatchError,
    UnitOfWorkAborted,
    UnknownFlag,
)
from compat.flags.store import FlagState, Mode
from compat.routing.unit_of_work import transaction
from compat.runtime import gunicorn_worker_exit, shutdown

__all__ = [
    "CompatError",
    "FlagState",
    "InvalidArgument",
    "MismatchError",
    "Mode",
    "UnitOfWorkAborted",
    "UnknownFlag",
    "email_verification",
    "gunicorn_worker_exit",
    "shutdown",
    "transaction",
    "uploads",
    "user_sessions",
]
