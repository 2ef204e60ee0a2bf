"""compat.shadow.compare: the paths agree only when values and types agree; the diff says where."""

from __future__ import annotations

import copy
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from compat.shadow.compare import Difference, compare, render
from compat.shadow.redact import show

A_UUID = uuid.UUID("6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e")
NAIVE = datetime(2024, 3, 1, 12, 0)


def paths(differences: tuple[Difference, ...]) -> list[str]:
    return [d.path for d in differences]


class TestTypeStrictness:
    @pytest.mark.parametrize(
        ("legacy", "orm"),
        [
            pytest.param(1, True, id="int-bool"),
            pytest.param(0, False, id="zero-false"),
            pytest.param(str(A_UUID), A_UUID, id="str-uuid"),
            pytest.param(NAIVE, NAIVE.replace(tzinfo=UTC), id="naive-aware"),
            pytest.param([1, 2], (1, 2), id="list-tuple"),
            pytest.param(3, 3.0, id="int-float"),
            pytest.param(Decimal(7), 7, id="decimal-int"),
            pytest.param(Decimal("2.5"), 2.5, id="decimal-float"),
            pytest.param(None, 0, id="none-zero"),
            pytest.param("abc", b"abc", id="str-bytes"),
            pytest.param({"a": 1}, OrderedDict(a=1), id="dict-ordereddict"),
            pytest.param({"x"}, frozenset({"x"}), id="set-frozenset"),
        ],
    )
    def test_values_python_calls_equal_but_of_different_types_differ(
        self, legacy: Any, orm: Any
    ) -> None:
        [difference] = compare(legacy, orm)
        assert difference.path == ""

    def test_a_naive_and_an_aware_datetime_are_reported_as_such(self) -> None:
        [difference] = compare({"at": NAIVE}, {"at": NAIVE.replace(tzinfo=UTC)})
        assert difference.reason == "naive vs aware datetime"

    def test_set_members_are_matched_by_type_as_well_as_value(self) -> None:
        [difference] = compare({1, "a"}, {True, "a"})
        assert (difference.legacy, difference.orm) == ([1], [True])

    def test_mapping_keys_are_matched_by_type_as_well_as_value(self) -> None:
        differences = compare({1: "one"}, {1.0: "one"})
        assert [(d.path, d.reason) for d in differences] == [
            ("[1]", "missing on the ORM path"),
            ("[1.0]", "missing on the legacy path"),
        ]

    def test_a_bool_inside_a_tuple_set_member_is_not_an_int(self) -> None:
        assert compare(frozenset({(1, "a")}), frozenset({(True, "a")})) != ()


class TestEqualValues:
    def test_equal_nested_values_have_no_differences(self) -> None:
        value = {"result": [{"uuid": str(A_UUID), "at": NAIVE, "n": 3}], "rows": {"x", "y"}}
        assert compare(value, copy.deepcopy(value)) == ()

    def test_mapping_key_order_does_not_matter(self) -> None:
        assert compare({"a": 1, "b": 2}, {"b": 2, "a": 1}) == ()

    def test_two_nans_agree(self) -> None:
        assert compare([float("nan"), Decimal("NaN")], [float("nan"), Decimal("NaN")]) == ()


class TestDiffPaths:
    def test_a_nested_difference_is_located_like_python_subscripts(self) -> None:
        legacy = {"result": [{"email": "ann@example.com", "name": "Ann"}]}
        orm = {"result": [{"email": "ANN@example.com", "name": "Ann"}]}
        [difference] = compare(legacy, orm)
        assert difference.path == "['result'][0]['email']"
        assert (difference.legacy, difference.orm) == ("ann@example.com", "ANN@example.com")
        assert difference.reason == "values differ"

    def test_the_innermost_key_names_the_field_even_inside_lists(self) -> None:
        [difference] = compare({"emails": ["a@example.com"]}, {"emails": ["b@example.com"]})
        assert (difference.path, difference.field) == ("['emails'][0]", "emails")

    def test_a_top_level_difference_has_an_empty_path(self) -> None:
        assert paths(compare(1, 2)) == [""]

    def test_every_difference_is_reported_not_only_the_first(self) -> None:
        differences = compare({"a": 1, "b": [1, 2], "c": "x"}, {"a": 2, "b": [1, 3], "c": "y"})
        assert paths(differences) == ["['a']", "['b'][1]", "['c']"]

    def test_a_key_only_on_one_side_is_reported_with_the_side(self) -> None:
        differences = compare({"kept": 1, "old": 2}, {"kept": 1, "new": 3})
        assert [(d.path, d.reason) for d in differences] == [
            ("['old']", "missing on the ORM path"),
            ("['new']", "missing on the legacy path"),
        ]


