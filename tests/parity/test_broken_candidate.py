"""A deliberately broken ORM candidate, swapped in for one test, fails the parity suite by name."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from compat.routing.declaration import REGISTRY
from compat.user_sessions import session_row
from legacy.user_sessions import SessionOrder, SessionRow
from orm.models import UserSession
from tests.fixtures.layer import Layer
from tests.parity import test_cases
from tests.parity.case import Case, Seed, Tag
from tests.parity.catalog import CASES
from tests.parity.running import run_case

_ORDER_COLUMNS = {
    "created_at": UserSession.created_at,
    "name": UserSession.name,
    "email": UserSession.email,
}


def list_sessions_without_tie_breaker(
    db: Session,
    *,
    limit: int = 50,
    offset: int = 0,
    verified: bool | None = None,
    completed: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    order: SessionOrder = "-created_at",
) -> list[SessionRow]:
    """list_sessions as someone might write it: right in every way but the ORDER BY."""
    column = _ORDER_COLUMNS[order.removeprefix("-")]
    statement = select(UserSession)
    if verified is not None:
        statement = statement.where(UserSession.is_email_verified == verified)
    if completed is not None:
        done = UserSession.completed_at.is_not(None)
        statement = statement.where(done if completed else ~done)
    if created_after is not None:
        statement = statement.where(UserSession.created_at >= created_after)
    if created_before is not None:
        statement = statement.where(UserSession.created_at < created_before)
    ordering = column.desc() if order.startswith("-") else column.asc()
    # The bug: no ", uuid ASC" after the column.
    statement = statement.order_by(ordering.nulls_last()).limit(limit).offset(offset)
    return [session_row(session) for session in db.scalars(statement)]


def find_sessions_by_email_without_tie_breaker(db: Session, email: str) -> list[SessionRow]:
    """find_sessions_by_email, oldest first, with the uuid tie-breaker dropped."""
    statement = (
        select(UserSession)
        .where(func.lower(UserSession.email) == func.lower(email))
        .order_by(UserSession.created_at.asc().nulls_last())
    )
    return [session_row(session) for session in db.scalars(statement)]


def complete_session_without_touching_updated_at(db: Session, session_uuid: str) -> bool:
    """complete_session returning the right answer but forgetting updated_at."""
    statement = (
        update(UserSession)
        .where(UserSession.uuid == session_uuid, UserSession.completed_at.is_(None))
        .values(completed_at=func.current_timestamp())
    )
    return bool(db.execute(statement).rowcount == 1)  # type: ignore[attr-defined]


WITHOUT_TIE_BREAKER: dict[str, Callable[..., Any]] = {
    "user_sessions.list_sessions": list_sessions_without_tie_breaker,
    "user_sessions.find_sessions_by_email": find_sessions_by_email_without_tie_breaker,
}
TIE_CASES = [
    pytest.param(case, id=case.id)
    for case in CASES
    if case.key in WITHOUT_TIE_BREAKER and Tag.TIES in case.tags
]
UNTIED_CASES = [
    pytest.param(case, id=case.id)
    for case in CASES
    if case.key in WITHOUT_TIE_BREAKER
    and case.raises is None
    and not case.tags & {Tag.TIES, Tag.UNICODE}
]


@pytest.fixture
def swap_in(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Callable[..., Any]], None]:
    """Replace a facade function's ORM adapter in the registry, for this test only."""

    def swap(key: str, broken: Callable[..., Any]) -> None:
        monkeypatch.setitem(REGISTRY, key, dataclasses.replace(REGISTRY[key], orm=broken))

    return swap


def unit_of(layer: Layer) -> Any:
    assert layer.unit is not None
    return layer.unit


class TestAnOrmQueryWithoutItsTieBreaker:
    @pytest.mark.parametrize("case", TIE_CASES)
    def test_mismatches_on_the_tie_case_with_a_diff_naming_the_function_and_the_case(
        self,
        layer: Layer,
        seed: Seed,
        case: Case,
        swap_in: Callable[[str, Callable[..., Any]], None],
    ) -> None:
        swap_in(case.key, WITHOUT_TIE_BREAKER[case.key])
        comparison = run_case(unit_of(layer), seed, case)
        assert not comparison.matched
        report = comparison.report(redacted=False)
        assert report.startswith(f"{case.key} [{case.name}]: MISMATCH")
        assert re.search(r"\[\d\]\['uuid'\]: legacy='[0-9a-f-]+' orm='[0-9a-f-]+'", report), report

    @pytest.mark.parametrize("case", TIE_CASES)
    def test_fails_the_parity_test_of_the_tie_case(
        self,
        layer: Layer,
        seed: Seed,
        case: Case,
        swap_in: Callable[[str, Callable[..., Any]], None],
    ) -> None:
        swap_in(case.key, WITHOUT_TIE_BREAKER[case.key])
        parity_test = test_cases.TestCasesThatReturn()
        with pytest.raises(AssertionError, match=re.escape(f"{case.key} [{case.name}]: MISMATCH")):
            parity_test.test_both_paths_return_the_same_value_and_leave_the_same_tables(
                layer, seed, case
            )

    @pytest.mark.parametrize("case", UNTIED_CASES)
    def test_still_matches_where_nothing_ties_so_only_the_tie_cases_catch_it(
        self,
        layer: Layer,
        seed: Seed,
        case: Case,
        swap_in: Callable[[str, Callable[..., Any]], None],
    ) -> None:
        swap_in(case.key, WITHOUT_TIE_BREAKER[case.key])
        comparison = run_case(unit_of(layer), seed, case)
        assert comparison.matched, comparison.report(redacted=False)


class TestAnOrmWriteThatLeavesDifferentRows:
    def test_mismatches_on_the_table_state_although_it_returns_the_same(
        self,
        layer: Layer,
        seed: Seed,
        swap_in: Callable[[str, Callable[..., Any]], None],
    ) -> None:
        [case] = [c for c in CASES if c.id == "user_sessions.complete_session[open-session]"]
        swap_in(case.key, complete_session_without_touching_updated_at)
        comparison = run_case(unit_of(layer), seed, case)
        assert comparison.legacy.value is comparison.orm.value is True
        report = comparison.report(redacted=False)
        assert report.startswith("user_sessions.complete_session [open-session]: MISMATCH")
        assert "['state']['user_sessions'][0]['updated_at']" in report
