"""Compat layer: the routing core: declarations, argument rules, units of work, the call path."""
