"""Does a criterion beat random? (Mittal et al.) Every criterion at every ratio and seed, on shared bases."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from plasticity.limits import check_not_empty
from plasticity.runs.base import TrainConfig
from plasticity.runs.prune import PruneConfig
from plasticity.studies.core import Planned, Study


@dataclass(frozen=True)
class Comparison(Study):
    """Every criterion at every ratio and seed. Seed s prunes and fine-tunes with s, on the base trained
    with s, or on the base trained with `base_seed` for every seed (the dashboard's: its selected base)."""

    base: TrainConfig = TrainConfig()
    criteria: tuple[str, ...] = ("random", "l1")
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75)
    seeds: tuple[int, ...] = (0, 1, 2)
    finetune_epochs: int = 3
    mode: str = "remove"
    lr: float = 0.01
    classes: tuple[int, ...] = ()
    base_seed: int | None = None
    schedule: str = "one-shot"
    recalibrate_bn: int = 0

    cells: ClassVar[tuple[str, ...]] = ("criterion", "ratio")
    columns: ClassVar[list[str]] = [
        "criterion",
        "ratio",
        "seed",
        "acc_base",
        "acc_pruned",
        "acc_final",
        "macs_pruned",
        "params_pruned",
        "latency_ms_pruned",
        "latency_under_load",
        "status",
    ]

    def __post_init__(self):
        for name in ("criteria", "ratios", "seeds", "classes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("criteria", "ratios", "seeds"):
            check_not_empty(name, getattr(self, name))

    def plan(self) -> list[Planned]:
        return [
            Planned(
                PruneConfig(
                    replace(self.base, seed=seed if self.base_seed is None else self.base_seed),
                    criterion,
                    ratio,
                    seed,
                    self.finetune_epochs,
                    self.mode,
                    self.lr,
                    classes=self.classes,
                    recalibrate_bn=self.recalibrate_bn,
                    schedule=self.schedule,
                )
            )
            for seed in self.seeds
            for criterion in self.criteria
            for ratio in self.ratios
        ]
