"""Bases: a model trained on a data set with its filter-norm history, the starting point of every pruning run.

The same base (same model, data set, seed and epochs) is pruned by every criterion: `get_base` finds it
in the store, else imports the shipped default, else trains it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from plasticity.card import ASSETS
from plasticity.checkpoint import Checkpoint, load_checkpoint
from plasticity.data import Dataset, canonical_name, load_dataset
from plasticity.errors import CheckpointError, InvalidConfigError, PlasticityError
from plasticity.limits import (
    MAX_BATCH_SIZE,
    MAX_STEPS,
    MAX_WIDTH,
    check_count,
    check_epochs,
    check_lr,
    check_number,
    check_seed,
)
from plasticity.models import (
    ModelSpec,
    canonical_model_name,
    classifier_layer,
    create_model,
    hashed_path,
    is_user_model,
    load_weights,
    read_weights,
    verified_file,
)
from plasticity.pruning.cost import measure
from plasticity.pruning.groups import check_prunable
from plasticity.runs.lifecycle import RunConfig, failing, save, start
from plasticity.store import RunStore
from plasticity.train import FilterNormHistory, ProgressBar, Trainer, accuracy, seed_everything

_GETTING_BASE = threading.Lock()


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    """Everything that determines a base model."""

    kind: ClassVar[str] = "train"

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
    weights: str = ""  # start from the weights in this file, as `/abs/path@<hash of its content>`

    def __post_init__(self):
        check_epochs(self.epochs)
        check_seed(self.seed)
        check_lr(self.lr)
        check_count("batch size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_number("width", self.width, 0.0, MAX_WIDTH, above_low=True)
        check_count("history_every_steps", self.history_every_steps, 0, MAX_STEPS)
        object.__setattr__(self, "classes", tuple(sorted({int(c) for c in self.classes})))
        object.__setattr__(self, "dataset", canonical_name(self.dataset))  # one key however a folder is written
        object.__setattr__(self, "model", canonical_model_name(self.model))  # a file's name carries its hash
        if self.weights:
            object.__setattr__(self, "weights", hashed_path(self.weights, "weights"))
            if self.pretrained or self.init_from is not None:
                raise InvalidConfigError("start from one of: a weights file, torchvision's weights, a source base")
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
        for name in ("classes", "init_from", "weights"):
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

    def spec(self, data: Dataset) -> ModelSpec:
        return ModelSpec(self.model, data.channels, data.num_classes, data.image_size, self.width, self.pretrained)


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
        run = store.done(config.key)
        if run and run.checkpoint and run.checkpoint.exists():
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
    """Train the base for `config` now and store it; a base the store holds already (or that another
    process finishes while this one waits for it) is read from the store instead."""
    data = dataset_on(config.dataset, str(device), config.classes)
    seed_everything(config.seed)
    model = create_model(config.spec(data)).to(device)
    if is_user_model(config.model):  # found out now, not after the training
        check_prunable(model, data.example_input(2), config.model)
    if config.weights:
        load_weights(model, read_weights(verified_file(config.weights, "weights")))
    if config.init_from is not None:
        source = get_base(config.init_from, store, device, progress=progress)
        load_all_but_classifier(model, source.model)
    history = FilterNormHistory(model, every_k_steps=config.history_every_steps or None)
    bar = [ProgressBar(f"training {config.model} on {config.dataset}", config.epochs)] if progress else []
    trainer = Trainer(
        model, data, lr=config.lr, batch_size=config.batch_size, seed=config.seed, callbacks=[history, *bar, *callbacks]
    )
    if not start(config, store):
        return get_base(config, store, device)
    began = time.perf_counter()
    with failing(config, store):
        trainer.fit(config.epochs)
    result = {**evaluate(model, data), "train_seconds": round(time.perf_counter() - began, 3)}
    checkpoint = Checkpoint(config.spec(data), config.to_dict(), model.state_dict(), history=history)
    save(config, store, result, checkpoint, history)
    return Base(config, model, history, data, result)


def _import_base(config: TrainConfig, checkpoint: Checkpoint, data: Dataset, store: RunStore, device) -> Base:
    """Put a shipped checkpoint into the store, so it is listed and found like a trained one."""
    model = verified_model(config, checkpoint, data, device)
    result = {**evaluate(model, data), "train_seconds": 0.0, "shipped": True}
    if start(config, store):
        with failing(config, store):
            save(config, store, result, checkpoint, checkpoint.history)
    return Base(config, model, checkpoint.history, data, result)


def _base_from_checkpoint(config: TrainConfig, checkpoint: Checkpoint, data: Dataset, result: dict, device) -> Base:
    model = verified_model(config, checkpoint, data, device)
    return Base(config, model, checkpoint.history or FilterNormHistory(model), data, result)


def verified_model(config: TrainConfig, checkpoint: Checkpoint, data: Dataset, device) -> nn.Module:
    """The network `config` describes, holding the checkpoint's weights. A checkpoint whose weights are not
    that network (another model, width or number of classes; missing or extra weights; other shapes) is
    refused, so nothing is ever stored under a key that its weights do not have."""
    expected = config.spec(data)
    if checkpoint.spec != expected:
        described, held = _described(expected), _described(checkpoint.spec)
        raise CheckpointError(f"the checkpoint's config describes {described} but its weights are {held}")
    return checkpoint.build_model(device)  # a strict load: every weight present, with its shape


def _described(spec: ModelSpec) -> str:
    return (
        f"a {spec.name} (width {spec.width:g}, {spec.num_classes} classes, "
        f"{spec.in_channels}-channel {spec.image_size}x{spec.image_size} images)"
    )


def base_from_file(path: Path | str, device: torch.device | str = "cpu") -> Base:
    """A base from a checkpoint file given by the user: never unpickled, and its config (which keys every
    run made from it) verified against its weights (`verified_model`)."""
    checkpoint = load_checkpoint(path)
    try:
        config = TrainConfig.from_dict(checkpoint.config)
    except InvalidConfigError as exc:
        raise CheckpointError(f"{path} holds a config that is not valid: {exc}") from None
    except (TypeError, ValueError, AttributeError):
        raise PlasticityError(f"{path} holds a pruned model, not a base; give a base model's checkpoint") from None
    if checkpoint.structure:
        raise PlasticityError(f"{path} holds a pruned model, not a base; give a base model's checkpoint")
    data = dataset_on(config.dataset, str(device), config.classes)
    model = verified_model(config, checkpoint, data, device)
    history = checkpoint.history or FilterNormHistory(model)
    return Base(config, model, history, data, evaluate(model, data))


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


def evaluate(model: nn.Module, data: Dataset) -> dict:
    """Test and validation accuracy, MACs, parameters and latency of a base."""
    cost = measure(model, data)
    return {
        "acc": accuracy(model, data, data.test),
        "acc_val": accuracy(model, data, data.val),
        "macs": cost.macs,
        "params": cost.params,
        "latency_ms": round(cost.latency_ms, 3),
    }
