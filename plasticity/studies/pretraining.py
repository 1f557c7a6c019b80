"""Does pre-training make a network more prunable? (paper 2, Hubens et al.), as a study over ratios and seeds.

Two bases of one architecture learn the same target task with the same budget: `scratch` from a
random initialisation, `pretrained` from the weights of a base trained on a source task (all but the
classifier; or torchvision's ImageNet weights, `source="imagenet"`). Both are pruned with the same
criterion at the same ratios and fine-tuned alike; the result is accuracy against the share of
parameters (and MACs) removed, per modality, over seeds.

A task is written `dataset` or `dataset:classes`, e.g. `mnist-5k:0-4` (digits 0 to 4 of mnist-5k).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from plasticity.data import DATASETS, canonical_name, format_classes, list_datasets, parse_classes
from plasticity.errors import InvalidConfigError
from plasticity.limits import check_not_empty
from plasticity.runs.base import TrainConfig
from plasticity.runs.prune import PruneConfig
from plasticity.studies.core import Planned, Study, largest_within

IMAGENET = "imagenet"
MODALITIES = ("scratch", "pretrained")


@dataclass(frozen=True)
class Task:
    """A data set, or only some of its classes."""

    dataset: str
    classes: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Task:
        dataset, _, classes = text.rpartition(":")
        if not re.fullmatch(r"[0-9, -]+", classes):  # no classes: the colon is the data set's own (folder:PATH)
            dataset, classes = text, ""
        if dataset.partition("?")[0] not in DATASETS:
            raise InvalidConfigError(
                f"unknown data set {dataset!r} in task {text!r}; known: {', '.join(list_datasets())}"
            )
        return cls(canonical_name(dataset), parse_classes(classes) if classes else ())

    def __str__(self) -> str:
        return f"{self.dataset}:{format_classes(self.classes)}" if self.classes else self.dataset


def pretraining_bases(
    model: str,
    target: Task,
    source: Task | str,
    *,
    epochs: int,
    source_epochs: int,
    seed: int,
    lr: float = 0.01,
    width: float = 1.0,
) -> dict[str, TrainConfig]:
    """The two bases to compare: the same target training from scratch and from the source's weights."""
    scratch = TrainConfig(model, target.dataset, epochs, seed, lr, width=width, classes=target.classes)
    if source == IMAGENET:
        pretrained = TrainConfig(
            model, target.dataset, epochs, seed, lr, width=width, pretrained=True, classes=target.classes
        )
    else:
        if not isinstance(source, Task):
            raise InvalidConfigError(f"a source is a task like mnist-5k:0-4 or {IMAGENET!r}; got {source!r}")
        if source == target:
            raise InvalidConfigError(f"the source task is the target task ({target}): nothing is transferred")
        origin = TrainConfig(model, source.dataset, source_epochs, seed, lr, width=width, classes=source.classes)
        pretrained = TrainConfig(
            model, target.dataset, epochs, seed, lr, width=width, classes=target.classes, init_from=origin
        )
    return {"scratch": scratch, "pretrained": pretrained}


@dataclass(frozen=True)
class PretrainingStudy(Study):
    """Every (seed, modality, ratio) run of `criterion` on the scratch and the pretrained base."""

    model: str = "lenet5"
    target: Task = Task("mnist-5k", (5, 6, 7, 8, 9))
    source: Task | str = Task("mnist-5k", (0, 1, 2, 3, 4))
    criterion: str = "l1"
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 5
    source_epochs: int = 5
    finetune_epochs: int = 2
    lr: float = 0.01

    cells: ClassVar[tuple[str, ...]] = ("modality", "ratio")
    metrics: ClassVar[tuple[str, ...]] = ("acc_base", "acc_pruned", "acc_final", "params_removed", "macs_removed")
    columns: ClassVar[list[str]] = [
        "modality",
        "ratio",
        "seed",
        "acc_base",
        "acc_pruned",
        "acc_final",
        "params_removed",
        "macs_removed",
        "params_pruned",
        "status",
    ]

    def __post_init__(self):
        for name in ("ratios", "seeds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
            check_not_empty(name, getattr(self, name))
        self.plan()  # a source that is the target, or a bad criterion, fails here

    def plan(self) -> list[Planned]:
        return [
            Planned(
                PruneConfig(base, self.criterion, ratio, seed, self.finetune_epochs, lr=self.lr), {"modality": modality}
            )
            for seed in self.seeds
            for modality, base in pretraining_bases(
                self.model,
                self.target,
                self.source,
                epochs=self.epochs,
                source_epochs=self.source_epochs,
                seed=seed,
                lr=self.lr,
            ).items()
            for ratio in self.ratios
        ]

    def identity(self, planned: Planned) -> dict:
        return {**planned.tags, "ratio": planned.config.ratio, "seed": planned.config.seed}

    def row(self, planned: Planned, result: dict) -> dict:
        return {
            **result,
            **planned.tags,
            "target": str(self.target),
            "source": str(self.source),
            "params_removed": 1 - result["params_pruned"] / result["params_base"],
            "macs_removed": 1 - result["macs_pruned"] / result["macs_base"],
        }

    def summarise(self, rows: list[dict]) -> list[dict]:
        """Mean and standard deviation over seeds per (modality, ratio), in modality then ratio order."""
        return sorted(super().summarise(rows), key=lambda row: (MODALITIES.index(row["modality"]), row["ratio"]))

    @staticmethod
    def prunable_share(summary: list[dict], tolerance: float = 0.01) -> dict[str, float]:
        """Per modality, the largest share of parameters removed whose fine-tuned accuracy (mean over seeds)
        stays within `tolerance` of that modality's unpruned base; 0 when no ratio does."""
        share = {}
        for modality in MODALITIES:
            cells = [row for row in summary if row["modality"] == modality]
            if cells:
                share[modality] = largest_within(cells, "params_removed_mean", tolerance)
        return share
