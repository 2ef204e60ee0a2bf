"""Shared test configuration: fixtures live in small plugin modules under tests/fixtures."""

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.layer", "tests.fixtures.profiles"]
