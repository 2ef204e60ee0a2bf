"""compare_paths keeps a large result only as its digest, and still catches every difference."""

from __future__ import annotations

import dataclasses
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from compat.routing.declaration import REGISTRY
from compat.routing.unit_of_work import UnitOfWork
from compat.shadow.digest import DIGEST_ABOVE, Digest
from compat.verify.parity import compare_paths
from tests.fixtures.layer import Layer
from tests.parity.case import Seed

UUIDS = "user_sessions.list_session_uuids"
PAGE = "user_sessions.list_sessions"
LIMIT = 3
"""The digest threshold these tests pass: a few seeded rows make a "large" result."""

Swap = Callable[..., None]


@pytest.fixture
def swap_in(monkeypatch: pytest.MonkeyPatch) -> Swap:
    """Replace a facade function's paths (``orm=``, ``legacy=``) in the registry, for this test."""

    def swap(
        key: str,
        *,
        legacy: Callable[..., Any] | None = None,
        orm: Callable[..., Any] | None = None,
    ) -> None:
        spec = REGISTRY[key]
        swapped = dataclasses.replace(spec, legacy=legacy or spec.legacy, orm=orm or spec.orm)
        monkeypatch.setitem(REGISTRY, key, swapped)

    return swap


@pytest.fixture
def unit(layer: Layer) -> UnitOfWork:
    assert layer.unit is not None
    return layer.unit


def sessions(seed: Seed, count: int) -> list[str]:
    return [seed.session(name=f"Large {n}") for n in range(count)]


def orm_of(key: str) -> Callable[..., Any]:
    """The real ORM adapter, taken before a test swaps it."""
    return REGISTRY[key].orm


class TestMatchingLargeResults:
    def test_a_result_above_the_threshold_is_kept_as_a_digest_on_each_path(
        self, unit: UnitOfWork, seed: Seed
    ) -> None:
        sessions(seed, LIMIT + 2)

        comparison = compare_paths(UUIDS, unit=unit, digest_above=LIMIT)

        assert comparison.matched, comparison.report(redacted=False)
        assert comparison.legacy.value == comparison.orm.value
        assert repr(comparison.legacy.value) == "<set of 5 str, digested>"

    def test_a_result_up_to_the_threshold_keeps_its_values(
        self, unit: UnitOfWork, seed: Seed
    ) -> None:
        expected = set(sessions(seed, LIMIT))

        comparison = compare_paths(UUIDS, unit=unit, digest_above=LIMIT)

        assert comparison.matched
        assert comparison.legacy.value == comparison.orm.value == expected

    def test_every_uuid_of_a_table_larger_than_the_default_threshold_is_digested_and_matches(
        self, unit: UnitOfWork, seed: Seed
    ) -> None:
        with seed.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO user_sessions (uuid, name) SELECT gen_random_uuid(), 'Bulk ' || i "
                "FROM generate_series(1, %s) AS i",
                (DIGEST_ABOVE + 1,),
            )

        comparison = compare_paths(UUIDS, unit=unit)

        assert comparison.matched, comparison.report(redacted=False)
        assert isinstance(comparison.legacy.value, Digest)
        assert comparison.legacy.value.count == DIGEST_ABOVE + 1

    def test_the_legacy_result_is_released_before_the_orm_path_runs(
        self, unit: UnitOfWork, seed: Seed, swap_in: Swap
    ) -> None:
        """The point of digesting: two whole-table results are never in memory at once."""
        sessions(seed, LIMIT + 1)

        class Tracked(set[str]):
            """A set a weak reference can watch."""

        legacy, orm = REGISTRY[UUIDS].legacy, orm_of(UUIDS)
        watched: list[weakref.ref[Tracked]] = []
        alive_when_the_orm_ran: list[bool] = []

        def tracked_legacy() -> set[str]:
            result = Tracked(legacy())
            watched.append(weakref.ref(result))
            return result

        def watching_orm(db: Session) -> set[str]:
            alive_when_the_orm_ran.append(watched[0]() is not None)
            result: set[str] = orm(db)
            return result

        swap_in(UUIDS, legacy=tracked_legacy, orm=watching_orm)

        compare_paths(UUIDS, unit=unit, digest_above=LIMIT)

        assert alive_when_the_orm_ran == [False]


class TestDifferentLargeResults:
    def test_an_orm_path_missing_one_uuid_reports_both_lengths_and_no_uuid(
        self, unit: UnitOfWork, seed: Seed, swap_in: Swap
    ) -> None:
        seeded = sessions(seed, LIMIT + 2)
        orm = orm_of(UUIDS)
        swap_in(UUIDS, orm=lambda db: orm(db) - {seeded[0]})

        comparison = compare_paths(UUIDS, unit=unit, digest_above=LIMIT, label="whole table")

        assert not comparison.matched
        report = comparison.report(redacted=False)
        assert report == (
            f"{UUIDS} [whole table]: MISMATCH between the legacy and the ORM path\n"
            "['result']: legacy=<set of 5 str, digested> orm=<set of 4 str, digested> "
            "(lengths differ: 5 != 4 (compared by digest))"
        )
        assert not any(session_uuid in report for session_uuid in seeded)

    def test_an_orm_path_with_one_uuid_replaced_is_caught(
        self, unit: UnitOfWork, seed: Seed, swap_in: Swap
    ) -> None:
        seeded = sessions(seed, LIMIT + 2)
        stranger = str(uuid.uuid4())
        orm = orm_of(UUIDS)
        swap_in(UUIDS, orm=lambda db: orm(db) - {seeded[0]} | {stranger})

        comparison = compare_paths(UUIDS, unit=unit, digest_above=LIMIT)

        [difference] = comparison.differences
        assert difference.reason == (
            "same length, different elements (compared by digest; values not kept)"
        )

    def test_an_orm_path_returning_uuid_objects_instead_of_str_is_caught(
        self, unit: UnitOfWork, seed: Seed, swap_in: Swap
    ) -> None:
        sessions(seed, LIMIT + 2)
        orm = orm_of(UUIDS)
        swap_in(UUIDS, orm=lambda db: {uuid.UUID(text) for text in orm(db)})

        comparison = compare_paths(UUIDS, unit=unit, digest_above=LIMIT)

        [difference] = comparison.differences
        assert difference.reason == "element types differ (compared by digest)"
        assert repr(difference.orm) == "<set of 5 uuid.UUID, digested>"

    def test_a_page_in_another_order_is_caught(
        self, unit: UnitOfWork, seed: Seed, swap_in: Swap
    ) -> None:
        sessions(seed, LIMIT + 2)
        orm = orm_of(PAGE)
        swap_in(PAGE, orm=lambda db, **kwargs: orm(db, **kwargs)[::-1])

        comparison = compare_paths(PAGE, kwargs={"limit": 10}, unit=unit, digest_above=LIMIT)

        [difference] = comparison.differences
        assert difference.reason == (
            "the same elements in another order (compared by digest; values not kept)"
        )

    def test_a_large_result_against_a_small_one_compares_two_digests(
        self, unit: UnitOfWork, seed: Seed, swap_in: Swap
    ) -> None:
        seeded = sessions(seed, LIMIT + 1)
        orm = orm_of(UUIDS)
        swap_in(UUIDS, orm=lambda db: orm(db) - {seeded[0]})

        comparison = compare_paths(UUIDS, unit=unit, digest_above=LIMIT)

        [difference] = comparison.differences
        assert difference.reason == "lengths differ: 4 != 3 (compared by digest)"
        assert isinstance(comparison.orm.value, Digest)
