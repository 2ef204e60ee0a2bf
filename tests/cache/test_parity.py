"""Cache tests: the cache changes no answer: parity and `compat verify` agree with it on and off."""

from __future__ import annotations

from typing import Any

import pytest

from compat.routing.declaration import REGISTRY
from compat.shadow.compare import compare
from compat.verify import seeding
from compat.verify.calls import Call, calls_for, sample
from compat.verify.runner import verify
from tests.cache.helpers import cache
from tests.fixtures.layer import Layer

SAMPLE = 5


def _outcome(key: str, call: Call) -> tuple[str, Any]:
    try:
        return ("value", REGISTRY[key].routed(*call.args, **call.kwargs))
    except Exception as error:  # an edge call's refusal must be refused alike
        return ("error", f"{type(error).__name__}: {error}")


def _seeded(layer: Layer) -> dict[str, list[Call]]:
    with layer.engine.begin() as connection:
        seeding.seed(connection, 40)
    with layer.engine.connect() as connection:
        samples = sample(connection, SAMPLE)
    settings = layer.runtime.cache_settings
    assert settings is not None
    return {key: calls_for(key, samples, SAMPLE) for key in settings.cacheable()}


class TestSameAnswers:
    @pytest.mark.parametrize("mode", ["legacy", "shadow", "live", "orm"])
    def test_every_cacheable_read_answers_alike_with_the_cache_on_and_off(
        self, cached_layer: Layer, mode: str
    ) -> None:
        """Type-strict, as the shadow comparison is: a miss and a hit both match the uncached."""
        calls = _seeded(cached_layer)
        cached_layer.set_flags({"*": mode})
        uncached = {key: [_outcome(key, call) for call in made] for key, made in calls.items()}
        for key in calls:
            cache(cached_layer, key)

        missed = {key: [_outcome(key, call) for call in made] for key, made in calls.items()}
        hit = {key: [_outcome(key, call) for call in made] for key, made in calls.items()}

        for key in calls:
            assert not compare(uncached[key], missed[key]), f"{key} differs on a miss"
            assert not compare(uncached[key], hit[key]), f"{key} differs on a hit"
        assert cached_layer.runtime.cache.stats.hits >= sum(len(made) for made in calls.values())

    def test_verify_reports_alike_with_the_cache_on_and_off(self, cached_layer: Layer) -> None:
        calls = _seeded(cached_layer)
        keys = sorted(REGISTRY)

        def verdicts() -> list[tuple[str, int, int, str]]:
            report = verify(keys, sample_size=SAMPLE)
            return [(r.key, r.cases, r.matches, r.verdict) for r in report.functions]

        off = verdicts()
        for key in calls:
            cache(cached_layer, key)
        on = verdicts()

        assert on == off
        assert all(verdict == "ready" for *_, verdict in on)
