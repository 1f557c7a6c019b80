"""Studies: frozen configs whose `plan()` lists the pruning runs they need, run and summarised the same way
from the CLI, the dashboard and Python (`core.Study`).

- `compare.Comparison`: every criterion at every ratio and seed (does a criterion beat random?).
- `class_subset.ClassSubsetStudy`: pruned for a few classes against pruned for all (Mittal et al.).
- `pretraining.PretrainingStudy`: a pre-trained base against one trained from scratch (Hubens et al.).
- `sensitivity.Sensitivity`: each prunable group pruned alone at each ratio (per-layer sensitivity).
- `budget.BudgetStudy`: one MACs budget spent four ways (`budget_study` plans it from a sensitivity analysis).
"""

from plasticity.lazy import lazy_attributes

_EXPORTS = {
    "BudgetStudy": "plasticity.studies.budget",
    "ClassSubsetStudy": "plasticity.studies.class_subset",
    "Comparison": "plasticity.studies.compare",
    "IMAGENET": "plasticity.studies.pretraining",
    "MODALITIES": "plasticity.studies.pretraining",
    "Planned": "plasticity.studies.core",
    "PretrainingStudy": "plasticity.studies.pretraining",
    "Sensitivity": "plasticity.studies.sensitivity",
    "Study": "plasticity.studies.core",
    "Task": "plasticity.studies.pretraining",
    "aggregate": "plasticity.studies.core",
    "budget_analysis": "plasticity.studies.budget",
    "budget_study": "plasticity.studies.budget",
    "largest_within": "plasticity.studies.core",
    "pretraining_bases": "plasticity.studies.pretraining",
    "same_steps_epochs": "plasticity.studies.class_subset",
    "scope_name": "plasticity.studies.class_subset",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
