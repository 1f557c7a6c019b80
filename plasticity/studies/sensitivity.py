"""Per-layer sensitivity: how much accuracy each prunable group loses when it alone is pruned.

Every cell prunes one group (Torch-Pruning's whole group: the convs a residual add couples are pruned
together, so a coupled layer never looks harmless because its partner kept the channels) at one ratio,
everything else untouched, as a pruning run of its own (`layer_ratios` for that group, 0 elsewhere).
The accuracy right after pruning is the sensitivity (Distiller's and fasterai's analysis), optionally
after a few fine-tuning epochs and with BatchNorm recalibrated; random pruning beside the criterion
says how much of it is the criterion's choice of filters.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from plasticity.pruning.groups import count_to_prune, dependency_graph, prunable_groups
from plasticity.runs.base import TrainConfig, dataset_on
from plasticity.runs.prune import PruneConfig
from plasticity.studies.core import STAGES, Planned, Study, aggregate, done_rows

STALE = "acc_pruned_stale_bn"  # the accuracy right after pruning with the base's BatchNorm statistics


@dataclass(frozen=True)
class Group:
    """A prunable group as a sensitivity row names it: its root layer, every conv in it, its filters."""

    root: str
    layers: tuple[str, ...]
    filters: int


@functools.lru_cache(maxsize=32)
def groups_of(model: str, dataset: str, width: float, classes: tuple[int, ...] = ()) -> tuple[Group, ...]:
    """The prunable groups of a model built for a data set, in the model's order (no training needed:
    the groups depend on the architecture alone)."""
    from plasticity.models import ModelSpec, create_model

    data = dataset_on(dataset, "cpu", classes)
    network = create_model(ModelSpec(model, data.channels, data.num_classes, data.image_size, width)).eval()
    found = prunable_groups(network, dependency_graph(network, data.example_input()))
    return tuple(Group(g.root, tuple(layer.name for layer in g.layers), g.size) for g in found)


@dataclass(frozen=True)
class Sensitivity(Study):
    """Each group of `base` pruned alone at each ratio, by each criterion (random beside one), per seed."""

    base: TrainConfig = TrainConfig()
    criteria: tuple[str, ...] = ("l1", "random")
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75)
    seeds: tuple[int, ...] = (0,)
    finetune_epochs: int = 0
    lr: float = 0.01
    recalibrate_bn: int = 0

    cells: ClassVar[tuple[str, ...]] = ("criterion", "layer", "ratio")
    columns: ClassVar[list[str]] = [
        "layer",
        "layers",
        "criterion",
        "ratio",
        "seed",
        "filters",
        "acc_base",
        STALE,
        "acc_pruned",
        "acc_final",
        "macs_pruned",
        "status",
    ]

    def __post_init__(self):
        for name in ("criteria", "ratios", "seeds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def metrics(self) -> tuple[str, ...]:
        return (STALE, *STAGES) if self.recalibrate_bn else STAGES

    def groups(self) -> tuple[Group, ...]:
        return groups_of(self.base.model, self.base.dataset, self.base.width, self.base.classes)

    def plan(self) -> list[Planned]:
        plan = []
        for group in self.groups():
            for ratio in self.ratios:
                count_to_prune(group.filters, ratio, group.root)  # a ratio that empties the group fails here
        for seed in self.seeds:
            for criterion in self.criteria:
                for group in self.groups():
                    for ratio in self.ratios:
                        config = PruneConfig(
                            self.base,
                            criterion,
                            0.0,
                            seed,
                            self.finetune_epochs,
                            lr=self.lr,
                            layer_ratios=((group.root, ratio),),
                            recalibrate_bn=self.recalibrate_bn,
                        )
                        tags = {"layer": group.root, "layers": "+".join(group.layers), "filters": group.filters}
                        plan.append(Planned(config, {**tags, "ratio": ratio}))
        return plan

    def identity(self, planned: Planned) -> dict:
        config = planned.config
        return {**planned.tags, "criterion": config.criterion, "seed": config.seed}

    def heatmap(self, table: pd.DataFrame, criterion: str, metric: str = "acc_pruned") -> pd.DataFrame:
        """Mean over seeds of `metric` for one criterion: layers (in the model's order) by ratios."""
        rows = [row for row in done_rows(table) if row["criterion"] == criterion]
        summary = aggregate(rows, self.cells, (metric,)) if rows else []
        cells = pd.DataFrame(summary, columns=[*self.cells, f"{metric}_mean"])
        grid = cells.pivot(index="layer", columns="ratio", values=f"{metric}_mean")
        order = [g.root for g in self.groups()]
        return grid.reindex(index=order, columns=sorted(self.ratios))

    def lines(self, table: pd.DataFrame) -> pd.DataFrame:
        """Mean, min and max over seeds of each cell, in long form (`stage` is one of `metrics`)."""
        summary = aggregate(done_rows(table), self.cells, self.metrics, stats=("mean", "min", "max"))
        rows = [
            {
                "stage": stage,
                **{name: cell[name] for name in self.cells},
                **{stat: cell[f"{stage}_{stat}"] for stat in ("mean", "min", "max")},
                "count": cell["seeds"],
            }
            for stage in self.metrics
            for cell in summary
        ]
        return pd.DataFrame(rows, columns=["stage", *self.cells, "mean", "min", "max", "count"])
