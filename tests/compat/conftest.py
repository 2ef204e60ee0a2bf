"""Fixtures shared by the compat tests: the command line run in-process, on a fresh database."""

from tests.compat.test_cli import cli, database

__all__ = ["cli", "database"]