class TestIgnore:
    def test_skips_named_keys_at_any_depth(self) -> None:
        legacy = {"id": 1, "result": {"id": 10, "rows": [{"id": 100, "name": "Bo"}]}}
        orm = {"id": 2, "result": {"id": 11, "rows": [{"id": 101, "name": "Bo"}]}}
        assert compare(legacy, orm, ignore={"id"}) == ()

    def test_skips_a_key_missing_on_one_side(self) -> None:
        assert compare({"id": 1, "name": "Cy"}, {"name": "Cy"}, ignore=["id"]) == ()

    def test_does_not_hide_other_differences_next_to_the_ignored_key(self) -> None:
        differences = compare({"id": 1, "name": "Di"}, {"id": 2, "name": "Dee"}, ignore={"id"})
        assert paths(differences) == ["['name']"]


class TestSets:
    def test_reports_what_only_each_side_has(self) -> None:
        [difference] = compare({"u1", "u2", "u3"}, {"u2", "u3", "u4", "u5"})
        assert difference.legacy == ["u1"]
        assert difference.orm == ["u4", "u5"]
        assert "only-legacy, only-ORM" in difference.reason

    def test_reports_one_side_empty_when_the_other_only_has_more(self) -> None:
        [difference] = compare(frozenset({"v1"}), frozenset({"v1", "v2"}))
        assert (difference.legacy, difference.orm) == ([], ["v2"])


class TestLengths:
    def test_reports_both_lengths_when_they_differ(self) -> None:
        differences = compare({"result": [1, 2, 3]}, {"result": [1, 2]})
        assert [(d.path, d.legacy, d.orm) for d in differences] == [("['result'][len]", 3, 2)]
        assert differences[0].reason == "lengths differ: 3 != 2"

    def test_still_compares_the_common_prefix(self) -> None:
        differences = compare(["a", "b"], ["a", "c", "d"])
        assert paths(differences) == ["[1]", "[len]"]


class TestRender:
    def test_one_readable_line_per_difference(self) -> None:
        differences = compare({"result": [{"n": 1, "ok": True}]}, {"result": [{"n": 2, "ok": 1}]})
        assert render(differences).splitlines() == [
            "['result'][0]['n']: legacy=1 orm=2 (values differ)",
            "['result'][0]['ok']: legacy=True orm=1 (type bool != int)",
        ]

    def test_names_a_top_level_difference_as_the_value(self) -> None:
        assert render(compare(None, 5)) == "<value>: legacy=None orm=5 (type NoneType != int)"

    def test_shows_a_missing_key_as_missing(self) -> None:
        assert (
            render(compare({}, {"k": 1}))
            == "['k']: legacy=<missing> orm=1 (missing on the legacy path)"
        )

    def test_stops_at_the_limit_and_says_how_many_more(self) -> None:
        differences = compare(list(range(5)), list(range(10, 15)))
        lines = render(differences, limit=2).splitlines()
        assert lines[2:] == ["... and 3 more"]
        assert len(lines) == 3

    def test_shows_values_through_the_given_function(self) -> None:
        differences = compare({"email": "eve@example.com"}, {"email": "EVE@example.com"})
        text = render(differences, show=show)
        assert "eve@example.com" not in text
        assert "EVE@example.com" not in text
        assert text.startswith("['email']: legacy='<redacted str #")

    def test_renders_nothing_for_no_differences(self) -> None:
        assert render(()) == ""


# -- Properties ---------------------------------------------------------------

plus_five_thirty = timezone(timedelta(hours=5, minutes=30))
naive_datetimes = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1))
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.text(max_size=8),
    st.uuids(),
    naive_datetimes,
    naive_datetimes.map(lambda moment: moment.replace(tzinfo=UTC)),
    naive_datetimes.map(lambda moment: moment.replace(tzinfo=plus_five_thirty)),
)
hashable_leaves = leaves.filter(lambda leaf: not (type(leaf) is Decimal and leaf.is_snan()))
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
        st.frozensets(hashable_leaves, max_size=4),
    ),
    max_leaves=12,
)


def twin(value: Any) -> Any:
    """A value Python may call equal to ``value`` but of another type (or else different)."""
    if type(value) is bool:
        return int(value)
    if type(value) is int:
        return Decimal(value)
    if type(value) is float:
        return Decimal(value)
    if type(value) is Decimal:
        return str(value)
    if type(value) is str:
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo else value.replace(tzinfo=UTC)
    if value is None:
        return False
    if type(value) is list:
        return tuple(value)
    if type(value) is tuple:
        return list(value)
    if type(value) is dict:
        return OrderedDict(value)
    if type(value) is frozenset:
        return set(value)
    raise AssertionError(f"no twin for {type(value).__name__}")


