"""Every parity case gives the same answer, error and tables on the legacy and the ORM path."""

from __future__ import annotations

import psycopg2
import pytest

from compat.routing.unit_of_work import UnitOfWork
from compat.shadow.compare import compare
from tests.fixtures.layer import Layer
from tests.parity.case import Case, Seed
from tests.parity.catalog import CASES, facade_function, is_refused
from tests.parity.running import run_call, run_case
from tests.parity.tables import read_tables

RETURNING = [case for case in CASES if case.raises is None]
REFUSED = [case for case in CASES if is_refused(case)]
FAILING_IN_THE_DATABASE = [case for case in CASES if case.raises and not is_refused(case)]
MODES = ("legacy", "shadow", "live", "orm")


def by_id(case: Case) -> str:
    return case.id


def unit(layer: Layer) -> UnitOfWork:
    assert layer.unit is not None
    return layer.unit


def assert_transaction_usable(layer: Layer) -> None:
    unit(layer).check_usable()
    assert unit(layer).connection.exec_driver_sql("SELECT 1").scalar() == 1


class TestCasesThatReturn:
    @pytest.mark.parametrize("case", RETURNING, ids=by_id)
    def test_both_paths_return_the_same_value_and_leave_the_same_tables(
        self, layer: Layer, seed: Seed, case: Case
    ) -> None:
        comparison = run_case(unit(layer), seed, case)
        assert comparison.matched, comparison.report(redacted=False)
        assert comparison.legacy.error is None, (
            f"{case.id}: both paths raised {comparison.legacy.error_text}; "
            "a case that raises declares it (raises=...)"
        )
        if case.expect is not None:
            assert case.expect.holds(comparison.legacy.value), (
                f"{case.id}: the case should {case.expect.description}, "
                f"but got {comparison.legacy.value!r}; it does not test what its name says"
            )


class TestBadInput:
    @pytest.mark.parametrize("case", REFUSED, ids=by_id)
    def test_both_paths_refuse_it_with_the_same_error(
        self, layer: Layer, seed: Seed, case: Case
    ) -> None:
        comparison = run_case(unit(layer), seed, case)
        assert comparison.matched, comparison.report(redacted=False)
        assert type(comparison.legacy.error) is case.raises, comparison.legacy.error_text
        assert_transaction_usable(layer)

    @pytest.mark.parametrize("case", REFUSED, ids=by_id)
    def test_the_facade_raises_it_in_every_mode_before_any_sql_and_the_transaction_stays_usable(
        self, layer: Layer, seed: Seed, case: Case
    ) -> None:
        assert case.raises is not None
        made = case.arrange(seed)
        messages: set[str] = set()
        for mode in MODES:
            layer.set_flags({case.key: mode})
            layer.forget_statements()
            with pytest.raises(case.raises) as raised:
                facade_function(case.key)(*made.args, **made.kwargs)
            assert layer.paths_touching_data() == [], f"{case.id} sent SQL in {mode} mode"
            messages.add(str(raised.value))
        assert len(messages) == 1, messages
        assert_transaction_usable(layer)


class TestDatabaseErrors:
    @pytest.mark.parametrize("case", FAILING_IN_THE_DATABASE, ids=by_id)
    def test_both_paths_raise_the_same_class_and_sqlstate_and_change_nothing(
        self, layer: Layer, seed: Seed, case: Case
    ) -> None:
        made = case.arrange(seed)
        before = read_tables(unit(layer).connection)
        comparison = run_call(unit(layer), case, made)
        assert comparison.matched, comparison.report(redacted=False)
        error = comparison.legacy.error
        assert type(error) is case.raises, comparison.legacy.error_text
        assert isinstance(error, psycopg2.Error)
        assert error.pgcode == case.sqlstate
        assert_transaction_usable(layer)
        assert compare(read_tables(unit(layer).connection), before) == ()
