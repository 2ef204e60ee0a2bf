"""Parity suite: run one case on both paths, from the state its arrangement seeded."""

from __future__ import annotations

from compat.routing.unit_of_work import UnitOfWork
from compat.verify.parity import Comparison, compare_paths
from tests.parity.case import Call, Case, Seed
from tests.parity.tables import table_state

__all__ = ["run_call", "run_case"]


def run_case(unit: UnitOfWork, seed: Seed, case: Case) -> Comparison:
    """Seed the case's rows, then run its call on each path, every table compared afterwards."""
    return run_call(unit, case, case.arrange(seed))


def run_call(unit: UnitOfWork, case: Case, made: Call) -> Comparison:
    """Run an arranged call on each path, in savepoints rolled back, and compare the outcomes."""
    return compare_paths(
        case.key, made.args, made.kwargs, unit=unit, read_state=table_state, label=case.name
    )
