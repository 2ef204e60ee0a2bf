"""Compat layer: the routed twin of legacy.email_verification, for `from compat import ...`."""

from compat.facades.email_verification import *  # noqa: F403
from compat.facades.email_verification import __all__ as __all__
