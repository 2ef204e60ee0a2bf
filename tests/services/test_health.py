"""HealthService: answers from one facade read."""

from __future__ import annotations

import pytest

from compat.runtime import reset_runtime
from orm.database import dispose_engine
from services import HealthService


@pytest.mark.usefixtures("routed")
def test_the_database_answers_when_the_layer_can_reach_it() -> None:
    assert HealthService().database_answers() is True


def test_the_database_does_not_answer_on_a_refused_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    dispose_engine()
    previous = reset_runtime(None)  # a runtime of its own, gone after the test
    try:
        assert HealthService().database_answers() is False
    finally:
        reset_runtime(previous)
        dispose_engine()
