"""One declaration drives everything: a facade function declared here, in a test module, is
routed, validated, verified, benchmarked and asked for parity cases with no other change."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import bench.operations
from compat.errors import InvalidArgument
from compat.routing.declaration import REGISTRY, Shape
from compat.routing.dispatch import facade
from compat.shadow.observation import Side
from compat.verify import runner
from compat.verify.calls import Call, Samples, calls_for
from legacy.db import fetch_one
from orm.models import UserSession
from tests.compat.calls import CALLS
from tests.fixtures.layer import Layer
from tests.parity.catalog import CASES
from tests.parity.test_coverage import coverage_gaps

KEY = "test_registry.count_named"


def count_named(name: str) -> int:
    """The legacy function being replaced: how many sessions have this name."""
    row = fetch_one("SELECT count(*) AS n FROM user_sessions WHERE name = %s", (name,))
    return int(row["n"]) if row else 0


def _calls(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    return [Call("a common name", ("Ada Lovelace",)), Call("nobody", ("N. O. Body",), edge=True)]


@pytest.fixture
def declared() -> Iterator[Any]:
    """The throwaway function, declared as a facade module would; forgotten afterwards."""

    @facade(count_named, shape=Shape.AGGREGATE, calls=_calls)
    def routed(db: Session, name: str) -> int:
        statement = sa.select(sa.func.count()).where(UserSession.name == name)
        return int(db.scalar(statement) or 0)

    try:
        yield routed
    finally:
        REGISTRY.pop(KEY)


class TestAFunctionDeclaredInATestModule:
    def test_is_in_the_registry_under_its_module_and_name(self, declared: Any) -> None:
        assert REGISTRY[KEY].routed is declared
        assert REGISTRY[KEY].kind.value == "read"

    def test_is_routed_by_its_own_flag_to_each_side(self, layer: Layer, declared: Any) -> None:
        assert layer.unit is not None
        for mode, side in (("legacy", Side.LEGACY), ("orm", Side.ORM)):
            layer.set_flags({KEY: mode})
            layer.forget_statements()
            assert declared("Nobody Here") == 0
            assert set(layer.paths_touching_data()) == {side}

    def test_is_compared_in_shadow_mode(self, layer: Layer, declared: Any) -> None:
        layer.set_flags({KEY: "shadow"})
        declared("Ada Lovelace")
        [observation] = [o for o in layer.observations() if o.key == KEY]
        assert observation.matched

    def test_has_its_arguments_checked_by_rules_derived_from_the_legacy_signature(
        self, layer: Layer, declared: Any
    ) -> None:
        with pytest.raises(InvalidArgument, match="argument 'name' must be a str, not int"):
            declared(42)
        with pytest.raises(InvalidArgument, match="contains a NUL character"):
            declared("a\x00b")

    def test_gets_the_calls_it_declared_in_compat_verify(self, declared: Any) -> None:
        calls = calls_for(KEY, Samples(), 20)
        assert [call.label for call in calls] == ["a common name", "nobody"]

    def test_is_verified_by_compat_verify(self, layer: Layer, declared: Any) -> None:
        report = runner.verify([KEY], sample_size=3)
        [result] = report.functions
        assert (result.key, result.cases, result.mismatches, result.verdict) == (
            KEY,
            2,
            0,
            "ready",
        )

    def test_is_in_the_bench_operation_list(self, declared: Any) -> None:
        names = [operation.name for operation in bench.operations.operations()]
        assert KEY in names

    def test_has_a_representative_call_for_the_routing_tests(
        self, layer: Layer, declared: Any
    ) -> None:
        assert layer.unit is not None
        assert CALLS[KEY](layer.unit.dbapi_connection).args == ("Ada Lovelace",)

    def test_fails_the_parity_meta_test_until_it_has_cases(self, declared: Any) -> None:
        assert coverage_gaps(REGISTRY, CASES) == [f"{KEY}: no parity case"]
