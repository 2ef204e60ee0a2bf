"""The architecture doc stays true: its arrows are import contracts, its parts have no cycle,
and only the settings module reads the environment."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("layer_settings", "legacy", "orm", "compat", "migrations")


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, as grimp finds them (every import, anywhere)."""
    # Imports only for type checking are no runtime arrow (and are how a cycle is avoided).
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    return {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}


class TestTheImportGraph:
    def test_keeps_every_contract_of_the_architecture(self) -> None:
        linter = Path(sys.executable).with_name("lint-imports")
        ran = subprocess.run(
            [str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert ran.returncode == 0, ran.stdout[-3000:]
        assert "0 broken" in ran.stdout

    def test_has_no_cycle_between_modules(self) -> None:
        assert cycles(import_graph()) == []

    def test_the_cycle_check_finds_a_cycle_when_there_is_one(self) -> None:
        graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
        assert cycles(graph) == [["a", "b", "c"]]


def reads_of_the_environment(path: Path) -> list[int]:
    """Lines of ``path`` that read os.environ or call os.getenv."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv", "environb")
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


class TestTheEnvironment:
    def test_is_read_only_by_the_settings_module(self) -> None:
        readers = {
            str(path.relative_to(ROOT)): lines
            for package in PACKAGES
            if package != "layer_settings"
            for path in sorted((ROOT / package).rglob("*.py"))
            if (lines := reads_of_the_environment(path))
        }
        assert readers == {}

    def test_the_check_sees_a_read(self, tmp_path: Path) -> None:
        module = tmp_path / "reader.py"
        module.write_text("import os\n\nvalue = os.environ.get('X')\n", encoding="utf-8")
        assert reads_of_the_environment(module) == [3]
