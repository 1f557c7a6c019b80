"""Pruning for real: which filters go together (groups), who decides (criteria), how (modes, masks), at what cost.

- `groups`: Torch-Pruning's dependency graph as one decision per conv group, and "how many go".
- `criteria`: the registered strategies that score every filter (random is one of them).
- `prune`: `prune_model` (a pruned copy, removed or masked) and `apply_structure` (rebuild a pruned network).
- `masks`: random masks at coarser and finer granularities, scored without retraining.
- `pairs`: history-based filter pairs (HBFP) and the rules that drop one filter of each pair.
- `schedule`: one-shot, iterative and gradual (AGP) schedules: the ratio each cut reaches.
- `cost`: MACs, parameters and measured latency.
"""

from plasticity.lazy import lazy_attributes

_EXPORTS = {
    "Cost": "plasticity.pruning.cost",
    "Criterion": "plasticity.pruning.criteria",
    "Layer": "plasticity.pruning.groups",
    "PrunableGroup": "plasticity.pruning.groups",
    "PruneResult": "plasticity.pruning.prune",
    "Schedule": "plasticity.pruning.schedule",
    "apply_structure": "plasticity.pruning.prune",
    "check_ratio": "plasticity.pruning.groups",
    "create_criterion": "plasticity.pruning.criteria",
    "dependency_graph": "plasticity.pruning.groups",
    "latency_ms": "plasticity.pruning.cost",
    "list_criteria": "plasticity.pruning.criteria",
    "list_modes": "plasticity.pruning.prune",
    "measure": "plasticity.pruning.cost",
    "prunable_groups": "plasticity.pruning.groups",
    "prune_model": "plasticity.pruning.prune",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
