"""Pruning for real: which filters go together (groups), who decides (criteria), how (modes, masks), at what cost.

- `groups`: Torch-Pruning's dependency graph as one decision per conv group, and "how many go".
- `criteria`: the registered strategies that score every filter (random is one of them).
- `prune`: `prune_model` (a pruned copy, removed or masked) and `apply_structure` (rebuild a pruned network).
- `masks`: random masks at coarser and finer granularities, scored without retraining.
- `pairs`: history-based filter pairs (HBFP) and the rules that drop one filter of each pair.
- `cost`: MACs, parameters and measured latency.
"""

import importlib

# The names below are imported from their modules on first use (PEP 562), not when the package is: the
# dashboard imports the library from two threads at once (its warm-up and the first page), and a
# package that imported its modules eagerly could then be seen half-initialised by the other thread.
_EXPORTS = {
    "Cost": "plasticity.pruning.cost",
    "Criterion": "plasticity.pruning.criteria",
    "Layer": "plasticity.pruning.groups",
    "PrunableGroup": "plasticity.pruning.groups",
    "PruneResult": "plasticity.pruning.prune",
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


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
