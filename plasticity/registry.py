"""One registry mechanism for models, data sets, criteria, modes, granularities and drop rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from plasticity.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to entries; `get` names the known entries when a name is unknown.

    A family registers every name that starts with a prefix (`torchvision:<name>`): its entry gets
    the whole name and decides itself whether it knows the rest.
    """

    def __init__(self, kind: str, plural: str | None = None):
        self.kind, self.plural = kind, plural
        self._entries: dict[str, T] = {}
        self._families: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def register_family(self, prefix: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            self._families[prefix] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        for prefix, entry in self._families.items():
            if name.startswith(prefix):
                return entry
        raise UnknownNameError(self.kind, name, self.names() + self.families(), self.plural)

    def names(self) -> list[str]:
        """The registered names."""
        return list(self._entries)

    def families(self) -> list[str]:
        """One `prefix<name>` per family."""
        return [f"{prefix}<name>" for prefix in self._families]

    def __contains__(self, name: str) -> bool:
        return name in self._entries or any(name.startswith(prefix) for prefix in self._families)
