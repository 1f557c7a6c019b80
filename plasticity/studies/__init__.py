"""Studies: frozen configs whose `plan()` lists the pruning runs they need, run and summarised the same way
from the CLI, the dashboard and Python (`core.Study`).

- `compare.Comparison`: every criterion at every ratio and seed (does a criterion beat random?).
- `class_subset.ClassSubsetStudy`: pruned for a few classes against pruned for all (Mittal et al.).
- `pretraining.PretrainingStudy`: a pre-trained base against one trained from scratch (Hubens et al.).
"""

import importlib

# The names below are imported from their modules on first use (PEP 562), not when the package is: the
# dashboard imports the library from two threads at once (its warm-up and the first page), and a
# package that imported its modules eagerly could then be seen half-initialised by the other thread.
_EXPORTS = {
    "ClassSubsetStudy": "plasticity.studies.class_subset",
    "Comparison": "plasticity.studies.compare",
    "IMAGENET": "plasticity.studies.pretraining",
    "MODALITIES": "plasticity.studies.pretraining",
    "Planned": "plasticity.studies.core",
    "PretrainingStudy": "plasticity.studies.pretraining",
    "Study": "plasticity.studies.core",
    "Task": "plasticity.studies.pretraining",
    "aggregate": "plasticity.studies.core",
    "largest_within": "plasticity.studies.core",
    "pretraining_bases": "plasticity.studies.pretraining",
    "same_steps_epochs": "plasticity.studies.class_subset",
    "scope_name": "plasticity.studies.class_subset",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
