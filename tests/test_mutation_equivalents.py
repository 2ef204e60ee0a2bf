"""bench/mutation_equivalents.toml stays true to the code: every entry names a line that exists."""

from __future__ import annotations

import pytest

from bench.mutation import EQUIVALENTS, ROOT, Classifier, Equivalent, read_equivalents

ENTRIES = read_equivalents(EQUIVALENTS.read_text())


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: f"{entry.module}:{entry.line}")
def test_every_entry_names_a_line_of_its_module(entry: Equivalent) -> None:
    # A line that changed or went away would leave a stale reason behind.
    lines = [line.strip() for line in (ROOT / entry.module).read_text().splitlines()]
    assert entry.line in lines


def test_every_entry_gives_its_reason() -> None:
    assert all(entry.why.strip() for entry in ENTRIES)


class TestClassifier:
    MODULE = "orm/repositories/query.py"

    def line_of(self, text: str) -> int:
        lines = (ROOT / self.MODULE).read_text().splitlines()
        return [line.strip() for line in lines].index(text) + 1

    def test_matches_a_line_by_its_text_and_the_operator_by_prefix(self) -> None:
        text = "@functools.lru_cache(maxsize=512)"
        known = Classifier([Equivalent(self.MODULE, text, ("NumberReplacer",), "size")])
        assert known.why(self.MODULE, self.line_of(text), "core/NumberReplacer") == "size"
        assert known.why(self.MODULE, self.line_of(text), "core/RemoveDecorator") is None

    def test_an_entry_without_operators_covers_every_mutant_of_its_line(self) -> None:
        text = "@functools.lru_cache(maxsize=512)"
        known = Classifier([Equivalent(self.MODULE, text, (), "cache")])
        assert known.why(self.MODULE, self.line_of(text), "core/RemoveDecorator") == "cache"
        assert known.why(self.MODULE, self.line_of(text) + 1, "core/RemoveDecorator") is None

    def test_reads_module_line_operators_and_reason(self) -> None:
        text = (
            '[[equivalent]]\nmodule = "m.py"\nline = "  x = 1  "\n'
            'operators = ["NumberReplacer"]\nwhy = "because"\n'
        )
        assert read_equivalents(text) == [
            Equivalent("m.py", "x = 1", ("NumberReplacer",), "because")
        ]

    def test_an_entry_with_a_function_covers_that_function_alone(self) -> None:
        text = "@functools.lru_cache(maxsize=512)"
        entry = Equivalent(self.MODULE, text, (), "cache", function="select_statement")
        known = Classifier([entry])
        line = self.line_of(text)
        assert known.why(self.MODULE, line, "core/NumberReplacer", "select_statement") == "cache"
        assert known.why(self.MODULE, line, "core/NumberReplacer", "other") is None
