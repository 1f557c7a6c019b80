"""Pruning runs: prune a base, evaluate at once, fine-tune while recording the recovery curve.

A run has two phases: `prune_run` prunes a copy of the base and reports its accuracy (a tenth of a
second on LeNet-5), `recover` fine-tunes it and stores it. `run_prune` is both, through the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar

import torch
from torch import nn

from plasticity.checkpoint import Checkpoint
from plasticity.data import Dataset
from plasticity.errors import InvalidConfigError
from plasticity.limits import check_epochs, check_lr, check_seed
from plasticity.pruning.cost import interleaved_latency, measure
from plasticity.pruning.criteria import create_criterion
from plasticity.pruning.groups import check_ratio
from plasticity.pruning.prune import MODES, PruneResult, prune_model
from plasticity.runs.base import Base, TrainConfig, get_base
from plasticity.runs.lifecycle import RunConfig, Started, failing, save, start
from plasticity.store import RunStore
from plasticity.train import Callback, EpochEnd, FilterNormHistory, ProgressBar, Trainer, accuracy, seed_everything

PREPARE_MAX_PARAMS = 5_000_000  # larger bases are not pruned ahead: each copy costs memory and seconds


@dataclass(frozen=True)
class PruneConfig(RunConfig):
    """A base, and how it is pruned and fine-tuned."""

    kind: ClassVar[str] = "prune"

    base: TrainConfig = field(default_factory=TrainConfig)
    criterion: str = "random"
    ratio: float = 0.5
    seed: int = 0
    finetune_epochs: int = 3
    mode: str = "remove"
    lr: float = 0.01
    layer_ratios: tuple[tuple[str, float], ...] = ()
    classes: tuple[int, ...] = ()  # prune for these classes: criteria, fine-tuning and accuracy on them only

    def __post_init__(self):
        check_ratio(self.ratio)
        object.__setattr__(self, "classes", tuple(sorted({int(c) for c in self.classes})))
        if self.base.classes and not set(self.classes) <= set(self.base.classes):
            raise InvalidConfigError(
                f"the base knows only classes {list(self.base.classes)}; cannot prune for {list(self.classes)}"
            )
        MODES.get(self.mode)
        check_epochs(self.finetune_epochs, "finetune epochs")
        check_seed(self.seed)
        check_lr(self.lr)
        create_criterion(self.criterion)  # an unknown name fails here, before any work

    def to_dict(self) -> dict:
        config = {**asdict(self), "base": self.base.to_dict(), "layer_ratios": [list(p) for p in self.layer_ratios]}
        if self.classes:
            config["classes"] = list(self.classes)
        else:
            del config["classes"]  # as before the field existed: earlier runs keep their keys
        return config

    def begin(self, store: RunStore, base: Base, on_progress=None, *, prepared: PrunedRun | None = None) -> PrunedRun:
        return prune_run(self, store, base, on_progress, prepared=prepared)

    def progress(self, result: dict) -> float:
        return len(result["curve"]) / self.finetune_epochs if self.finetune_epochs else 0.0

    def stage(self, result: dict) -> str:
        return f"epoch {len(result['curve'])}"

    def prepare(self, base: Base) -> PrunedRun:
        return prepare_run(self, base)

    def preparable(self, base: Base) -> bool:
        """A small base, and a criterion that needs neither data nor the training history (those take
        seconds, which would slow down what the user does next)."""
        criterion = create_criterion(self.criterion, self.seed)
        return base.result["params"] <= PREPARE_MAX_PARAMS and not (criterion.needs_data or criterion.needs_history)


@dataclass
class PrunedRun(Started):
    """A run between its two phases: pruned and evaluated (`prune_run`), not yet fine-tuned (`recover`)."""

    config: PruneConfig
    base: Base
    data: Dataset  # the base's data, or only the config's classes
    pruned: PruneResult
    result: dict
    on_progress: Callable[[dict], None] | None
    started: float
    store: RunStore | None = None

    def report(self) -> None:
        if self.on_progress:
            self.on_progress({**self.result, "curve": list(self.result["curve"])})

    def settle(self) -> None:
        measure_cost(self)

    def complete(self, callbacks: list[Callback]) -> dict:
        return recover(self, self.store, callbacks=callbacks)


def run_prune(
    config: PruneConfig,
    store: RunStore,
    device: torch.device | str = "cpu",
    *,
    base: Base | None = None,
    on_progress: Callable[[dict], None] | None = None,
    progress: bool = False,
    callbacks: Iterable[Callback] = (),
) -> dict:
    """Prune the base, evaluate, fine-tune `finetune_epochs`, recording the recovery curve.

    `on_progress` gets the partial result as soon as the pruned accuracy is known, again with the
    cost, and after every epoch; `callbacks` join the fine-tuning loop. A run already in the store
    is returned as it is.
    """
    if done := store.done(config.key):
        return done.result
    base = base or get_base(config.base, store, device, progress=progress)
    prepared = prepare_run(config, base)  # out of the store: a config that does not fit its base fails before a row
    if not start(config, store):  # another process computed it while this one waited
        return store.get(config.key).result
    run = prune_run(config, store, base, on_progress, prepared=prepared)
    return recover(run, store, progress=progress, callbacks=callbacks)


def prune_run(
    config: PruneConfig,
    store: RunStore,
    base: Base,
    on_progress: Callable[[dict], None] | None = None,
    *,
    prepared: PrunedRun | None = None,
) -> PrunedRun:
    """Phase one: prune a copy of the base and report its accuracy.

    The model is pruned before the run's row is written, so a config that does not fit its base leaves
    no row; then the run is claimed in the store (a claim this thread holds already is kept) and
    `recover` finishes it. Should another process finish it first, it is computed all the same and the
    other's stored result is kept. `prepared` is the same config already pruned by `prepare_run`: it is
    taken over, not pruned again.
    """
    if prepared is not None and prepared.config == config and prepared.base is base:
        run = replace(prepared, started=time.perf_counter())
    else:
        run = _prune(config, base, None)  # before the row: layers, classes or a ratio that do not fit fail here
    start(config, store)
    run = replace(run, on_progress=on_progress, store=store)
    run.report()
    return run


def prepare_run(config: PruneConfig, base: Base) -> PrunedRun:
    """Phase one ahead of time, kept out of the store: pruned and evaluated, for a `prune_run` to take
    over if the user asks for it (the dashboard prepares the slider's neighbouring positions)."""
    return _prune(config, base, None)


def _prune(config: PruneConfig, base: Base, on_progress) -> PrunedRun:
    data, began = base.data.subset(config.classes), time.perf_counter()
    seed_everything(config.seed)
    pruned = prune_model(
        base.model,
        create_criterion(config.criterion, config.seed),
        config.ratio,
        data,
        mode=config.mode,
        layer_ratios=dict(config.layer_ratios),
        history=base.history,
    )
    result = {
        "key": config.key,
        "model": config.base.model,
        "dataset": config.base.dataset,
        "criterion": config.criterion,
        "ratio": config.ratio,
        "seed": config.seed,
        "base_seed": config.base.seed,
        "mode": config.mode,
        "finetune_epochs": config.finetune_epochs,
        "acc_base": accuracy(base.model, data, data.test) if config.classes else base.result["acc"],
        "acc_pruned": accuracy(pruned.model, data, data.test),
        "curve": [],
        "acc_final": None,
        "macs_base": base.result["macs"],
        "macs_pruned": None,
        "params_base": base.result["params"],
        "params_pruned": None,
        "nonzero_params_pruned": None,
        "latency_ms_base": base.result["latency_ms"],
        "latency_ms_pruned": None,
        "channels": pruned.channels,
        "device": str(data.device),
    }
    if config.classes:
        result["classes"] = list(config.classes)
    run = PrunedRun(config, base, data, pruned, result, on_progress, began)
    run.report()  # the accuracy right after pruning; MACs and parameters come in `measure_cost`
    return run


def measure_cost(run: PrunedRun) -> None:
    """MACs and parameters of the pruned model (once; `recover` calls it if nobody did). Its latency is
    measured when fine-tuning is over, beside the base's (`_recover`)."""
    if run.result["macs_pruned"] is not None:
        return
    cost = measure(run.pruned.model, run.data, latency=False)
    run.result.update(macs_pruned=cost.macs, params_pruned=cost.params, nonzero_params_pruned=cost.nonzero_params)
    run.report()


def latency_fields(base: nn.Module, pruned: nn.Module, inputs: torch.Tensor) -> dict:
    """The base's and the pruned model's latency from one interleaved measurement, as a run stores them:
    medians, interquartile ranges, threads, and whether the repeats spread as they do under load."""
    measured = interleaved_latency({"base": base, "pruned": pruned}, inputs)
    fields = {"latency_threads": measured.threads, "latency_under_load": measured.under_load}
    for name, latency in measured.models.items():
        fields[f"latency_ms_{name}"] = round(latency.median, 3)
        fields[f"latency_range_ms_{name}"] = [round(latency.low, 3), round(latency.high, 3)]
    return fields


def recover(run: PrunedRun, store: RunStore, *, progress: bool = False, callbacks: Iterable[Callback] = ()) -> dict:
    """Phase two: fine-tune a pruned run, recording the recovery curve, and store it as done."""
    with failing(run.config, store):
        measure_cost(run)
        return _recover(run, store, progress, callbacks)


def _recover(run: PrunedRun, store: RunStore, progress: bool, extra: Iterable[Callback]) -> dict:
    config, pruned, result, data = run.config, run.pruned, run.result, run.data
    history = FilterNormHistory.from_state_dict(run.base.history.state_dict())
    if config.mode == "remove":
        history.on_prune(pruned.kept)
    history.continue_from()

    def add_point(epoch: int, acc: float) -> None:
        result["curve"].append({"epoch": epoch, "acc": acc})
        run.report()

    callbacks = [history, EpochEnd(add_point), *extra]
    if pruned.mask is not None:
        callbacks.insert(0, pruned.mask)
    if progress:
        callbacks.append(ProgressBar(f"fine-tuning {config.criterion} at {config.ratio:g}", config.finetune_epochs))
    Trainer(
        pruned.model, data, lr=config.lr, batch_size=config.base.batch_size, seed=config.seed, callbacks=callbacks
    ).fit(config.finetune_epochs)
    result["acc_final"] = result["curve"][-1]["acc"] if result["curve"] else result["acc_pruned"]
    result["seconds"] = round(time.perf_counter() - run.started, 3)
    # Fine-tuning changes weights, not shapes: the latency is measured now, not before the first epoch
    # (where it delayed the first point of the curve), the base's and the pruned model's in one interleaved
    # measurement (the base's own figure was measured once, whenever it was imported, under another load).
    result.update(latency_fields(run.base.model, pruned.model, data.example_input(256)))
    run.report()

    structure = {}
    if config.mode == "remove":
        structure = {name: history.original_index[name] for name in pruned.kept}
    checkpoint = Checkpoint(config.base.spec(data), config.to_dict(), pruned.model.state_dict(), structure, history)
    return save(config, store, result, checkpoint, history)
