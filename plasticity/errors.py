"""Errors a user can act on.

Every error the library raises on purpose derives from `PlasticityError`; the CLI and the
dashboard print its message on one line instead of a traceback, so each message says what
went wrong and what to do next.
"""

from __future__ import annotations

import errno
from pathlib import Path


class PlasticityError(Exception):
    """Base class of the errors that are meant to reach the user as a message."""


class InvalidConfigError(PlasticityError, ValueError):
    """A value outside its allowed range, or settings that do not fit together."""


class UnknownNameError(InvalidConfigError, KeyError):
    """A model, data set or criterion name that no registry knows."""

    def __init__(self, kind: str, name: str, known: list[str], plural: str | None = None):
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r}; known {plural or kind + 's'}: {', '.join(known)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DatasetUnavailableError(PlasticityError):
    """A data set that is neither cached nor downloadable here."""


class CheckpointError(PlasticityError):
    """A file that is not a readable `plasticity` checkpoint."""


class DivergedError(PlasticityError):
    """Training produced a non-finite loss."""


class StoreError(PlasticityError):
    """The run store's folder or database cannot be used as asked (read-only, full, damaged, not a folder)."""


def file_error(exc: OSError, where: Path | str) -> StoreError:
    """The one line a user sees for a file-system failure under `where` (a home or a checkpoint's folder)."""
    code = exc.errno
    if code == errno.ENOSPC or code == errno.EDQUOT:
        return StoreError(f"no space left on the device that holds {where}: free some space and run again")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreError(
            f"{where} is read-only here: runs can be listed but not computed; point --home or PLASTICITY_HOME "
            "at a folder you can write"
        )
    if code in (errno.ENOTDIR, errno.EEXIST):
        return StoreError(f"{where} (or a folder above it) is a file, not a folder: use another --home")
    return StoreError(f"cannot use {where}: {exc.strerror or exc.__class__.__name__}")
