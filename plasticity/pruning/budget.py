"""Per-layer ratios for a global budget: how many filters each group loses so the network meets a MACs target.

Four allocations of the same budget, each a `layer_ratios` mapping for an ordinary pruning run:
- `sensitivity`: from a per-layer sensitivity analysis, every group pruned as far as its accuracy right
  after pruning stays within one tolerance of the base, the same for all groups; the tolerance is the
  smallest that meets the target, so the least sensitive groups are pruned most.
- `uniform`: one ratio for every group, the smallest that meets the target.
- `global`: Torch-Pruning's global ranking (`global_pruning=True`) of l1- or l2-norms over all groups.
- `random-global`: filters drawn uniformly from the whole network (every filter equally likely,
  whatever its group), until the target is met.

Each search stops at the first allocation that meets the target, so it removes at most one filter per
group more than the target needs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
import torch_pruning as tp
from torch import nn

from plasticity.data import Dataset
from plasticity.errors import InvalidConfigError
from plasticity.pruning.criteria import create_criterion
from plasticity.pruning.groups import PrunableGroup, dependency_graph, prunable_groups, pruning_group
from plasticity.pruning.prune import prune_model

ALLOCATIONS = ("sensitivity", "uniform", "global", "random-global")
GLOBAL_NORMS = {"l1": 1, "l2": 2}  # the criteria Torch-Pruning ranks globally by their own importance


class Budget:
    """The MACs of a base pruned by any per-group filter counts (counts -> ratios -> MACs, cached)."""

    def __init__(self, model: nn.Module, data: Dataset):
        self.model, self.data = model, data
        self.groups: list[PrunableGroup] = prunable_groups(model, dependency_graph(model, data.example_input()))
        self._macs: dict[tuple, int] = {}
        self.base_macs = self.macs({})

    @property
    def sizes(self) -> dict[str, int]:
        return {group.root: group.size for group in self.groups}

    def ratios(self, counts: Mapping[str, int]) -> dict[str, float]:
        """The `layer_ratios` that remove exactly `counts` filters of each group."""
        return {root: counts.get(root, 0) / size for root, size in self.sizes.items() if counts.get(root, 0)}

    def macs(self, counts: Mapping[str, int]) -> int:
        key = tuple(sorted((root, n) for root, n in counts.items() if n))
        if key not in self._macs:  # which filters go does not change the MACs: random picks them at no cost
            pruned = prune_model(
                self.model, create_criterion("random"), 0.0, self.data, layer_ratios=self.ratios(counts)
            )
            self._macs[key] = int(tp.utils.count_ops_and_params(pruned.model, self.data.example_input(1))[0])
        return self._macs[key]

    def target(self, keep: float) -> int:
        """The MACs of `keep` (a share, 0 to 1) of the base's."""
        if not 0.0 < keep < 1.0:
            raise InvalidConfigError(f"a MACs target is a share of the base's MACs in (0, 1); got {keep}")
        return int(keep * self.base_macs)

    def first_within(self, counts_at: Callable[[float], dict[str, int]], target: int, what: str) -> dict[str, int]:
        """The counts at the smallest knob in [0, 1] (counts grow with it) whose MACs meet `target`."""
        if self.macs(counts_at(1.0)) > target:
            raise InvalidConfigError(
                f"{what} cannot bring the MACs down to {target:,} (at most to {self.macs(counts_at(1.0)):,})"
            )
        low, high = 0.0, 1.0
        for _ in range(30):  # 1e-9 apart: the counts at `low` (over the target) and `high` differ by a filter
            middle = (low + high) / 2
            if self.macs(counts_at(middle)) <= target:
                high = middle
            else:
                low = middle
        return counts_at(high)


def uniform_counts(budget: Budget, target: int) -> dict[str, int]:
    sizes = budget.sizes
    largest = max((size - 1) / size for size in sizes.values())

    def at(knob: float) -> dict[str, int]:
        return {root: min(size - 1, int(knob * largest * size)) for root, size in sizes.items()}

    return budget.first_within(at, target, "uniform pruning")


