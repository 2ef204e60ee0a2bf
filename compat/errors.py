"""Compat layer: the errors it raises itself (database errors pass through as psycopg2's)."""

from __future__ import annotations

__all__ = [
    "CompatError",
    "FlagChangedMeanwhile",
    "FlagError",
    "InvalidArgument",
    "InvalidFlagValue",
    "MismatchError",
    "UnitOfWorkAborted",
    "UnknownFlag",
]


class CompatError(Exception):
    """Base of the errors the compat layer raises itself."""


class InvalidArgument(CompatError, ValueError):
    """A facade argument was rejected before any SQL ran, on whichever path would have served.

    ``function`` is the facade key (``user_sessions.get_session``), ``argument``
    the parameter's name.
    """

    def __init__(self, function: str, argument: str, problem: str) -> None:
        super().__init__(f"{function}: argument {argument!r} {problem}")
        self.function = function
        self.argument = argument
        self.problem = problem


class FlagError(CompatError, ValueError):
    """A flag entry or change was refused; the message says what is allowed."""


class UnknownFlag(FlagError):
    """A flag named a key that is not a facade function; the message lists the valid keys."""


class FlagChangedMeanwhile(FlagError):
    """A flag changed between the decision to change it and the change (a guard, a colleague)."""


class InvalidFlagValue(FlagError):
    """A flag entry or change has a mode, sample rate, reason or form that is not allowed."""


class UnitOfWorkAborted(CompatError):
    """A call in this unit of work failed in the database, so PostgreSQL aborted the transaction.

    Nothing in the unit can run until it is rolled back; wrap calls that may
    fail on purpose (a duplicate, say) in a nested ``compat.transaction()`` to
    recover from them without losing the unit's earlier work.
    """

    def __init__(self, first_failure: str) -> None:
        super().__init__(
            f"the unit of work was aborted by an earlier failure ({first_failure}); "
            "roll it back, or run calls that may fail inside a nested compat.transaction()"
        )
        self.first_failure = first_failure


class MismatchError(CompatError, AssertionError):
    """Raised (only when ``raise_on_mismatch`` is on, as in tests) when the two paths disagree."""
