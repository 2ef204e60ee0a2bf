"""Compat layer: shadow comparison: compare, digest, redact, observations and their publishers."""
