"""Compat layer: run one facade call on both paths from the same state and compare everything.

The parity test suite and `compat verify` share this: each path runs in its
own savepoint, rolled back afterwards, so both start from identical state and
the database is left exactly as it was. A result larger than DIGEST_ABOVE
elements is kept only as its digest, taken as soon as its path has run, so
that two whole-table results are never in memory at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from compat.errors import InvalidArgument
from compat.routing.declaration import REGISTRY
from compat.routing.sides import run_isolated
from compat.routing.unit_of_work import UnitOfWork
from compat.shadow.compare import Difference, render
from compat.shadow.digest import DIGEST_ABOVE, Digest, digest_if_large
from compat.shadow.observation import Outcome, Side, differences
from compat.shadow.redact import show

__all__ = ["Comparison", "compare_paths"]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Both paths' outcomes for one call, and where they disagree."""

    key: str
    legacy: Outcome
    orm: Outcome
    differences: tuple[Difference, ...]
    label: str = ""
    """What the call was (a parity case's name), for reports."""
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @property
    def matched(self) -> bool:
        return not self.differences

    def report(self, *, redacted: bool = True, limit: int = 10) -> str:
        """``key [label]: MISMATCH`` then the differences, a line each; redacted by default."""
        head = f"{self.key}{f' [{self.label}]' if self.label else ''}"
        if self.matched:
            return f"{head}: match"
        shown = render(
            self.differences,
            show=show if redacted else (lambda value, _field: repr(value)),
            limit=limit,
        )
        return f"{head}: MISMATCH between the legacy and the ORM path\n{shown}"


def compare_paths(
    key: str,
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    unit: UnitOfWork,
    read_state: Callable[[UnitOfWork], Any] | None = None,
    label: str = "",
    digest_above: int | None = DIGEST_ABOVE,
) -> Comparison:
    """Run ``key`` on the legacy path, then on the ORM path, each from the state ``unit`` has now.

    Bad input is checked first, as the facade does; when it is rejected both
    outcomes carry that one error, since neither path runs. Each path runs in
    a savepoint that is rolled back; ``read_state`` reads what else should
    match after the call (for example every row of every table). A result
    that is a list, tuple or set of more than ``digest_above`` elements is
    replaced by its Digest (in the Comparison too) before the next path runs;
    None keeps every value.
    """
    spec = REGISTRY[key]
    kwargs = dict(kwargs or {})
    try:
        spec.validate(args, kwargs)
    except (InvalidArgument, TypeError) as error:
        rejected = (Outcome(Side.LEGACY, error=error), Outcome(Side.ORM, error=error))
        return Comparison(key, *rejected, differences=(), label=label, arguments=kwargs)
    legacy = run_isolated(spec, Side.LEGACY, unit, args, kwargs, read_state=read_state)
    if digest_above is not None:
        legacy = _digested(legacy, digest_above, spec.volatile)
    orm = run_isolated(spec, Side.ORM, unit, args, kwargs, read_state=read_state)
    if digest_above is not None:
        orm = _digested(orm, digest_above, spec.volatile)
        if isinstance(legacy.value, Digest) is not isinstance(orm.value, Digest):
            # One side was large and the other not: compare two digests, whose
            # difference names both lengths, rather than a digest and a value
            # (-1: a collection of any length).
            legacy, orm = _digested(legacy, -1, spec.volatile), _digested(orm, -1, spec.volatile)
    return Comparison(
        key,
        legacy,
        orm,
        differences(legacy, orm, spec.volatile),
        label=label,
        arguments={**spec.arguments(args, {}), **kwargs},
    )


def _digested(outcome: Outcome, above: int, ignore: Collection[str]) -> Outcome:
    value = digest_if_large(outcome.value, above, ignore)
    return outcome if value is outcome.value else dataclasses.replace(outcome, value=value)
