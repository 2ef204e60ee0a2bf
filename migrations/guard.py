"""Migrations side: a downgrade that would drop data refuses to start unless someone confirmed it.

A revision whose downgrade destroys rows says so in a module constant,
``DATA_LOSS_ON_DOWNGRADE = "drops ..."``. env.py wraps the command's list of
steps with ``refusing_unconfirmed_data_loss``: Alembic asks for the whole list
before it runs the first step, so a refusal comes before any DDL and leaves
every table and row where it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from alembic.runtime.migration import RevisionStep
from alembic.util import CommandError

__all__ = [
    "CONFIRM_OPTION",
    "DATA_LOSS_ATTRIBUTE",
    "DataLoss",
    "DataLossRefused",
    "data_lost_by",
    "refusing_unconfirmed_data_loss",
]

# The revision module's constant naming what its downgrade destroys.
DATA_LOSS_ATTRIBUTE = "DATA_LOSS_ON_DOWNGRADE"
# `alembic -x allow-data-loss=yes downgrade ...`
CONFIRM_OPTION = "allow-data-loss"

StepsFn = Callable[[Any, Any], Iterable[Any]]


@dataclass(frozen=True, slots=True)
class DataLoss:
    """One revision's downgrade and what it destroys."""

    revision: str
    loses: str


class DataLossRefused(CommandError):
    """A downgrade would drop data and nobody confirmed it; nothing has been run.

    A CommandError, so the alembic command line prints its one ``FAILED:``
    line and exits non-zero without a traceback.
    """

    def __init__(self, losses: Sequence[DataLoss], destination: str) -> None:
        self.losses = tuple(losses)
        self.destination = destination
        what = "; ".join(f"{loss.revision} {loss.loses}" for loss in self.losses)
        super().__init__(
            f"Refusing to downgrade to {destination}, which would lose data: {what}. "
            "Nothing was changed.\n"
            f"To confirm, run `alembic -x {CONFIRM_OPTION}=yes downgrade {destination}` "
            "or set COMPAT_ALLOW_DATA_LOSS=1."
        )


def data_lost_by(steps: Iterable[Any]) -> list[DataLoss]:
    """The downgrade steps among ``steps`` whose revision declares it destroys data, in order."""
    losses = []
    for step in steps:
        if isinstance(step, RevisionStep) and not step.is_upgrade:
            loses = getattr(step.revision.module, DATA_LOSS_ATTRIBUTE, None)
            if loses:
                losses.append(DataLoss(step.revision.revision, loses))
    return losses


def refusing_unconfirmed_data_loss(
    fn: StepsFn, *, confirmed: Callable[[], bool], destination: Callable[[], str]
) -> StepsFn:
    """Wrap a command's step function: it raises DataLossRefused before any step runs.

    ``confirmed`` and ``destination`` are asked only when some step would lose
    data: a mistyped confirmation cannot stop an upgrade, and commands such as
    ``current`` have no destination.
    """

    def steps(heads: Any, migration_context: Any) -> list[Any]:
        planned = list(fn(heads, migration_context))
        losses = data_lost_by(planned)
        if losses and not confirmed():
            raise DataLossRefused(losses, destination())
        return planned

    return steps
