"""ORM side: @operation, a repository method callable on an instance or, standalone, on its class.

``repo.get_by_uuid(key)`` runs in ``repo``'s scope (the session it was
given, or a session of its own per call). ``UserSessionRepository.get_by_uuid(key)``
is the same call on a new standalone repository: it opens a session, commits
it when the call succeeds (rolls back when it raises) and closes it. What it
returns stays readable: the session factory keeps instances unexpired.

A subclass reaches the inherited operation with ``super().update(...)``;
``BaseRepository.update(self, ...)`` would be a class-level call, on a new
standalone repository. On an instance, the lookup costs one Python-level
``__get__`` (about 0.1 us) more than a plain method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

if TYPE_CHECKING:
    from orm.repositories.base import BaseRepository

__all__ = ["Operation", "operation"]

P = ParamSpec("P")
R = TypeVar("R")
RepositoryT = TypeVar("RepositoryT", bound="BaseRepository[Any, Any]")


class Operation(Generic[RepositoryT, P, R]):
    """The descriptor ``@operation`` makes: binds to the instance, or to a new standalone one."""

    def __init__(self, function: Callable[Concatenate[RepositoryT, P], R]) -> None:
        self.__wrapped__ = function
        self.__doc__ = function.__doc__
        self._name = function.__name__
        # The function's own __get__ (C code) does the binding.
        self._bind: Callable[..., Callable[P, R]] = function.__get__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type[RepositoryT]) -> Callable[P, R]: ...
    @overload
    def __get__(self, instance: RepositoryT, owner: type[Any] | None = None) -> Callable[P, R]: ...
    def __get__(
        self, instance: RepositoryT | None, owner: type[Any] | None = None
    ) -> Callable[P, R]:
        if instance is None:
            assert owner is not None  # Python passes the class on a class-level lookup
            # A class-level call: a standalone repository, a session of its own.
            return self._bind(owner(), owner)
        return self._bind(instance)

    def __repr__(self) -> str:
        return f"<repository operation {self._name}>"


def operation(
    function: Callable[Concatenate[RepositoryT, P], R],
) -> Operation[RepositoryT, P, R]:
    """Make a repository method callable on its class as a standalone call, and on an instance."""
    return Operation(function)
