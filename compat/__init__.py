"""The strangler: routes each legacy function to the legacy SQL, the ORM, or both.

Application code changes only its import (``from compat import user_sessions``)
and may group calls in ``compat.transaction()``; engineers flip each
function's flag with the ``compat`` command line.
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

__all__ = [
    "CompatError",
    "FlagState",
    "InvalidArgument",
    "MismatchError",
    "Mode",
    "UnitOfWorkAborted",
    "UnknownFlag",
    "email_verification",
    "transaction",
    "uploads",
    "user_sessions",
]
