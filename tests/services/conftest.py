"""Service tests: the services on a migrated PostgreSQL, with every facade flag in one mode.

Each test runs once per mode (legacy, shadow, live, orm), so a service rule
holds whichever path serves, and a compared call that disagrees raises
MismatchError instead of passing quietly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from compat.routing.declaration import REGISTRY
from tests.fixtures.layer import Layer

MODES = ("legacy", "shadow", "live", "orm")


def route_everything(layer: Layer, mode: str) -> None:
    """Every facade function in ``mode``; a mismatch in a compared mode fails the test."""
    layer.set_flags(dict.fromkeys(REGISTRY, mode))
    layer.runtime.raise_on_mismatch = True


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def routed(layer: Layer, mode: str) -> Iterator[Layer]:
    """The layer inside a unit rolled back after the test, every flag in ``mode``."""
    route_everything(layer, mode)
    yield layer
    assert all(o.matched for o in layer.observations()), "the two paths disagreed"


@pytest.fixture
def routed_committed(committed_layer: Layer, mode: str) -> Iterator[Layer]:
    """The layer on a fresh migrated database, calls committing for real, every flag in ``mode``."""
    route_everything(committed_layer, mode)
    yield committed_layer
    assert all(o.matched for o in committed_layer.observations()), "the two paths disagreed"


@dataclass
class RecordingSender:
    """A CodeSender that keeps what it was asked to deliver."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)

    def send(self, session_uuid: str, email: str, code: str) -> None:
        self.sent.append((session_uuid, email, code))
