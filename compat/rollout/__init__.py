"""Compat layer: rollout: the stages a function moves through and the evidence each step needs."""
