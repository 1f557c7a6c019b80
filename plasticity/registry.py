"""One registry mechanism for models, data sets and criteria."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from plasticity.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; `get` names the known entries when a name is unknown."""

    def __init__(self, kind: str, plural: str | None = None):
        self.kind, self.plural = kind, plural
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names(), self.plural) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