def sensitivity_counts(
    budget: Budget, curves: Mapping[str, Sequence[tuple[float, float]]], acc_base: float, target: int
) -> dict[str, int]:
    """`curves[root]`: (ratio, accuracy right after pruning that group alone) at the grid's ratios. A group
    may go as far as the largest ratio (interpolated) before its accuracy first falls more than the
    tolerance below `acc_base`; the tolerance, the same for every group, rises until the target is met, so
    a group that loses little is pruned to the grid's largest ratio before a sensitive one loses a filter."""
    sizes = budget.sizes
    missing = set(sizes) - set(curves)
    if missing:
        raise InvalidConfigError(f"the sensitivity analysis has no cells for {', '.join(sorted(missing))}")
    drops = {root: _drop_envelope(points, acc_base) for root, points in curves.items() if root in sizes}
    largest = max(envelope[-1][1] for envelope in drops.values())

    def at(knob: float) -> dict[str, int]:  # knob 1: the largest drop of any group, every group at its last ratio
        tolerance = knob * largest
        return {root: min(sizes[root] - 1, int(_reach(drops[root], tolerance) * sizes[root])) for root in sizes}

    return budget.first_within(at, target, "the sensitivity grid's largest ratios")


FLAT = 1e-6  # the rise given to a flat stretch of accuracy lost: far below one test image of any data set


def _drop_envelope(points: Sequence[tuple[float, float]], acc_base: float) -> list[tuple[float, float]]:
    """(ratio, accuracy lost) from (0, 0), never decreasing (a ratio is as bad as the worst before it) and
    rising by `FLAT` on flat stretches, so the reach grows continuously with the tolerance."""
    envelope, worst = [(0.0, 0.0)], 0.0
    for ratio, acc in sorted(points):
        worst = max(worst, acc_base - acc, envelope[-1][1] + FLAT)
        envelope.append((ratio, worst))
    return envelope


def _reach(envelope: list[tuple[float, float]], tolerance: float) -> float:
    """The largest ratio whose (interpolated) accuracy lost stays within `tolerance`."""
    for (r0, d0), (r1, d1) in zip(envelope, envelope[1:]):
        if d1 > tolerance:
            return r0 + (r1 - r0) * (tolerance - d0) / (d1 - d0)
    return envelope[-1][0]


def global_counts(budget: Budget, criterion: str, target: int) -> dict[str, int]:
    """Torch-Pruning's global ranking: its group importance of the criterion's norm (normalised per group,
    as `MetaPruner(global_pruning=True)` ranks it), the lowest filters of the whole network first."""
    if criterion not in GLOBAL_NORMS:
        raise InvalidConfigError(f"Torch-Pruning ranks {', '.join(GLOBAL_NORMS)} globally; got {criterion}")
    importance = tp.importance.GroupMagnitudeImportance(p=GLOBAL_NORMS[criterion])
    model = copy.deepcopy(budget.model).eval()
    graph = dependency_graph(model, budget.data.example_input())
    scores, owners = [], []
    for group in prunable_groups(model, graph):
        scores.append(importance(pruning_group(graph, group, list(range(group.size)))).float().cpu())
        owners += [group.root] * group.size
    return _lowest_first(budget, torch.cat(scores).argsort(stable=True).tolist(), owners, target, "global pruning")


def random_global_counts(budget: Budget, seed: int, target: int) -> dict[str, int]:
    """Filters drawn uniformly from all the network's (prunable) filters, in one random order, as many as
    the target needs; a group keeps at least one."""
    owners = [root for root, size in budget.sizes.items() for _ in range(size)]
    order = torch.randperm(len(owners), generator=torch.Generator().manual_seed(seed)).tolist()
    return _lowest_first(budget, order, owners, target, "random global pruning")


def _lowest_first(budget: Budget, order: list[int], owners: list[str], target: int, what: str) -> dict[str, int]:
    """Filters taken in `order` (indices into `owners`, each filter's group) until the target is met."""

    def at(knob: float) -> dict[str, int]:
        counts = dict.fromkeys(budget.sizes, 0)
        for index in order[: int(knob * len(order))]:
            counts[owners[index]] += 1
        return {root: min(budget.sizes[root] - 1, n) for root, n in counts.items()}

    return budget.first_within(at, target, what)
