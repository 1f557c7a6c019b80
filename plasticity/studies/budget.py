"""One MACs budget, four ways to spend it: sensitivity-guided per-layer ratios, uniform ratios, Torch-Pruning's
global ranking and random global pruning, each fine-tuned the same way (`plasticity.pruning.budget`).

The allocations are decided once from the base (and, for `sensitivity`, from a finished `Sensitivity`
analysis in the store: `budget_analysis`); `BudgetStudy` then runs them as ordinary pruning runs with
`layer_ratios`. `budget_study` is the whole plan, as the CLI and the Layer sensitivity page make it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from plasticity.errors import InvalidConfigError
from plasticity.pruning.budget import (
    Budget,
    global_counts,
    random_global_counts,
    sensitivity_counts,
    uniform_counts,
)
from plasticity.runs.base import Base, TrainConfig
from plasticity.runs.prune import PruneConfig
from plasticity.store import RunStore
from plasticity.studies.core import Planned, Study, done_rows
from plasticity.studies.sensitivity import STALE, Sensitivity


@dataclass(frozen=True)
class Allocation:
    """How one budget is spent: the allocation's name, the MACs target (a share of the base's), and the
    filters each group loses, as `layer_ratios`; `seed` is the random draw's (random-global only)."""

    name: str
    target: float
    layer_ratios: tuple[tuple[str, float], ...]
    seed: int = 0


def allocate(
    base: Base,
    sensitivity: Mapping[str, list[tuple[float, float]]],
    criterion: str,
    targets: tuple[float, ...],
    seeds: tuple[int, ...],
) -> tuple[Allocation, ...]:
    """Every allocation at every target; `sensitivity[root]` is (ratio, accuracy right after pruning) of
    the criterion's analysis. Random global pruning draws once per seed; the others are the same for all."""
    budget = Budget(base.model, base.data)
    allocations = []
    for target in targets:
        macs = budget.target(target)
        spends = {
            "sensitivity": sensitivity_counts(budget, sensitivity, base.result["acc"], macs),
            "uniform": uniform_counts(budget, macs),
            "global": global_counts(budget, criterion, macs),
        }
        for name, counts in spends.items():
            allocations.append(Allocation(name, target, tuple(budget.ratios(counts).items())))
        for seed in seeds:
            counts = random_global_counts(budget, seed, macs)
            allocations.append(Allocation("random-global", target, tuple(budget.ratios(counts).items()), seed))
    return tuple(allocations)


def sensitivity_curves(study: Sensitivity, store: RunStore) -> dict[str, list[tuple[float, float]]]:
    """(ratio, mean accuracy right after pruning) per group, of the study's first criterion, from the store."""
    criterion = study.criteria[0]
    rows = [row for row in done_rows(study.table(store)) if row["criterion"] == criterion]
    if len(rows) < len(study.plan()) // len(study.criteria):
        raise InvalidConfigError("the sensitivity analysis is not finished; run it first")
    cells: dict[tuple[str, float], list[float]] = {}
    for row in rows:
        cells.setdefault((row["layer"], row["ratio"]), []).append(row["acc_pruned"])
    curves: dict[str, list[tuple[float, float]]] = {}
    for (layer, ratio), accs in cells.items():
        curves.setdefault(layer, []).append((ratio, sum(accs) / len(accs)))
    return curves


def budget_analysis(
    base: TrainConfig, criterion: str, ratios: tuple[float, ...], recalibrate_bn: int = 0
) -> Sensitivity:
    """The sensitivity analysis a budget is planned from: the criterion alone, right after pruning (and
    BatchNorm recalibration on `recalibrate_bn` batches, if any), seed 0."""
    return Sensitivity(base, (criterion,), tuple(ratios), recalibrate_bn=recalibrate_bn)


def budget_study(
    base: Base,
    store: RunStore,
    criterion: str,
    ratios: tuple[float, ...],
    targets: tuple[float, ...],
    seeds: tuple[int, ...],
    finetune_epochs: int,
    lr: float = 0.01,
    recalibrate_bn: int = 0,
) -> BudgetStudy:
    """Every allocation at every target as one study, from the finished `budget_analysis` in `store`."""
    curves = sensitivity_curves(budget_analysis(base.config, criterion, ratios, recalibrate_bn), store)
    allocations = allocate(base, curves, criterion, tuple(targets), tuple(seeds))
    return BudgetStudy(base.config, criterion, allocations, tuple(seeds), finetune_epochs, lr, recalibrate_bn)


@dataclass(frozen=True)
class BudgetStudy(Study):
    """The allocations, each pruned with `criterion` (random for random-global), its BatchNorm statistics
    re-estimated on `recalibrate_bn` training batches if any, and fine-tuned per seed."""

    base: TrainConfig = TrainConfig()
    criterion: str = "l1"
    allocations: tuple[Allocation, ...] = ()
    seeds: tuple[int, ...] = (0,)
    finetune_epochs: int = 3
    lr: float = 0.01
    recalibrate_bn: int = 0

    cells: ClassVar[tuple[str, ...]] = ("allocation", "target")
    columns: ClassVar[list[str]] = [
        "allocation",
        "target",
        "seed",
        "acc_base",
        STALE,
        "acc_pruned",
        "acc_final",
        "macs_base",
        "macs_pruned",
        "status",
    ]

    def plan(self) -> list[Planned]:
        plan = []
        for allocation in self.allocations:
            random = allocation.name == "random-global"
            for seed in [allocation.seed] if random else self.seeds:
                config = PruneConfig(
                    self.base,
                    "random" if random else self.criterion,
                    0.0,
                    seed,
                    self.finetune_epochs,
                    lr=self.lr,
                    layer_ratios=allocation.layer_ratios,
                    recalibrate_bn=self.recalibrate_bn,
                )
                plan.append(Planned(config, {"allocation": allocation.name, "target": allocation.target}))
        return plan

    def identity(self, planned: Planned) -> dict:
        return {**planned.tags, "seed": planned.config.seed}
