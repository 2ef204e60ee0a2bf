"""Parity suite: every case of every facade module, and the facade function each one calls."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Final

from compat.errors import InvalidArgument
from tests.parity import cases_email_verification, cases_uploads, cases_user_sessions
from tests.parity.case import Case

__all__ = ["CASES", "REFUSED_ERRORS", "facade_function", "is_refused"]

CASES: Final[tuple[Case, ...]] = (
    *cases_user_sessions.CASES,
    *cases_email_verification.CASES,
    *cases_uploads.CASES,
)

REFUSED_ERRORS: Final = (InvalidArgument, TypeError)
"""What the facade raises for bad input, before any SQL, whichever path would serve."""


def is_refused(case: Case) -> bool:
    """Whether the case is bad input, refused before any SQL runs."""
    return case.raises is not None and issubclass(case.raises, REFUSED_ERRORS)


def facade_function(key: str) -> Callable[..., Any]:
    """The routed function application code calls: ``compat.user_sessions.get_session``."""
    module, _, name = key.partition(".")
    function: Callable[..., Any] = getattr(importlib.import_module(f"compat.{module}"), name)
    return function
