"""Migrations tests: pytest-alembic's built-in invariants, on a new empty database each.

Its automatic collection crashes under pytest 9 ('TestCollector' object has no
attribute '_nodeid'), so pyproject.toml points it at no file and the tests are
imported here; pytest collects them as this module's own. They use the
alembic_config and alembic_engine fixtures of tests/migrations/conftest.py.
"""

from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]
