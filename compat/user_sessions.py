"""Compat layer: the routed twin of legacy.user_sessions (`from compat import user_sessions`)."""

from compat.facades.user_sessions import *  # noqa: F403
from compat.facades.user_sessions import __all__ as __all__
