"""Random-mask runs (Anwar and Sung): draw N masks of a granularity, score each on validation, retrain the
chosen one (best, median or worst) with the mask held in place, and test it."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import torch

from plasticity.checkpoint import Checkpoint
from plasticity.errors import InvalidConfigError
from plasticity.limits import check_epochs, check_lr, check_seed
from plasticity.pruning.groups import check_ratio
from plasticity.pruning.masks import (
    GRANULARITIES,
    MAX_MASKS,
    PICKS,
    Mask,
    MaskSearch,
    count_macs,
    layer_positions,
    ranked,
    retrain_masked,
)
from plasticity.runs.base import Base, TrainConfig, get_base
from plasticity.runs.lifecycle import RunConfig, run_once, save
from plasticity.store import RunStore
from plasticity.train import Callback, EpochEnd, ProgressBar, accuracy


@dataclass(frozen=True)
class MaskConfig(RunConfig):
    """A base, the random masks drawn for it, which of them is retrained and how."""

    kind: ClassVar[str] = "masks"

    base: TrainConfig = field(default_factory=TrainConfig)
    granularity: str = "kernel"
    ratio: float = 0.6
    n_masks: int = 50
    seed: int = 0
    finetune_epochs: int = 3
    lr: float = 0.01
    retrain: str = "best"  # best, median or worst of the N masks on validation
    layer_ratios: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        GRANULARITIES.get(self.granularity)  # an unknown name fails here, before any work
        check_ratio(self.ratio)
        if not 1 <= self.n_masks <= MAX_MASKS:
            raise InvalidConfigError(f"the number of masks must be in [1, {MAX_MASKS}]; got {self.n_masks}")
        check_epochs(self.finetune_epochs, "finetune epochs")
        check_seed(self.seed)
        check_lr(self.lr)
        if self.retrain not in PICKS:
            raise InvalidConfigError(f"unknown mask to retrain {self.retrain!r}; use one of {', '.join(PICKS)}")

    def to_dict(self) -> dict:
        return {**asdict(self), "base": self.base.to_dict(), "layer_ratios": [list(p) for p in self.layer_ratios]}

    def execute(self, store: RunStore, base: Base, on_progress, callbacks: list[Callback]) -> dict:
        return run_masks(self, store, base=base, on_progress=on_progress, callbacks=callbacks)

    def progress(self, result: dict) -> float:
        scored, epochs = len(result["val_accs"]) / self.n_masks, len(result["curve"])
        return 0.3 * scored + 0.7 * epochs / max(1, self.finetune_epochs)

    def stage(self, result: dict) -> str:
        return (
            f"epoch {len(result['curve'])}"
            if result.get("acc_pruned") is not None
            else f"mask {len(result['val_accs'])}"
        )


def run_masks(
    config: MaskConfig,
    store: RunStore,
    device: torch.device | str = "cpu",
    *,
    base: Base | None = None,
    on_progress: Callable[[dict], None] | None = None,
    progress: bool = False,
    callbacks: list[Callback] = (),
) -> dict:
    """Draw N masks, score each on validation, retrain the chosen one, score it on test.

    `on_progress` gets the partial result after every mask scored and every retraining epoch;
    `callbacks` join the retraining. A run already in the store is returned as it is.
    """
    if done := store.done(config.key):
        return done.result
    base = base or get_base(config.base, store, device, progress=progress)
    began = time.perf_counter()
    # Out of the store: layers that are not the model's, or a ratio that empties a layer, fail before a row is written.
    search = MaskSearch(
        base.model,
        base.data,
        config.granularity,
        config.ratio,
        seed=config.seed,
        layer_ratios=dict(config.layer_ratios),
    )
    return run_once(
        config, store, lambda: _search_and_retrain(config, base, search, began, store, on_progress, progress, callbacks)
    )


class _Reporter:
    """The run's result as it grows, handed out as a copy after each change."""

    def __init__(self, result: dict, on_progress: Callable[[dict], None] | None):
        self.result, self.on_progress = result, on_progress

    def __call__(self) -> None:
        if self.on_progress:
            self.on_progress(
                {**self.result, "val_accs": list(self.result["val_accs"]), "curve": list(self.result["curve"])}
            )


