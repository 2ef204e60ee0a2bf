"""Service layer: checks of caller-supplied values, with messages that name the field."""

from __future__ import annotations

import re
from typing import Any, Final

from services.errors import InvalidInput

__all__ = ["boolean", "email", "integer", "text"]

# Deliberately loose: one @ with something on each side and no spaces. The
# real test of an address is the verification code sent to it.
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+")


def text(field: str, value: Any, *, max_length: int | None = None) -> str:
    """A non-blank str, stripped of surrounding whitespace."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, not {type(value).__name__}")
    stripped = value.strip()
    if not stripped:
        raise InvalidInput(field, "must not be blank")
    if max_length is not None and len(stripped) > max_length:
        raise InvalidInput(field, f"is {len(stripped)} characters long; at most {max_length}")
    return stripped


def email(field: str, value: Any) -> str | None:
    """None, or something shaped like an email address (never echoed: it is personal data)."""
    if value is None:
        return None
    address = text(field, value, max_length=320)
    if _EMAIL.fullmatch(address) is None:
        raise InvalidInput(field, "is not an email address (expected name@domain)")
    return address


def boolean(field: str, value: Any) -> bool:
    """A real bool: 0, 1, "true" and the like are refused rather than guessed at."""
    if type(value) is not bool:
        raise InvalidInput(field, f"must be true or false, not {type(value).__name__}")
    return value


def integer(field: str, value: Any, *, minimum: int, maximum: int) -> int:
    """An int (not a bool) within ``minimum..maximum``."""
    if type(value) is not int:
        raise InvalidInput(field, f"must be an integer, not {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise InvalidInput(field, f"must be between {minimum} and {maximum}, not {value}")
    return value
