"""Compat layer: the routed twin of legacy.uploads (`from compat import uploads`)."""

from compat.facades.uploads import *  # noqa: F403
from compat.facades.uploads import __all__ as __all__
