"""Does pre-training make a network more prunable? (paper 2, Hubens et al.), as a study over ratios and seeds.

Two bases of one architecture learn the same target task with the same budget: `scratch` from a
random initialisation, `pretrained` from the weights of a base trained on a source task (all but the
classifier; or torchvision's ImageNet weights, `source="imagenet"`). Both are pruned with the same
criterion at the same ratios and fine-tuned alike; the result is accuracy against the share of
parameters (and MACs) removed, per modality, over seeds.

A task is written `dataset` or `dataset:classes`, e.g. `mnist-5k:0-4` (digits 0 to 4 of mnist-5k).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from plasticity.data import format_classes, list_datasets, parse_classes
from plasticity.errors import InvalidConfigError
from plasticity.experiment import PruneConfig, TrainConfig, stored_or_run, summarise
from plasticity.store import RunStore

IMAGENET = "imagenet"
MODALITIES = ("scratch", "pretrained")


@dataclass(frozen=True)
class Task:
    """A data set, or only some of its classes."""

    dataset: str
    classes: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Task:
        dataset, _, classes = text.partition(":")
        if dataset not in list_datasets():
            raise InvalidConfigError(
                f"unknown data set {dataset!r} in task {text!r}; known: {', '.join(list_datasets())}"
            )
        return cls(dataset, parse_classes(classes) if classes else ())

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


def pretraining_study(
    model: str,
    target: Task,
    source: Task | str,
    criterion: str,
    ratios: list[float],
    seeds: list[int],
    store: RunStore,
    device: torch.device | str = "cpu",
    *,
    epochs: int = 5,
    source_epochs: int = 5,
    finetune_epochs: int = 2,
    lr: float = 0.01,
    on_result: Callable[[int, int, dict], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: bool = False,
) -> list[dict]:
    """Every (modality, seed, ratio) run; finished ones come from the store, so a stopped study resumes."""
    plans = [
        (modality, PruneConfig(base, criterion, ratio, seed, finetune_epochs, lr=lr))
        for seed in seeds
        for modality, base in pretraining_bases(
            model, target, source, epochs=epochs, source_epochs=source_epochs, seed=seed, lr=lr
        ).items()
        for ratio in ratios
    ]
    results, bases = [], {}
    for i, (modality, config) in enumerate(plans):
        if should_stop():
            break
        result = stored_or_run(config, store, device, bases, progress)
        row = {
            **result,
            "modality": modality,
            "target": str(target),
            "source": str(source),
            "params_removed": 1 - result["params_pruned"] / result["params_base"],
            "macs_removed": 1 - result["macs_pruned"] / result["macs_base"],
        }
        results.append(row)
        if on_result:
            on_result(i + 1, len(plans), row)
    return results


def summarise_study(results: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds per (modality, ratio), in modality then ratio order."""
    metrics = ("acc_base", "acc_pruned", "acc_final", "params_removed", "macs_removed")
    rows = summarise(results, by=("modality", "ratio"), metrics=metrics)
    return sorted(rows, key=lambda row: (MODALITIES.index(row["modality"]), row["ratio"]))


def prunable_share(summary: list[dict], tolerance: float = 0.01) -> dict[str, float]:
    """Per modality, the largest share of parameters removed whose fine-tuned accuracy (mean over seeds)
    stays within `tolerance` of that modality's unpruned base; 0 when no ratio does."""
    share = {}
    for modality in MODALITIES:
        rows = [r for r in summary if r["modality"] == modality]
        if rows:
            reference = statistics.fmean(r["acc_base_mean"] for r in rows)
            within = [r["params_removed_mean"] for r in rows if r["acc_final_mean"] >= reference - tolerance]
            share[modality] = max(within, default=0.0)
    return share
