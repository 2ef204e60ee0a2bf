"""ORM side: uuids given as text, read exactly as PostgreSQL's uuid input reads them."""

from __future__ import annotations

import re
import uuid
from typing import Final

__all__ = ["UUID_TEXT", "as_uuid"]

# PostgreSQL's uuid_in: 32 hex digits, a hyphen allowed after any group of
# four, the whole optionally in braces; nothing else (no spaces, no urn:uuid:,
# which Python's UUID() would take and the legacy SQL would refuse).
UUID_TEXT: Final = re.compile(r"(\{)?[0-9A-Fa-f]{4}(?:-?[0-9A-Fa-f]{4}){7}(?(1)\})")


def as_uuid(value: uuid.UUID | str, where: str, argument: str) -> uuid.UUID:
    """``value`` as a UUID: a UUID as it is, its text in any spelling PostgreSQL accepts.

    Raises ValueError for text PostgreSQL would refuse and TypeError for
    anything else, naming ``where`` (the method) and ``argument``, before any
    SQL runs.
    """
    if type(value) is uuid.UUID:
        return value
    if isinstance(value, str):
        if UUID_TEXT.fullmatch(value) is None:
            raise ValueError(
                f"{where}: {argument} {value!r} is not a uuid; give a uuid.UUID or its text "
                f"(32 hex digits, hyphens and braces optional, as PostgreSQL reads it)"
            )
        return uuid.UUID(value)
    if isinstance(value, uuid.UUID):
        return value
    raise TypeError(
        f"{where}: {argument} takes a uuid.UUID or its text, not {type(value).__name__}"
    )
