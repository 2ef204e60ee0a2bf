"""Random sequences of facade calls give the same results and tables on the legacy and ORM paths.

The CI profile runs a few seconds of short sequences, the same ones every
time; hunt longer with ``pytest --hypothesis-profile=deep tests/parity``.
A failure shrinks to a minimal sequence of steps, printed with the diff.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.parity.differential import DifferentialMachine, Twins


class TestDifferentialStateMachine:
    def test_every_step_and_the_tables_after_it_agree_on_both_paths(
        self, twins: Twins, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(DifferentialMachine, "twins", twins)
        run_state_machine_as_test(
            DifferentialMachine,
            # The active profile ("ci" unless --hypothesis-profile names another)
            # decides how many sequences and how long; each step hits two databases.
            settings=settings(suppress_health_check=[HealthCheck.too_slow]),
        )
