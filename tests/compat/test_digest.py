"""compat.shadow.digest: a large result compared by digest agrees with compare(), without values."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compat.shadow.compare import compare, render
from compat.shadow.digest import Digest, digest_if_large
from compat.shadow.redact import show

UUIDS = [str(uuid.UUID(int=n, version=4)) for n in range(1, 2001)]
NAIVE = datetime(2024, 3, 1, 12, 0)


class Name(str):
    """A str subclass: its repr is a plain str's, its type is not."""

    __slots__ = ()


def reasons(legacy: Any, orm: Any) -> list[str]:
    """The reasons compare gives for the two values' digests (empty when they agree)."""
    return [d.reason for d in compare(Digest.of(legacy), Digest.of(orm))]


class TestEqualResults:
    def test_equal_sets_agree_whatever_order_they_were_built_in(self) -> None:
        other_history = set(UUIDS[1000:])
        other_history.update(UUIDS[:1000])
        assert reasons(set(UUIDS), other_history) == []

    def test_equal_lists_of_rows_agree(self) -> None:
        rows = [{"uuid": u, "n": n, "at": NAIVE} for n, u in enumerate(UUIDS)]
        assert reasons(rows, copy.deepcopy(rows)) == []

    def test_key_order_inside_a_row_does_not_matter(self) -> None:
        forward = [{"uuid": u, "n": 1} for u in UUIDS]
        backward = [{"n": 1, "uuid": u} for u in UUIDS]
        assert reasons(forward, backward) == []

    def test_keys_named_volatile_are_ignored_at_any_depth(self) -> None:
        legacy = [{"id": 1, "rows": [{"id": 10, "name": "a"}]}]
        orm = [{"id": 2, "rows": [{"id": 20, "name": "a"}]}]
        assert Digest.of(legacy, ignore={"id"}) == Digest.of(orm, ignore={"id"})
        assert Digest.of(legacy) != Digest.of(orm)

    @pytest.mark.parametrize(
        ("legacy", "orm"),
        [
            pytest.param(float("nan"), float("nan"), id="nan"),
            pytest.param(Decimal("NaN"), Decimal("-NaN"), id="decimal-nan"),
            pytest.param(0.0, -0.0, id="signed-zero"),
            pytest.param(Decimal("1.0"), Decimal("1.00"), id="decimal-trailing-zeros"),
            pytest.param(Decimal("0"), Decimal("-0.000"), id="decimal-zeros"),
            pytest.param(
                datetime(2024, 3, 1, 12, tzinfo=UTC),
                datetime(2024, 3, 1, 14, tzinfo=timezone(timedelta(hours=2))),
                id="same-instant-other-zone",
            ),
        ],
    )
    def test_values_compare_calls_equal_but_print_differently_agree(
        self, legacy: Any, orm: Any
    ) -> None:
        assert compare(legacy, orm) == ()
        assert reasons([legacy], [orm]) == []


