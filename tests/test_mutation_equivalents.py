"""bench/mutation_equivalents.toml stays true to the code: every entry names a line that exists."""

from __future__ import annotations

import ast

import pytest

from bench.mutation import EQUIVALENTS, ROOT, Classifier, Equivalent, read_equivalents

ENTRIES = read_equivalents(EQUIVALENTS.read_text())


def functions_holding(module: str, text: str) -> set[str]:
    """The names of the functions (and classes) with a line reading ``text`` in their body."""
    source = (ROOT / module).read_text()
    lines = [line.strip() for line in source.splitlines()]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = lines[node.lineno - 1 : node.end_lineno]
            if text in body:
                names.add(node.name)
    return names


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: f"{entry.module}:{entry.line}")
def test_every_entry_names_a_line_of_its_module(entry: Equivalent) -> None:
    # A line that changed or went away would leave a stale reason behind.
    lines = [line.strip() for line in (ROOT / entry.module).read_text().splitlines()]
    assert entry.line in lines
    if entry.function is not None:
        assert entry.function in functions_holding(entry.module, entry.line)


class TestClassifier:
    MODULE = "orm/repositories/base.py"
    SIGNATURE_STAR = "*,"  # in list() and in _select()

    def line_in(self, function: str) -> int:
        source = (ROOT / self.MODULE).read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef) and node.name == function:
                for number in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                    if lines[number - 1].strip() == self.SIGNATURE_STAR:
                        return number
        raise AssertionError(f"no {self.SIGNATURE_STAR!r} line in {function}")

    def test_matches_a_line_by_its_text_and_the_operator_by_its_exact_name(self) -> None:
        entry = Equivalent(self.MODULE, self.SIGNATURE_STAR, ("ReplaceBinaryOperator_Mul_Div",), "")
        known = Classifier([entry])
        line = self.line_in("list")
        assert known.why(self.MODULE, line, "core/ReplaceBinaryOperator_Mul_Div") == ""
        assert known.why(self.MODULE, line, "core/ReplaceBinaryOperator_Mul_DivX") is None
        assert known.why(self.MODULE, line, "core/ReplaceBinaryOperator_Mul") is None
        assert known.used == {entry}

    def test_an_entry_without_operators_covers_every_mutant_of_its_line(self) -> None:
        known = Classifier([Equivalent(self.MODULE, self.SIGNATURE_STAR, (), "any")])
        line = self.line_in("list")
        assert known.why(self.MODULE, line, "core/NumberReplacer") == "any"
        assert known.why(self.MODULE, line + 1, "core/NumberReplacer") is None

    def test_an_entry_with_a_function_covers_that_function_alone(self) -> None:
        entry = Equivalent(self.MODULE, self.SIGNATURE_STAR, (), "private", function="_select")
        known = Classifier([entry])
        op = "core/ReplaceBinaryOperator_Mul_Div"
        assert known.why(self.MODULE, self.line_in("_select"), op, "_select") == "private"
        assert known.why(self.MODULE, self.line_in("list"), op, "list") is None

    def test_reads_module_line_function_operators_and_reason(self) -> None:
        text = (
            '[[equivalent]]\nmodule = "m.py"\nline = "  x = 1  "\nfunction = "f"\n'
            'operators = ["NumberReplacer"]\nwhy = "because"\n'
        )
        assert read_equivalents(text) == [
            Equivalent("m.py", "x = 1", ("NumberReplacer",), "because", function="f")
        ]
