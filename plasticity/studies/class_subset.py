"""How much further a network can be pruned when only a few classes matter (Mittal et al.).

Every criterion prunes one base for the subset (its data criteria, fine-tuning and test accuracy on those
classes only), and the same for every class, each compared with its own unpruned accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import pandas as pd

from plasticity.data import Dataset, format_classes
from plasticity.runs.base import TrainConfig
from plasticity.studies.compare import Comparison
from plasticity.studies.core import Planned, Study, aggregate, by_stage, done_rows, largest_within

ALL_CLASSES = "all classes"


def scope_name(classes: tuple[int, ...]) -> str:
    return format_classes(classes) if classes else ALL_CLASSES


def same_steps_epochs(data: Dataset, classes: tuple[int, ...], finetune_epochs: int) -> int:
    """Epochs on `classes` that take about as many optimiser steps as `finetune_epochs` on every class
    (an epoch on 3 of 10 balanced classes is 3/10 of the steps)."""
    share = len(data.subset(classes).train) / len(data.train)
    return max(1, round(finetune_epochs / share))


@dataclass(frozen=True)
class ClassSubsetStudy(Study):
    """Pruned for `classes` (fine-tuned `subset_finetune_epochs`, by default `finetune_epochs`), then the
    same runs pruned for every class, all on `base` for every seed."""

    base: TrainConfig = TrainConfig()
    classes: tuple[int, ...] = (3, 5, 8)
    criteria: tuple[str, ...] = ("random", "apoz")
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    seeds: tuple[int, ...] = (0,)
    finetune_epochs: int = 2
    subset_finetune_epochs: int | None = None

    cells: ClassVar[tuple[str, ...]] = ("pruned for", "criterion", "ratio")
    columns: ClassVar[list[str]] = [
        "pruned for",
        "criterion",
        "ratio",
        "seed",
        "epochs",
        "acc_base",
        "acc_pruned",
        "acc_final",
        "macs_pruned",
        "params_pruned",
        "status",
    ]

    def __post_init__(self):
        for name in ("criteria", "ratios", "seeds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "classes", tuple(sorted(self.classes)))

    def plan(self) -> list[Planned]:
        everything = Comparison(
            self.base, self.criteria, self.ratios, self.seeds, self.finetune_epochs, base_seed=self.base.seed
        ).plan()
        epochs = self.finetune_epochs if self.subset_finetune_epochs is None else self.subset_finetune_epochs
        subset = [Planned(replace(p.config, classes=self.classes, finetune_epochs=epochs)) for p in everything]
        return [Planned(p.config, {"pruned for": scope_name(p.config.classes)}) for p in subset + everything]

    def identity(self, planned: Planned) -> dict:
        return {**super().identity(planned), "epochs": planned.config.finetune_epochs}

    def chart_summary(self, table: pd.DataFrame) -> pd.DataFrame:
        """Per (pruned for, criterion, ratio): mean, min and max over seeds of the accuracy before pruning
        (ratio 0, the base), right after pruning and after fine-tuning; one row per stage."""
        done = done_rows(table)
        unpruned = {  # the base, as the ratio-0 point of every line, in both stages
            (r["pruned for"], r["criterion"], r["seed"]): {
                **r,
                "ratio": 0.0,
                **dict.fromkeys(self.metrics, r["acc_base"]),
            }
            for r in done
        }
        summary = aggregate([*done, *unpruned.values()], self.cells, self.metrics, stats=("mean", "min", "max"))
        return by_stage(summary, self.cells).sort_values(["stage", "pruned for", "ratio"])

    def prunable_ratios(self, table: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
        """Per (pruned for, criterion): the largest ratio whose fine-tuned accuracy (mean over seeds) stays
        within `tolerance` of the unpruned base on the same classes; 0 when none does."""
        cells = aggregate(done_rows(table), self.cells, ("acc_base", "acc_final"), stats=("mean",))
        groups: dict[tuple, list[dict]] = {}
        for cell in cells:
            groups.setdefault((cell["pruned for"], cell["criterion"]), []).append(cell)
        rows = [
            {
                "pruned for": scope,
                "criterion": criterion,
                "ratio": largest_within(group, "ratio", tolerance),
                "acc_base": sum(c["acc_base_mean"] for c in group) / len(group),
            }
            for (scope, criterion), group in groups.items()
        ]
        return pd.DataFrame(rows, columns=["pruned for", "criterion", "ratio", "acc_base"])
