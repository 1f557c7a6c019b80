"""Errors a user can act on.

Every error the library raises on purpose derives from `PlasticityError`; the CLI and the
dashboard print its message on one line instead of a traceback, so each message says what
went wrong and what to do next.
"""


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
