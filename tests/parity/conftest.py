"""Parity suite fixtures: a case's cleared, seeded database; twin databases for the machine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from orm.database import create_engine
from tests.fixtures.layer import Layer
from tests.fixtures.postgres import RUN, PgServer
from tests.parity.case import Seed
from tests.parity.differential import Twins


@pytest.fixture
def seed(layer: Layer) -> Seed:
    """Seeds rows on the layer's rolled-back unit of work, starting from empty tables."""
    assert layer.unit is not None
    db = Seed(layer.unit.dbapi_connection)
    db.clear()
    return db


@pytest.fixture(scope="module")
def twins(pg_server: PgServer, migrated_template: str) -> Iterator[Twins]:
    """Two clones of the migrated template: the legacy path runs on one, the ORM on the other."""
    with ExitStack() as stack:
        engines = []
        for path in ("legacy", "orm"):
            name = f"{RUN}_twin_{path}"
            stack.enter_context(pg_server.janitor(name, template=migrated_template))
            engine = create_engine(pg_server.url(name))
            stack.callback(engine.dispose)
            engines.append(engine)
        yield Twins(legacy=engines[0], orm=engines[1])
