"""Packages whose names are imported from their modules on first use (PEP 562), not with the package.

The dashboard imports the library from two threads at once (its warm-up and the first page); a package
whose `__init__` imported its modules eagerly could then be seen half-initialised by the other thread.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_attributes(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for `package` that imports `exports[name]` (a module) when `name` is asked for."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return __getattr__
