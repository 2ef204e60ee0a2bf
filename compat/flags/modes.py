"""Compat layer: the modes a facade function can be in, and a flag's state and audited change."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, NamedTuple

from compat.errors import InvalidFlagValue, UnknownFlag

__all__ = [
    "MODES",
    "Entries",
    "Entry",
    "FlagChange",
    "FlagState",
    "Mode",
    "check_key",
    "parse_mode",
    "parse_percent",
    "parse_sample_rate",
]


class Mode(StrEnum):
    """What a facade call runs: who serves the caller, and whether the other path is compared."""

    LEGACY = "legacy"
    """Legacy serves; nothing else runs."""
    SHADOW = "shadow"
    """Legacy serves; the ORM runs as a candidate and is compared."""
    LIVE = "live"
    """The ORM serves; legacy runs as a candidate and is compared."""
    ORM = "orm"
    """The ORM serves; nothing else runs."""


MODES: Final = tuple(mode.value for mode in Mode)


@dataclass(frozen=True, slots=True)
class FlagState:
    """A facade function's effective flag and where it came from."""

    key: str
    mode: Mode
    sample_rate: float = 1.0
    source: str = "default"
    percent: float = 100.0
    """The share of calls the mode serves; the others get the stage before (a ramp)."""


@dataclass(frozen=True, slots=True)
class FlagChange:
    """One audited change of a flag."""

    key: str
    old_mode: str | None
    new_mode: str
    old_sample_rate: float | None
    new_sample_rate: float
    changed_by: str
    reason: str
    changed_at: datetime
    old_percent: float | None = None
    new_percent: float | None = None


class Entry(NamedTuple):
    """One source's flag of one key: its mode and, where the source gives them, rate and ramp."""

    mode: Mode
    sample_rate: float | None = None
    percent: float | None = None


Entries = dict[str, Entry]
"""Per key: what one source says of its flag."""


def parse_mode(key: str, value: object) -> Mode:
    """``value`` as a Mode; InvalidFlagValue naming every valid mode."""
    try:
        return Mode(str(value))
    except ValueError:
        raise InvalidFlagValue(
            f"{key}: unknown mode {value!r}; valid modes are {', '.join(MODES)}"
        ) from None


def parse_sample_rate(key: str, value: object) -> float:
    """``value`` as a sample rate from 0 to 1; InvalidFlagValue otherwise."""
    if type(value) not in (int, float) and not isinstance(value, str):
        raise InvalidFlagValue(f"{key}: sample rate must be a number from 0 to 1, not {value!r}")
    try:
        rate = float(value)  # type: ignore[arg-type]
    except ValueError:
        raise InvalidFlagValue(
            f"{key}: sample rate must be a number from 0 to 1, not {value!r}"
        ) from None
    if not 0.0 <= rate <= 1.0:
        raise InvalidFlagValue(f"{key}: sample rate must be from 0 to 1, not {rate}")
    return rate


def check_key(key: str, keys: Collection[str]) -> str:
    """Return ``key`` when it names a facade function; else UnknownFlag listing the valid ones."""
    if key not in keys:
        raise UnknownFlag(f"unknown flag key {key!r}; valid keys are: {', '.join(sorted(keys))}")
    return key


def parse_percent(key: str, value: object) -> float:
    """``value`` as a ramp percentage, above 0 and at most 100; InvalidFlagValue otherwise."""
    try:
        percent = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        percent = math.nan
    if not 0.0 < percent <= 100.0:
        raise InvalidFlagValue(
            f"{key}: a ramp is a percentage above 0 and at most 100, not {value!r}"
        )
    return percent