def nodes(value: Any) -> int:
    """How many values ``value`` is made of, itself included (pre-order)."""
    if type(value) in (list, tuple):
        return 1 + sum(nodes(item) for item in value)
    if type(value) is dict:
        return 1 + sum(nodes(item) for item in value.values())
    if type(value) is frozenset:
        return 1 + len(value)
    return 1


def replaced(value: Any, index: int, change: Callable[[Any], Any]) -> Any:
    """``value`` with its ``index``-th node (pre-order, as ``nodes`` counts) changed."""
    if index == 0:
        return change(value)
    index -= 1
    if type(value) in (list, tuple, dict, frozenset):
        items = list(value.items()) if type(value) is dict else [(None, v) for v in value]
        rebuilt: list[tuple[Any, Any]] = []
        for key, item in items:
            size = nodes(item)
            rebuilt.append((key, replaced(item, index, change) if 0 <= index < size else item))
            index -= size
        if type(value) is dict:
            return dict(rebuilt)
        return type(value)(item for _, item in rebuilt)
    raise AssertionError("index out of range")


class TestProperties:
    @settings(max_examples=150)
    @given(values)
    def test_a_value_never_differs_from_its_deep_copy(self, value: Any) -> None:
        assert compare(value, copy.deepcopy(value)) == ()

    @settings(max_examples=150)
    @given(values, st.data())
    def test_a_value_always_differs_from_itself_with_one_part_swapped_for_a_look_alike(
        self, value: Any, data: st.DataObject
    ) -> None:
        index = data.draw(st.integers(0, nodes(value) - 1), label="node")
        tampered = replaced(value, index, twin)
        differences = compare(value, tampered)
        assert differences != ()
        assert render(differences)


_SCALAR_SOUP = st.sampled_from(
    [0, 1, True, False, 1.0, float("nan"), "a", str(A_UUID), A_UUID, None, NAIVE, b"a"]
)
_SOUP = _SCALAR_SOUP | st.sampled_from([NAIVE.replace(tzinfo=UTC), Decimal(1)])
_NESTED = st.recursive(
    _SOUP,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.sampled_from(["id", "email", 1, True]), inner, max_size=3)
    ),
    max_leaves=8,
)


class TestFastPath:
    """compare() first asks a fast walk whether the two values are plainly equal."""

    @settings(max_examples=300)
    @given(legacy=_NESTED, orm=_NESTED, ignore=st.sampled_from([(), ("id",)]))
    @example(legacy={(1,)}, orm={(True,)}, ignore=())
    @example(legacy=[{"id": 1}], orm=[{"id": True}], ignore=())
    def test_the_fast_path_never_calls_equal_what_the_full_walk_calls_different(
        self, legacy: Any, orm: Any, ignore: tuple[str, ...]
    ) -> None:
        from compat.shadow.compare import _compare, _strictly_equal

        found: list[Difference] = []
        _compare(legacy, orm, "", None, frozenset(ignore), found)
        if _strictly_equal(legacy, orm, frozenset(ignore)):
            assert found == [], (legacy, orm)
        assert compare(legacy, orm, ignore=ignore) == tuple(found)

    def test_two_equal_rows_take_the_fast_path(self) -> None:
        from compat.shadow.compare import _strictly_equal

        row = {"uuid": str(A_UUID), "created_at": NAIVE, "attempts": 0, "verified": False}
        assert _strictly_equal([row], [copy.deepcopy(row)], frozenset())
        assert not _strictly_equal([row], [{**row, "attempts": False}], frozenset())
        uuids = {str(uuid.uuid4()) for _ in range(3)}
        assert _strictly_equal(uuids, set(uuids), frozenset())
        assert not _strictly_equal({1, 2}, {True, 2}, frozenset())

    def test_a_str_subclass_key_on_either_side_is_left_to_the_full_walk(self) -> None:
        from enum import StrEnum

        from compat.shadow.compare import _strictly_equal

        class Key(StrEnum):
            EMAIL = "email"

        for legacy, orm in (({"email": "x"}, {Key.EMAIL: "x"}), ({Key.EMAIL: "x"}, {"email": "x"})):
            assert not _strictly_equal(legacy, orm, frozenset())
            assert compare(legacy, orm) != ()