def _search_and_retrain(
    config: MaskConfig,
    base: Base,
    search: MaskSearch,
    began: float,
    store: RunStore,
    on_progress,
    progress: bool,
    extra,
) -> dict:
    data = base.data
    result = _first_result(config, base)
    report = _Reporter(result, on_progress)

    def add_score(index: int, acc: float) -> None:
        result["val_accs"].append(acc)
        report()

    eval_began = time.perf_counter()
    val_accs = search.evaluate(config.n_masks, on_mask=add_score)
    result["eval_seconds"] = round(time.perf_counter() - eval_began, 3)
    picks = ranked(val_accs)
    mask = search.draw(picks[config.retrain])
    model = mask.apply(copy.deepcopy(base.model))
    result.update(_scores(val_accs, picks, config.retrain), acc_pruned=accuracy(model, data, data.test), acc_final=None)
    result.update(_sparsity(mask, model, base))
    report()

    def add_point(epoch: int, acc: float) -> None:
        result["curve"].append({"epoch": epoch, "acc": acc})
        report()

    callbacks = [EpochEnd(add_point), *extra]
    if progress:
        label = f"retraining the {config.retrain} of {config.n_masks} {config.granularity} masks at {config.ratio:g}"
        callbacks.append(ProgressBar(label, config.finetune_epochs))
    retrain_masked(
        model,
        mask,
        data,
        epochs=config.finetune_epochs,
        lr=config.lr,
        batch_size=config.base.batch_size,
        seed=config.seed,
        callbacks=callbacks,
    )
    result["acc_final"] = result["curve"][-1]["acc"] if result["curve"] else result["acc_pruned"]
    result["seconds"] = round(time.perf_counter() - began, 3)
    return save(config, store, result, Checkpoint(config.base.spec(data), config.to_dict(), model.state_dict()))


def _first_result(config: MaskConfig, base: Base) -> dict:
    data = base.data
    return {
        "key": config.key,
        "model": config.base.model,
        "dataset": config.base.dataset,
        "granularity": config.granularity,
        "ratio": config.ratio,
        "n_masks": config.n_masks,
        "seed": config.seed,
        "base_seed": config.base.seed,
        "finetune_epochs": config.finetune_epochs,
        "retrain": config.retrain,
        "val_accs": [],
        "acc_base": base.result["acc"],
        "acc_val_base": base.result.get("acc_val", accuracy(base.model, data, data.val)),
        "curve": [],
        "device": str(data.device),
    }


def _scores(val_accs: list[float], picks: dict[str, int], retrain: str) -> dict:
    return {
        "best_val_acc": val_accs[picks["best"]],
        "median_val_acc": statistics.median(val_accs),
        "worst_val_acc": val_accs[picks["worst"]],
        "best_index": picks["best"],
        "median_index": picks["median"],
        "worst_index": picks["worst"],
        "retrained_index": picks[retrain],
        "retrained_val_acc": val_accs[picks[retrain]],
    }


def _sparsity(mask: Mask, masked, base: Base) -> dict:
    """How much of the conv weights the mask removes, and the MACs it leaves (sparse and dense)."""
    positions = layer_positions(base.model, base.data.example_input())
    macs_sparse = count_macs(masked, positions, mask)
    removed = mask.removed(base.model)
    return {
        "sparsity": mask.sparsity(base.model),
        "sparsity_per_layer": {name: r / n for name, (r, n) in removed.items()},
        "macs_base": count_macs(base.model, positions),
        "macs_sparse": macs_sparse,
        # dense hardware runs every weight of a masked layer; only removed filters save work there
        "macs_dense": macs_sparse if mask.channels else count_macs(base.model, positions),
        "conv_weights": sum(n for _, n in removed.values()),
        "conv_weights_removed": sum(r for r, _ in removed.values()),
    }
