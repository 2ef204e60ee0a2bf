"""Benchmarks (not tests): the legacy functions, the facade in every mode, the ORM, bulk inserts.

Run ``python -m bench`` (``--quick`` for a smoke run); see bench/__main__.py.
"""
