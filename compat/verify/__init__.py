"""Compat layer: `compat verify`: both paths on real rows, its calls, seeding, throwaway server."""
