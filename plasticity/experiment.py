"""Experiments: train a base, prune it, fine-tune it while recording the recovery curve, compare.

A run's whole configuration is one frozen dataclass; its hash is the run's key in the store,
so a run already done is never redone, and the same base (same model, data set, seed and
epochs) is pruned by every criterion.
"""

from __future__ import annotations

import functools
import hashlib
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from plasticity.card import ASSETS
from plasticity.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from plasticity.criteria import create_criterion
from plasticity.data import Dataset, load_dataset
from plasticity.errors import InvalidConfigError, PlasticityError
from plasticity.models import ModelSpec, classifier_layer, create_model
from plasticity.prune import MODES, PruneResult, check_ratio, latency_ms, measure, prune_model
from plasticity.store import RunStore
from plasticity.train import Callback, EpochEnd, FilterNormHistory, ProgressBar, Trainer, accuracy, seed_everything

_GETTING_BASE = threading.Lock()


def _key(kind: str, config: dict) -> str:
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    return f"{kind}-{digest}"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a base model."""

    model: str = "lenet5"
    dataset: str = "mnist-5k"
    epochs: int = 12
    seed: int = 0
    lr: float = 0.01
    batch_size: int = 64
    width: float = 1.0
    pretrained: bool = False
    history_every_steps: int = 0  # also record the filter norms every k optimiser steps (0: epoch ends only)
    classes: tuple[int, ...] = ()  # train and evaluate on these classes only (a target task); () is all
    init_from: TrainConfig | None = None  # start from this base's weights, all but the classifier (pre-training)

    def __post_init__(self):
        if self.epochs < 0:
            raise InvalidConfigError(f"epochs must be >= 0; got {self.epochs}")
        if self.history_every_steps < 0:
            raise InvalidConfigError(f"history_every_steps must be >= 0; got {self.history_every_steps}")
        object.__setattr__(self, "classes", tuple(sorted({int(c) for c in self.classes})))
        source = self.init_from
        if source is not None:
            if (source.model, source.width) != (self.model, self.width):
                raise InvalidConfigError(
                    f"a {self.model} (width {self.width}) cannot start from a {source.model} (width {source.width})"
                )
            if self.pretrained:
                raise InvalidConfigError("start either from torchvision's pretrained weights or from a source base")

    def to_dict(self) -> dict:
        config = asdict(self)
        # fields added later are left out at their defaults, so every earlier run keeps its key
        for name in ("classes", "init_from"):
            if not config[name]:
                del config[name]
        if "classes" in config:
            config["classes"] = list(self.classes)
        if self.init_from is not None:
            config["init_from"] = self.init_from.to_dict()
        return config

    @classmethod
    def from_dict(cls, config: dict) -> TrainConfig:
        """The inverse of `to_dict` (a TypeError names an unknown field)."""
        config = dict(config)
        config["classes"] = tuple(config.get("classes", ()))
        if config.get("init_from") is not None:
            config["init_from"] = cls.from_dict(config["init_from"])
        return cls(**config)

    @property
    def key(self) -> str:
        return _key("train", self.to_dict())

    def spec(self, data: Dataset) -> ModelSpec:
        return ModelSpec(self.model, data.channels, data.num_classes, data.image_size, self.width, self.pretrained)


@dataclass(frozen=True)
class PruneConfig:
    """A base, and how it is pruned and fine-tuned."""

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
        if self.mode not in MODES:
            raise InvalidConfigError(f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.finetune_epochs < 0:
            raise InvalidConfigError(f"finetune epochs must be >= 0; got {self.finetune_epochs}")
        create_criterion(self.criterion)  # an unknown name fails here, before any work

    def to_dict(self) -> dict:
        config = {**asdict(self), "base": self.base.to_dict(), "layer_ratios": [list(p) for p in self.layer_ratios]}
        if self.classes:
            config["classes"] = list(self.classes)
        else:
            del config["classes"]  # as before the field existed: earlier runs keep their keys
        return config

    @property
    def key(self) -> str:
        return _key("prune", self.to_dict())


@dataclass
class Base:
    """A trained model with its filter-norm history, ready to be pruned (never in place)."""

    config: TrainConfig
    model: nn.Module
    history: FilterNormHistory
    data: Dataset
    result: dict  # acc, macs, params, latency_ms, ...


@functools.lru_cache(maxsize=16)
def dataset_on(name: str, device: str, classes: tuple[int, ...] = ()) -> Dataset:
    """The named data set on `device` (loaded once), or only its `classes`."""
    if classes:
        return dataset_on(name, device).subset(classes)
    return load_dataset(name, device)


def get_base(
    config: TrainConfig,
    store: RunStore,
    device: torch.device | str = "cpu",
    *,
    progress: bool = False,
    callbacks: Iterable = (),
) -> Base:
    """The base for `config`: from the store, else from the shipped assets, else trained now."""
    data = dataset_on(config.dataset, str(device), config.classes)
    with _GETTING_BASE:  # a second caller (another session, the app's warm-up) waits, then finds it stored
        run = store.get(config.key)
        if run and run.status == "done" and run.checkpoint and run.checkpoint.exists():
            return _base_from_checkpoint(config, load_checkpoint(run.checkpoint), data, run.result, device)
        shipped = ASSETS / f"{config.model}-{config.dataset}.pt"
        if shipped.exists():
            checkpoint = load_checkpoint(shipped)
            if checkpoint.config == config.to_dict():
                return _import_base(config, checkpoint, data, store, device)
    return train_base(config, store, device, progress=progress, callbacks=callbacks)


def train_base(
    config: TrainConfig,
    store: RunStore,
    device: torch.device | str = "cpu",
    *,
    progress: bool = False,
    callbacks: Iterable = (),
) -> Base:
    data = dataset_on(config.dataset, str(device), config.classes)
    seed_everything(config.seed)
    model = create_model(config.spec(data)).to(device)
    if config.init_from is not None:
        source = get_base(config.init_from, store, device, progress=progress)
        load_all_but_classifier(model, source.model)
    history = FilterNormHistory(model, every_k_steps=config.history_every_steps or None)
    bar = [ProgressBar(f"training {config.model} on {config.dataset}", config.epochs)] if progress else []
    trainer = Trainer(
        model, data, lr=config.lr, batch_size=config.batch_size, seed=config.seed, callbacks=[history, *bar, *callbacks]
    )
    store.start(config.key, "train", config.to_dict())
    start = time.perf_counter()
    try:
        trainer.fit(config.epochs)
    except BaseException as exc:
        store.fail(config.key, _describe(exc))
        raise
    result = {**_evaluate(model, data), "train_seconds": round(time.perf_counter() - start, 3)}
    checkpoint = Checkpoint(config.spec(data), config.to_dict(), model.state_dict(), history=history)
    path = store.checkpoint_path(config.key)
    save_checkpoint(checkpoint, path)
    store.finish(config.key, result, history, path)
    return Base(config, model, history, data, result)


def _import_base(config: TrainConfig, checkpoint: Checkpoint, data: Dataset, store: RunStore, device) -> Base:
    """Put a shipped checkpoint into the store, so it is listed and found like a trained one."""
    model = checkpoint.build_model(device)
    result = {**_evaluate(model, data), "train_seconds": 0.0, "shipped": True}
    store.start(config.key, "train", config.to_dict())
    path = store.checkpoint_path(config.key)
    save_checkpoint(checkpoint, path)
    store.finish(config.key, result, checkpoint.history, path)
    return Base(config, model, checkpoint.history, data, result)


def _base_from_checkpoint(config: TrainConfig, checkpoint: Checkpoint, data: Dataset, result: dict, device) -> Base:
    model = checkpoint.build_model(device)
    return Base(config, model, checkpoint.history or FilterNormHistory(model), data, result)


def base_from_file(path: Path | str, device: torch.device | str = "cpu") -> Base:
    """A base from a checkpoint file given by the user (validated; never unpickled)."""
    checkpoint = load_checkpoint(path)
    try:
        config = TrainConfig.from_dict(checkpoint.config)
    except TypeError:
        raise PlasticityError(f"{path} holds a pruned model, not a base; give a base model's checkpoint") from None
    data = dataset_on(config.dataset, str(device), config.classes)
    model = checkpoint.build_model(device)
    history = checkpoint.history or FilterNormHistory(model)
    return Base(config, model, history, data, _evaluate(model, data))


def load_all_but_classifier(model: nn.Module, source: nn.Module) -> None:
    """Copy `source`'s weights into `model`, except the classifier's, which keeps its fresh initialisation
    (a new task's classes are new outputs); the two must be the same, unpruned, architecture."""
    head = classifier_layer(model)
    prefix = next(name for name, module in model.named_modules() if module is head) + "."
    state = {k: v for k, v in source.state_dict().items() if not k.startswith(prefix)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise InvalidConfigError(f"the source base's weights do not fit this model: {exc}") from None
    if unexpected or any(not k.startswith(prefix) for k in missing):
        raise InvalidConfigError(f"the source base is a different network (missing {missing}, extra {unexpected})")


def _evaluate(model: nn.Module, data: Dataset) -> dict:
    cost = measure(model, data)
    return {
        "acc": accuracy(model, data, data.test),
        "acc_val": accuracy(model, data, data.val),
        "macs": cost.macs,
        "params": cost.params,
        "latency_ms": round(cost.latency_ms, 3),
    }


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
    done = store.get(config.key)
    if done and done.status == "done":
        return done.result
    base = base or get_base(config.base, store, device, progress=progress)
    return recover(prune_run(config, store, base, on_progress), store, progress=progress, callbacks=callbacks)


@dataclass
class PrunedRun:
    """A run between its two phases: pruned and evaluated (`prune_run`), not yet fine-tuned (`recover`)."""

    config: PruneConfig
    base: Base
    data: Dataset  # the base's data, or only the config's classes
    pruned: PruneResult
    result: dict
    on_progress: Callable[[dict], None] | None
    started: float

    def report(self) -> None:
        if self.on_progress:
            self.on_progress({**self.result, "curve": list(self.result["curve"])})


def prune_run(
    config: PruneConfig,
    store: RunStore,
    base: Base,
    on_progress: Callable[[dict], None] | None = None,
    *,
    prepared: PrunedRun | None = None,
) -> PrunedRun:
    """Phase one: prune a copy of the base and report its accuracy (in a tenth of a second on LeNet-5).

    The run is marked running in the store; `recover` finishes it (or it is marked failed here).
    `prepared` is the same config already pruned by `prepare_run`: it is taken over, not pruned again.
    """
    store.start(config.key, "prune", config.to_dict())
    if prepared is not None and prepared.config == config and prepared.base is base:
        run = replace(prepared, on_progress=on_progress, started=time.perf_counter())
        run.report()
        return run
    try:
        return _prune(config, base, on_progress)
    except BaseException as exc:
        store.fail(config.key, _describe(exc))
        raise


def prepare_run(config: PruneConfig, base: Base) -> PrunedRun:
    """Phase one ahead of time, kept out of the store: pruned and evaluated, for a `prune_run` to take
    over if the user asks for it (the dashboard prepares the slider's neighbouring positions)."""
    return _prune(config, base, None)


def _prune(config: PruneConfig, base: Base, on_progress) -> PrunedRun:
    data, start = base.data.subset(config.classes), time.perf_counter()
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
    run = PrunedRun(config, base, data, pruned, result, on_progress, start)
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


def recover(run: PrunedRun, store: RunStore, *, progress: bool = False, callbacks: Iterable[Callback] = ()) -> dict:
    """Phase two: fine-tune a pruned run, recording the recovery curve, and store it as done."""
    try:
        measure_cost(run)
        return _recover(run, store, progress, callbacks)
    except BaseException as exc:
        store.fail(run.config.key, _describe(exc))
        raise


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
    # (where it delayed the first point of the curve), and the base's beside it, under the same load
    # (the base's own figure was measured once, whenever it was imported).
    inputs = data.example_input(256)
    result["latency_ms_base"] = round(latency_ms(run.base.model, inputs), 3)
    result["latency_ms_pruned"] = round(latency_ms(pruned.model, inputs), 3)
    run.report()

    structure = {}
    if config.mode == "remove":
        structure = {name: history.original_index[name] for name in pruned.kept}
    checkpoint = Checkpoint(config.base.spec(data), config.to_dict(), pruned.model.state_dict(), structure, history)
    path = store.checkpoint_path(config.key)
    save_checkpoint(checkpoint, path)
    store.finish(config.key, result, history, path)
    return result


def compare(
    base: TrainConfig,
    criteria: list[str],
    ratios: list[float],
    seeds: list[int],
    store: RunStore,
    device: torch.device | str = "cpu",
    *,
    finetune_epochs: int = 3,
    mode: str = "remove",
    lr: float = 0.01,
    classes: tuple[int, ...] = (),
    base_seed: int | None = None,
    on_result: Callable[[int, int, dict], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: bool = False,
) -> list[dict]:
    """Every criterion at every ratio and seed, each seed's base shared by all its runs.

    Seed s prunes and fine-tunes with s, on the base trained with s (or with `base_seed` for all).
    Finished runs come from the store, so an interrupted comparison resumes where it stopped.
    """
    configs = [
        PruneConfig(
            replace(base, seed=seed if base_seed is None else base_seed),
            criterion,
            ratio,
            seed,
            finetune_epochs,
            mode,
            lr,
            classes=tuple(classes),
        )
        for seed in seeds
        for criterion in criteria
        for ratio in ratios
    ]
    results, bases = [], {}
    for i, config in enumerate(configs):
        if should_stop():
            break
        result = stored_or_run(config, store, device, bases, progress)
        results.append(result)
        if on_result:
            on_result(i + 1, len(configs), result)
    return results


def stored_or_run(config: PruneConfig, store: RunStore, device, bases: dict[str, Base], progress: bool) -> dict:
    """The stored result of `config`, or the run made now; `bases` keeps the last base loaded for the next."""
    done = store.get(config.key)
    if done and done.status == "done":
        return done.result
    if config.base.key not in bases:
        bases.clear()
        bases[config.base.key] = get_base(config.base, store, device, progress=progress)
    return run_prune(config, store, device, base=bases[config.base.key])


def summarise(
    results: list[dict],
    by: tuple[str, ...] = ("criterion", "ratio"),
    metrics: tuple[str, ...] = ("acc_pruned", "acc_final"),
) -> list[dict]:
    """Mean and standard deviation over seeds of each cell (the fields `by`) of a comparison."""
    cells: dict[tuple, list[dict]] = {}
    for result in results:
        cells.setdefault(tuple(result[name] for name in by), []).append(result)
    rows = []
    for cell, group in cells.items():
        row = {**dict(zip(by, cell)), "seeds": len(group)}
        for metric in metrics:
            values = [r[metric] for r in group]
            row[f"{metric}_mean"] = statistics.fmean(values)
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{exc.__class__.__name__}: {exc}"