class TestDifferentResults:
    def test_one_element_replaced_in_a_set_is_caught(self) -> None:
        other = [*UUIDS[:-1], str(uuid.UUID(int=99_999, version=4))]
        assert reasons(set(UUIDS), set(other)) == [
            "same length, different elements (compared by digest; values not kept)"
        ]

    def test_one_element_missing_reports_both_lengths(self) -> None:
        assert reasons(set(UUIDS), set(UUIDS[1:])) == [
            "lengths differ: 2,000 != 1,999 (compared by digest)"
        ]

    def test_a_uuid_object_is_not_its_str(self) -> None:
        as_uuids = {uuid.UUID(u) for u in UUIDS}
        [difference] = compare(Digest.of(set(UUIDS)), Digest.of(as_uuids))
        assert difference.reason == "element types differ (compared by digest)"
        assert (repr(difference.legacy), repr(difference.orm)) == (
            "<set of 2,000 str, digested>",
            "<set of 2,000 uuid.UUID, digested>",
        )

    def test_one_str_among_many_turned_into_a_uuid_is_caught(self) -> None:
        mixed = [*UUIDS[:-1], uuid.UUID(UUIDS[-1])]
        [difference] = compare(Digest.of(UUIDS), Digest.of(mixed))
        assert difference.reason == "element types differ (compared by digest)"
        assert repr(difference.orm) == "<list of 2,000: 1,999 str, 1 uuid.UUID, digested>"

    @pytest.mark.parametrize(
        ("legacy", "orm"),
        [
            pytest.param(1, True, id="int-bool"),
            pytest.param(3, 3.0, id="int-float"),
            pytest.param(Decimal(7), 7, id="decimal-int"),
            pytest.param(NAIVE, NAIVE.replace(tzinfo=UTC), id="naive-aware"),
            pytest.param([1, 2], (1, 2), id="list-tuple"),
            pytest.param({"x"}, frozenset({"x"}), id="set-frozenset"),
            pytest.param(None, "", id="none-empty"),
            pytest.param("abc", b"abc", id="str-bytes"),
            pytest.param("abc", Name("abc"), id="str-subclass"),
        ],
    )
    def test_a_type_difference_nested_in_a_row_is_caught(self, legacy: Any, orm: Any) -> None:
        rows = [{"uuid": u, "value": 0} for u in UUIDS]
        assert reasons([*rows, {"value": legacy}], [*rows, {"value": orm}]) == [
            "same length, different elements (compared by digest; values not kept)"
        ]

    def test_the_same_elements_in_another_order_are_caught_in_a_list(self) -> None:
        swapped = [UUIDS[1], UUIDS[0], *UUIDS[2:]]
        assert reasons(UUIDS, swapped) == [
            "the same elements in another order (compared by digest; values not kept)"
        ]

    def test_a_list_is_not_a_tuple_or_a_set(self) -> None:
        assert reasons(UUIDS, tuple(UUIDS)) == ["type list != tuple"]
        assert reasons(UUIDS, set(UUIDS)) == ["type list != set"]

    def test_a_digest_against_a_value_that_is_no_collection_names_both_types(self) -> None:
        [difference] = compare({"result": Digest.of(UUIDS)}, {"result": None})
        assert (difference.path, difference.reason) == ("['result']", "type list != NoneType")

    def test_the_rendered_diff_shows_lengths_and_types_but_no_value(self) -> None:
        emails = {f"person.{n}@example.com" for n in range(2000)}
        differences = compare(
            {"result": Digest.of(emails)}, {"result": Digest.of(set(list(emails)[1:]))}
        )
        for shown in (render(differences), render(differences, show=show)):
            assert shown == (
                "['result']: legacy=<set of 2,000 str, digested> "
                "orm=<set of 1,999 str, digested> "
                "(lengths differ: 2,000 != 1,999 (compared by digest))"
            )


class TestDigestIfLarge:
    def test_keeps_a_collection_of_up_to_the_limit(self) -> None:
        value = set(UUIDS[:10])
        assert digest_if_large(value, 10) is value

    def test_digests_a_collection_above_the_limit(self) -> None:
        assert digest_if_large(UUIDS[:11], 10) == Digest.of(UUIDS[:11])

    @pytest.mark.parametrize("value", [None, 7, "x" * 100, {"k": list(range(100))}])
    def test_keeps_anything_that_is_not_a_list_tuple_or_set(self, value: Any) -> None:
        assert digest_if_large(value, 1) is value


# Values as the two paths return them, and ways to write an equal value differently.
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=False, width=16),
    st.decimals(places=2, min_value=-5, max_value=5, allow_nan=True),
    st.sampled_from(["", "a", "A", "1", "True", "None", UUIDS[0]]),
    st.sampled_from([uuid.UUID(UUIDS[0]), uuid.UUID(UUIDS[1])]),
    st.sampled_from([NAIVE, NAIVE + timedelta(hours=1), NAIVE.replace(tzinfo=UTC)]),
)
_HASHABLE = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["a", "1"]))
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["a", "b", "id"]), inner, max_size=3),
        st.frozensets(_HASHABLE, max_size=3),
        st.sets(_HASHABLE, max_size=3),
    ),
    max_leaves=8,
)


def written_otherwise(value: Any) -> Any:
    """A value compare finds equal to ``value``, printed differently where that is possible."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone(timedelta(hours=-5)))
    if type(value) is Decimal and value.is_finite():
        return value + Decimal("0.000")
    if type(value) is float and value == 0:
        return -value
    if isinstance(value, dict):
        return {key: written_otherwise(item) for key, item in reversed(value.items())}
    if isinstance(value, (list, tuple)):
        return type(value)(written_otherwise(item) for item in value)
    return value


class TestAgreesWithCompare:
    @given(_VALUES, _VALUES)
    def test_two_values_digest_alike_exactly_when_compare_finds_no_difference(
        self, legacy: Any, orm: Any
    ) -> None:
        agree = compare(legacy, orm, ignore={"id"}) == ()
        assert (Digest.of([legacy], {"id"}) == Digest.of([orm], {"id"})) is agree

    @given(_VALUES)
    def test_a_value_written_otherwise_digests_alike(self, value: Any) -> None:
        other = written_otherwise(value)
        assert compare(value, other) == ()
        assert Digest.of([value]) == Digest.of([other])
