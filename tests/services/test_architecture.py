"""The layering holds: services reach the database only through the compat facade."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What a service may import from the data side: the facade modules, and the
# exception classes the facade documents (psycopg2's; SQLAlchemy's only for a
# database it cannot connect to).
SERVICE_ALLOWED = {
    "compat",
    "compat.user_sessions",
    "compat.uploads",
    "compat.email_verification",
    "psycopg2",
    "psycopg2.errors",
    "sqlalchemy",
}
DATA_SIDE = ("compat", "legacy", "orm", "migrations", "psycopg2", "sqlalchemy")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def data_side(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in DATA_SIDE}


@pytest.mark.parametrize("path", sorted((ROOT / "services").glob("*.py")), ids=lambda p: p.name)
def test_a_service_imports_nothing_of_the_data_layer_but_the_facade(path: Path) -> None:
    assert data_side(imported_modules(path)) <= SERVICE_ALLOWED


@pytest.mark.parametrize("name", ["app.py", "routes.py", "views.py", "wiring.py", "errors.py"])
def test_the_example_apps_request_code_goes_through_the_services(name: str) -> None:
    """Only the gunicorn hooks (serving.py) touch the layer's runtime, to drain it on exit."""
    modules = data_side(imported_modules(ROOT / "examples" / "maria_app" / name))
    assert modules <= {"compat", "compat.user_sessions", "compat.uploads", "psycopg2", "sqlalchemy"}
