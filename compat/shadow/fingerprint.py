"""Compat layer: a mismatch's fingerprint: its function, the fields that differ, their kinds.

Worked out from the stored, redacted diff text (``path: legacy=... orm=...
(reason)`` per line, compat.shadow.compare.render), so it needs no column of
its own and sees nothing the text does not show: two mismatches have the same
fingerprint when they differ in the same places, with the same kinds of
values, for the same reason, whatever the values were and whichever row.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["Shape", "fingerprint", "kind_of", "shape_of"]

_LINE: Final = re.compile(
    r"^(?P<path>.*?): legacy=(?P<legacy>.*) orm=(?P<orm>.*) \((?P<reason>[^()]*)\)$"
)
_INDEX: Final = re.compile(r"\[\d+\]")
_REDACTED: Final = re.compile(r"^['\"]<redacted (?P<type>\w+) #[0-9a-f]+>['\"]$")
_CALL: Final = re.compile(r"^(?P<name>[A-Za-z_][\w.]*)\(")
_NUMBER: Final = re.compile(r"^-?\d+$")
_REAL: Final = re.compile(r"^-?(\d+\.\d*|\d*\.\d+|\d+(\.\d*)?e[-+]?\d+|inf|nan)$")


@dataclass(frozen=True, slots=True)
class Shape:
    """What one mismatch looks like, values left out: where it differs and between what kinds."""

    key: str
    lines: tuple[str, ...]
    """``path: kind -> kind (reason)`` per difference, list indices as ``[*]``, sorted."""

    @property
    def fingerprint(self) -> str:
        """Twelve hex digits naming the shape."""
        text = "\n".join((self.key, *self.lines)).encode()
        return hashlib.sha256(text).hexdigest()[:12]

    @property
    def fields(self) -> tuple[str, ...]:
        """The differing paths, each once, in order."""
        return tuple(dict.fromkeys(line.split(": ", 1)[0] for line in self.lines))


def kind_of(shown: str) -> str:
    """The kind of a value as a diff shows it: ``str``, ``int``, ``None``, ``redacted str``..."""
    text = shown.strip()
    if redacted := _REDACTED.match(text):
        return f"redacted {redacted.group('type')}"
    if text in ("None", "True", "False"):
        return "None" if text == "None" else "bool"
    if text[:1] in ("'", '"') or text[:2] in ("b'", 'b"'):
        return "bytes" if text[0] == "b" else "str"
    if _NUMBER.match(text):
        return "int"
    if _REAL.match(text):
        return "float"
    if call := _CALL.match(text):
        return call.group("name").rpartition(".")[2]
    return {"{": "dict", "[": "list", "(": "tuple"}.get(text[:1], "other")


def shape_of(key: str, diff: str | None) -> Shape:
    """The shape of one stored mismatch (its ``diff`` column)."""
    lines = []
    for line in (diff or "").splitlines():
        match = _LINE.match(line)
        if match is None:
            continue  # "... and 3 more", or text of another format: not part of the shape
        path = _INDEX.sub("[*]", match.group("path"))
        legacy, orm = kind_of(match.group("legacy")), kind_of(match.group("orm"))
        lines.append(f"{path}: {legacy} -> {orm} ({match.group('reason')})")
    return Shape(key, tuple(sorted(set(lines))))


def fingerprint(key: str, diff: str | None) -> str:
    """The fingerprint of one stored mismatch."""
    return shape_of(key, diff).fingerprint
