"""Compat layer: what one compared facade call saw on each path, as values that travel."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from compat.flags.store import Mode
from compat.shadow.compare import Difference, compare, render
from compat.shadow.faults import is_connection_fault
from compat.shadow.redact import redact_text, show

__all__ = ["Observation", "Outcome", "Side", "Verdict", "differences"]


class Side(StrEnum):
    """A side of the migration: the legacy SQL or the ORM, each of which can serve a call."""

    LEGACY = "legacy"
    ORM = "orm"


class Verdict(StrEnum):
    """What a compared call showed: the paths agreed, disagreed, or a side's connection failed."""

    MATCH = "match"
    MISMATCH = "mismatch"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one path did: its value or its error, how long it took, the rows a write left."""

    side: Side
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0
    rows: Any = None
    """For writes: the touched rows as read back inside the same transaction."""
    state: Any = None
    """Whatever else a comparison asked to read after the call (whole tables, in parity)."""

    @property
    def faulted(self) -> bool:
        """True when this path failed because of its connection or the server (faults.py)."""
        return is_connection_fault(self.error)

    @property
    def error_text(self) -> str | None:
        """The error as ``Class: message`` (with SQLSTATE when there is one), redacted."""
        if self.error is None:
            return None
        code = getattr(self.error, "pgcode", None)
        message = str(self.error).splitlines()[0] if str(self.error) else ""
        return redact_text(f"{type(self.error).__name__}{f' [{code}]' if code else ''}: {message}")


@dataclass(frozen=True, slots=True)
class Observation:
    """One compared call: the function, the mode, both outcomes and their differences."""

    key: str
    mode: Mode
    serving: Outcome
    candidate: Outcome
    differences: tuple[Difference, ...]

    @property
    def fault(self) -> Side | None:
        """The side whose connection failed (the serving side when both did), else None.

        Such a call compared nothing: it is neither a match nor a mismatch.
        """
        for outcome in (self.serving, self.candidate):
            if outcome.faulted:
                return outcome.side
        return None

    @property
    def matched(self) -> bool:
        """True when the candidate agreed with the serving path in value, error and rows.

        Always False for a fault; count mismatches with ``verdict``, which
        tells the two apart.
        """
        return not self.differences and self.fault is None

    @property
    def verdict(self) -> Verdict:
        """``match``, ``mismatch``, or ``fault`` when a side lost its connection."""
        if self.fault is not None:
            return Verdict.FAULT
        return Verdict.MATCH if not self.differences else Verdict.MISMATCH

    @property
    def legacy(self) -> Outcome:
        return self.serving if self.serving.side is Side.LEGACY else self.candidate

    @property
    def orm(self) -> Outcome:
        return self.serving if self.serving.side is Side.ORM else self.candidate

    def diff_text(self, limit: int = 10) -> str:
        """The differences as readable lines, personal data redacted."""
        return render(self.differences, show=show, limit=limit)

    def summary(self) -> str:
        """One redacted line: key, mode, verdict, durations, first differences."""
        verdict = {
            Verdict.MATCH: "match",
            Verdict.MISMATCH: "MISMATCH",
            Verdict.FAULT: f"FAULT of the {self.fault} side (connection), not compared",
        }[self.verdict]
        line = (
            f"{self.key} [{self.mode}] {verdict}: legacy {self.legacy.seconds * 1e3:.2f} ms, "
            f"orm {self.orm.seconds * 1e3:.2f} ms"
        )
        if self.candidate.error is not None:
            line += f"; candidate ({self.candidate.side}) raised {self.candidate.error_text}"
        if self.serving.error is not None and self.verdict is Verdict.FAULT:
            line += f"; serving ({self.serving.side}) raised {self.serving.error_text}"
        if self.verdict is Verdict.MISMATCH:
            line += "\n" + self.diff_text()
        return line

    @classmethod
    def of(
        cls,
        key: str,
        mode: Mode,
        serving: Outcome,
        candidate: Outcome,
        volatile: frozenset[str] = frozenset(),
    ) -> Observation:
        """The observation of one compared call, its differences worked out."""
        legacy, orm = (serving, candidate) if serving.side is Side.LEGACY else (candidate, serving)
        return cls(key, mode, serving, candidate, differences(legacy, orm, volatile))


def differences(
    legacy: Outcome, orm: Outcome, volatile: frozenset[str] = frozenset()
) -> tuple[Difference, ...]:
    """Where the two outcomes disagree: the same error (class and SQLSTATE), or equal values."""
    if legacy.error is not None or orm.error is not None:
        if (
            legacy.error is not None
            and orm.error is not None
            and type(legacy.error) is type(orm.error)
            and getattr(legacy.error, "pgcode", None) == getattr(orm.error, "pgcode", None)
        ):
            return ()
        return (
            Difference(
                "<raised>",
                legacy.error_text or legacy.value,
                orm.error_text or orm.value,
                "one side raised, or they raised differently",
            ),
        )
    return compare(
        {"result": legacy.value, "rows": legacy.rows, "state": legacy.state},
        {"result": orm.value, "rows": orm.rows, "state": orm.state},
        ignore=volatile,
    )
