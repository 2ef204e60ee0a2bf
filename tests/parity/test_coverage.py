"""Every facade function has parity cases, and more than the happy path; the cases are sound."""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Iterable

import psycopg2

import compat  # noqa: F401  (declares every facade function)
from compat.routing.declaration import REGISTRY
from tests.parity.case import Case, Tag, call, case
from tests.parity.catalog import CASES, is_refused


def coverage_gaps(keys: Iterable[str], cases: Iterable[Case]) -> list[str]:
    """One line per facade function without parity cases, or with happy-path cases only."""
    tags_of: dict[str, list[frozenset[Tag]]] = {key: [] for key in keys}
    for c in cases:
        if c.key in tags_of:
            tags_of[c.key].append(c.tags)
    gaps = []
    for key, tag_sets in sorted(tags_of.items()):
        if not tag_sets:
            gaps.append(f"{key}: no parity case")
        elif all(tags <= {Tag.HAPPY} for tags in tag_sets):
            gaps.append(f"{key}: happy-path cases only; add its edge cases")
    return gaps


def happy(key: str) -> Case:
    return case(key, "happy", {Tag.HAPPY}, lambda db: call())


class TestCoverage:
    def test_every_facade_function_has_cases_beyond_the_happy_path(self) -> None:
        gaps = coverage_gaps(REGISTRY, CASES)
        assert gaps == [], "facade functions without enough parity cases:\n" + "\n".join(gaps)

    def test_every_function_that_takes_arguments_has_a_bad_input_case(self) -> None:
        refused = {c.key for c in CASES if Tag.BAD_INPUT in c.tags}
        lacking = [
            key
            for key, spec in sorted(REGISTRY.items())
            if inspect.signature(spec.legacy).parameters and key not in refused
        ]
        assert lacking == []

    def test_a_function_without_cases_is_named(self) -> None:
        assert coverage_gaps(["uploads.new_function"], CASES) == [
            "uploads.new_function: no parity case"
        ]

    def test_a_function_with_happy_path_cases_only_is_named(self) -> None:
        gaps = coverage_gaps(["uploads.new_function"], [happy("uploads.new_function")] * 2)
        assert gaps == ["uploads.new_function: happy-path cases only; add its edge cases"]


class TestCases:
    def test_every_case_calls_a_registered_facade_function(self) -> None:
        assert sorted({c.key for c in CASES} - set(REGISTRY)) == []

    def test_case_names_are_unique_per_function(self) -> None:
        repeated = [name for name, count in Counter(c.id for c in CASES).items() if count > 1]
        assert repeated == []

    def test_bad_input_cases_and_only_those_expect_a_refusal_before_any_sql(self) -> None:
        mismatched = [c.id for c in CASES if (Tag.BAD_INPUT in c.tags) != is_refused(c)]
        assert mismatched == []

    def test_database_error_cases_name_a_psycopg2_class_and_its_sqlstate(self) -> None:
        incomplete = [
            c.id
            for c in CASES
            if c.raises is not None
            and not is_refused(c)
            and not (
                issubclass(c.raises, psycopg2.Error) and c.sqlstate and Tag.CONSTRAINT in c.tags
            )
        ]
        assert incomplete == []

    def test_cases_that_return_say_what_the_legacy_path_returns(self) -> None:
        unchecked = [c.id for c in CASES if c.raises is None and c.expect is None]
        assert unchecked == []
