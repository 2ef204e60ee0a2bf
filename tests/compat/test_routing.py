"""Each facade function is served by the path its flag names, as the SQL each path sends shows."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from compat.routing.declaration import REGISTRY
from compat.shadow.observation import Side
from tests.compat.calls import CALLS, Call
from tests.fixtures.layer import Layer

KEYS = sorted(REGISTRY)


def facade_function(key: str) -> Callable[..., Any]:
    module, _, name = key.partition(".")
    function: Callable[..., Any] = getattr(importlib.import_module(f"compat.{module}"), name)
    return function


def arrange_and_call(layer: Layer, key: str, mode: str) -> Any:
    assert layer.unit is not None
    call: Call = CALLS[key](layer.unit.dbapi_connection)
    layer.set_flags({key: mode})
    layer.forget_statements()
    return facade_function(key)(*call.args, **call.kwargs)


def data_paths(layer: Layer) -> list[Side]:
    """Paths of the statements that touched data, with the touched-rows read-backs left out."""
    from tests.fixtures.layer import LOG

    return [
        s.path
        for s in LOG.statements
        if ("user_sessions" in s.sql or "uploaded_files" in s.sql)
        and "compat: touched rows" not in s.sql
    ]


def collapse(paths: list[Side]) -> list[Side]:
    """[orm, orm, legacy] -> [orm, legacy]: the order in which the paths ran."""
    return [p for i, p in enumerate(paths) if i == 0 or paths[i - 1] is not p]


def tampered(value: Any) -> Any:
    """A value that differs from ``value`` in a way a type-strict comparison must notice."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, dict):
        return {**value, "tampered": True}
    if isinstance(value, list):
        return [*value, None]
    if isinstance(value, set):
        return value | {"tampered"}
    return {"tampered": value}


@pytest.fixture
def wrong_candidate(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Swap a facade function's ORM adapter for one whose answer is deliberately wrong."""

    def swap(key: str) -> None:
        spec = REGISTRY[key]

        def wrong(db: Session, *args: Any, **kwargs: Any) -> Any:
            return tampered(spec.orm(db, *args, **kwargs))

        monkeypatch.setitem(REGISTRY, key, dataclasses.replace(spec, orm=wrong))

    return swap


def test_every_facade_function_has_a_representative_call() -> None:
    assert sorted(CALLS) == KEYS


@pytest.mark.parametrize("key", KEYS)
class TestModes:
    def test_legacy_mode_sends_only_legacy_sql(self, layer: Layer, key: str) -> None:
        arrange_and_call(layer, key, "legacy")
        assert collapse(data_paths(layer)) == [Side.LEGACY]
        assert layer.observations() == []

    def test_orm_mode_sends_only_orm_sql(self, layer: Layer, key: str) -> None:
        arrange_and_call(layer, key, "orm")
        assert collapse(data_paths(layer)) == [Side.ORM]
        assert layer.observations() == []

    def test_shadow_mode_runs_the_orm_candidate_then_serves_legacy(
        self, layer: Layer, key: str
    ) -> None:
        arrange_and_call(layer, key, "shadow")
        assert collapse(data_paths(layer)) == [Side.ORM, Side.LEGACY]
        [observation] = layer.observations()
        assert (observation.key, observation.serving.side) == (key, Side.LEGACY)
        assert observation.matched, observation.summary()

    def test_live_mode_runs_the_legacy_candidate_then_serves_the_orm(
        self, layer: Layer, key: str
    ) -> None:
        arrange_and_call(layer, key, "live")
        assert collapse(data_paths(layer)) == [Side.LEGACY, Side.ORM]
        [observation] = layer.observations()
        assert (observation.key, observation.serving.side) == (key, Side.ORM)
        assert observation.matched, observation.summary()

    def test_shadow_mode_returns_legacy_result_and_records_a_mismatch_from_a_wrong_orm(
        self, layer: Layer, key: str, wrong_candidate: Callable[[str], None]
    ) -> None:
        wrong_candidate(key)
        result = arrange_and_call(layer, key, "shadow")
        [observation] = layer.observations()
        assert not observation.matched
        assert observation.serving.side is Side.LEGACY
        assert result == observation.legacy.value
        assert result != observation.orm.value

    def test_live_mode_returns_the_orm_result_and_records_the_mismatch(
        self, layer: Layer, key: str, wrong_candidate: Callable[[str], None]
    ) -> None:
        wrong_candidate(key)
        result = arrange_and_call(layer, key, "live")
        [observation] = layer.observations()
        assert not observation.matched
        assert observation.serving.side is Side.ORM
        assert result == observation.serving.value
        assert observation.candidate.value != observation.serving.value


class TestSampling:
    def test_a_call_not_sampled_runs_the_serving_path_alone(self, layer: Layer) -> None:
        key = "user_sessions.get_session"
        arrange_and_call(layer, key, "shadow:0")
        assert collapse(data_paths(layer)) == [Side.LEGACY]
        assert layer.observations() == []

    def test_a_live_call_not_sampled_is_served_by_the_orm(self, layer: Layer) -> None:
        key = "user_sessions.get_session"
        arrange_and_call(layer, key, "live:0")
        assert collapse(data_paths(layer)) == [Side.ORM]


class TestCandidateFailure:
    def test_a_candidate_database_error_is_recorded_and_the_transaction_stays_usable(
        self, layer: Layer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        key = "user_sessions.get_session"
        spec = REGISTRY[key]

        def failing(db: Session, session_uuid: str) -> Any:
            db.execute(sa.text("SELECT 1 / 0"))

        monkeypatch.setitem(REGISTRY, key, dataclasses.replace(spec, orm=failing))
        result = arrange_and_call(layer, key, "shadow")
        assert result is not None
        assert result["name"] == "Ada Lovelace"
        [observation] = layer.observations()
        assert observation.candidate.error_text is not None
        assert "DivisionByZero [22012]" in observation.candidate.error_text
        assert not observation.matched
        # The caller's transaction was not aborted by the candidate.
        assert facade_function("user_sessions.count_sessions")() >= 1

    def test_a_candidate_python_error_never_reaches_the_caller(
        self, layer: Layer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        key = "user_sessions.complete_session"
        spec = REGISTRY[key]

        def broken(db: Session, session_uuid: str) -> bool:
            raise RuntimeError("bug in the new code")

        monkeypatch.setitem(REGISTRY, key, dataclasses.replace(spec, orm=broken))
        assert arrange_and_call(layer, key, "shadow") is True
        [observation] = layer.observations()
        assert observation.candidate.error_text == "RuntimeError: bug in the new code"
