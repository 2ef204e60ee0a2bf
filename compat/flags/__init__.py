"""Compat layer: flags: the modes, where they come from, the shared store and its audit."""
