"""Runs: one configuration, one key, one lifecycle (`lifecycle.run_once`), for every kind of run.

- `base`: training a base (`TrainConfig`, `get_base`, `train_base`), the start of every other run.
- `prune`: prune a base and fine-tune it (`PruneConfig`, `run_prune`; two phases for the dashboard).
- `masks`: random masks, the best of N retrained (`MaskConfig`, `run_masks`).
- `hbfp`: history-based filter pruning in rounds (`HbfpConfig`, `run_hbfp`).
"""

from plasticity.lazy import lazy_attributes

_EXPORTS = {
    "Base": "plasticity.runs.base",
    "HbfpConfig": "plasticity.runs.hbfp",
    "MaskConfig": "plasticity.runs.masks",
    "PruneConfig": "plasticity.runs.prune",
    "PrunedRun": "plasticity.runs.prune",
    "RunConfig": "plasticity.runs.lifecycle",
    "Started": "plasticity.runs.lifecycle",
    "TrainConfig": "plasticity.runs.base",
    "base_from_file": "plasticity.runs.base",
    "dataset_on": "plasticity.runs.base",
    "get_base": "plasticity.runs.base",
    "prepare_run": "plasticity.runs.prune",
    "prune_run": "plasticity.runs.prune",
    "recover": "plasticity.runs.prune",
    "run_hbfp": "plasticity.runs.hbfp",
    "run_masks": "plasticity.runs.masks",
    "run_once": "plasticity.runs.lifecycle",
    "run_prune": "plasticity.runs.prune",
    "train_base": "plasticity.runs.base",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
