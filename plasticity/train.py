"""One training loop; everything else it does (history, evaluation, progress, masks) is a callback."""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from plasticity.data import Dataset, Split, augment_batch, batches
from plasticity.errors import DivergedError, InvalidConfigError
from plasticity.onednn import guarded_backward


def resolve_device(device: str | None = None) -> torch.device:
    """`device` if given, else CUDA when present, else the CPU."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shown = repr(device) if len(str(device)) <= 40 else repr(str(device)[:40] + "...")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise InvalidConfigError(f"unknown device {shown}; use cpu, cuda or cuda:N") from None
    if resolved.type not in ("cpu", "cuda"):  # meta, mps, xpu...: plasticity trains on neither
        raise InvalidConfigError(f"device {shown} is not supported; use cpu, cuda or cuda:N")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidConfigError("CUDA was asked for but this machine has no usable GPU; use --device cpu")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise InvalidConfigError(f"no GPU {shown} here: this machine has {torch.cuda.device_count()}; use cuda:0")
    return resolved


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset, split: Split, batch_size: int = 1000) -> float:
    """Top-1 accuracy of `model` on `split`, in [0, 1]."""
    was_training = model.training
    model.eval()
    correct = 0
    for images, labels in batches(split, batch_size):
        correct += int((model(data.normalize(images)).argmax(1) == labels).sum())
    model.train(was_training)
    return correct / max(1, len(split))


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: Dataset, n_batches: int, batch_size: int, seed: int = 0) -> None:
    """Re-estimate every BatchNorm's running mean and variance on `n_batches` training batches, in place.

    Pruning a filter changes what the next layers see, so the statistics the base recorded are stale;
    this measures how much of the drop right after pruning is that, not lost capacity. Only the BatchNorm
    buffers change: the pass runs without gradients, as an equal-weight average over the batches.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if n_batches <= 0 or not norms:
        return
    was_training, momenta = model.training, [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average: every batch counts the same
    model.train()
    generator = torch.Generator().manual_seed(seed)
    for i, (images, _) in enumerate(batches(data.train, batch_size, generator)):
        if i == n_batches:
            break
        model(data.normalize(images))
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    model.train(was_training)


class Callback:
    """Hooks the loop calls; override the ones you need. Names follow Lightning's."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def loss_penalty(self, trainer: Trainer) -> torch.Tensor | None:
        """A differentiable term the loop adds to this step's loss (a regulariser), or None."""
        return None

    def on_train_batch_end(self, trainer: Trainer, loss: float) -> None: ...

    def on_after_optimizer_step(self, trainer: Trainer) -> None: ...

    def on_train_epoch_end(self, trainer: Trainer) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...

    def on_pause_point(self) -> None:
        """Between pieces of a run's work outside the training loop (the rounds of a latency measurement): where
        it may be stopped, or give the cores up to work that goes first."""


class Trainer:
    """SGD with momentum over a data set held in memory, calling callbacks at named events."""

    def __init__(
        self,
        model: nn.Module,
        data: Dataset,
        *,
        lr: float = 0.01,
        batch_size: int = 64,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        seed: int = 0,
        callbacks: Iterable[Callback] = (),
    ):
        if lr <= 0 or batch_size <= 0:
            raise InvalidConfigError(f"lr and batch_size must be positive; got lr={lr}, batch_size={batch_size}")
        # channels-last weights and inputs take oneDNN's fast conv path (LeNet-5 epoch: 1.5 s -> 1.1 s here)
        self.model = model.to(memory_format=torch.channels_last)
        self.data, self.batch_size = data, batch_size
        self.callbacks = list(callbacks)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0  # epochs completed
        self.step = 0  # optimiser steps taken
        self.last_loss = math.nan

    def fit(self, epochs: int) -> nn.Module:
        if epochs < 0:
            raise InvalidConfigError(f"epochs must be >= 0; got {epochs}")
        self._emit("on_train_start")
        loss_fn = nn.CrossEntropyLoss()
        with guarded_backward(self.model):
            for _ in range(epochs):
                self.model.train()
                for images, labels in batches(self.data.train, self.batch_size, self.generator):
                    if self.data.augment:
                        images = augment_batch(images, self.generator)
                    loss = loss_fn(self.model(self.data.normalize(images)), labels)
                    for callback in self.callbacks:
                        penalty = callback.loss_penalty(self)
                        if penalty is not None:
                            loss = loss + penalty
                    if not torch.isfinite(loss):
                        raise DivergedError(
                            f"the loss became {loss.item()} at epoch {self.epoch + 1}, step {self.step + 1}; "
                            "lower the learning rate"
                        )
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    self.step += 1
                    self.last_loss = loss.item()
                    self._emit("on_after_optimizer_step")
                    self._emit("on_train_batch_end", self.last_loss)
                self.epoch += 1
                self._emit("on_train_epoch_end")
        self._emit("on_train_end")
        return self.model

    def _emit(self, event: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)


class FilterNormHistory(Callback):
    """The l1- and l2-norm of every filter of every conv layer, at every epoch end (and every k steps).

    Columns are the filters' original indices and never move: after pruning, `on_prune` maps the
    surviving filters to their original columns and the pruned ones read NaN from then on.
    """

    def __init__(self, model: nn.Module, every_k_steps: int | None = None):
        if every_k_steps is not None and every_k_steps <= 0:
            raise InvalidConfigError(f"every_k_steps must be positive; got {every_k_steps}")
        self.every_k_steps = every_k_steps
        self.width = {name: conv.out_channels for name, conv in conv_layers(model).items()}
        self.original_index = {name: list(range(n)) for name, n in self.width.items()}
        self.points: list[tuple[int, int]] = []  # (epoch, step) of each recorded row
        self.at_epoch_end: list[bool] = []  # rows recorded at an epoch's end (or at the start)
        self._rows: dict[str, dict[str, list[torch.Tensor]]] = {
            "l1": {n: [] for n in self.width},
            "l2": {n: [] for n in self.width},
        }
        self._epoch_offset = 0  # a fine-tuning trainer counts its epochs on from the base's
        self._step_offset = 0

    def continue_from(self) -> None:
        """Make the next trainer's epochs and steps follow on from those already recorded."""
        if self.points:
            self._epoch_offset, self._step_offset = self.points[-1]

    @torch.no_grad()
    def record(self, model: nn.Module, epoch: int, step: int, at_epoch_end: bool = True) -> None:
        for name, conv in conv_layers(model).items():
            if name not in self.width:
                continue
            flat = conv.weight.detach().flatten(1).float().cpu()
            for norm, values in (("l1", flat.abs().sum(1)), ("l2", flat.norm(dim=1))):
                row = torch.full((self.width[name],), math.nan)
                row[self.original_index[name]] = values
                self._rows[norm][name].append(row)
        self.points.append((epoch, step))
        self.at_epoch_end.append(at_epoch_end)

    def on_train_start(self, trainer: Trainer) -> None:
        if not self.points:
            self.record(trainer.model, 0, 0)

    def on_train_batch_end(self, trainer: Trainer, loss: float) -> None:
        if self.every_k_steps and trainer.step % self.every_k_steps == 0:
            self.record(trainer.model, self._epoch_offset + trainer.epoch, self._step_offset + trainer.step, False)

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        self.record(trainer.model, self._epoch_offset + trainer.epoch, self._step_offset + trainer.step)

    def on_prune(self, kept: dict[str, list[int]]) -> None:
        """`kept[layer]` lists the surviving filters by their positions before this pruning."""
        for name, positions in kept.items():
            current = self.original_index[name]
            self.original_index[name] = [current[p] for p in positions]

    def matrix(self, layer: str, norm: str = "l1", epochs_only: bool = True) -> torch.Tensor:
        """(points, original filters) norms of one layer; NaN where a filter had been pruned."""
        rows = self._rows[norm][layer]
        keep = [i for i, at_end in enumerate(self.at_epoch_end) if at_end or not epochs_only]
        return torch.stack([rows[i] for i in keep]) if keep else torch.empty(0, self.width[layer])

    def epochs(self) -> list[int]:
        """The epoch of each row of `matrix(..., epochs_only=True)`; 0 is the initialisation."""
        return [e for (e, _), at_end in zip(self.points, self.at_epoch_end) if at_end]

    def state_dict(self) -> dict:
        return {
            "every_k_steps": self.every_k_steps or 0,
            "points": [list(p) for p in self.points],
            "at_epoch_end": list(self.at_epoch_end),
            "original_index": {k: list(v) for k, v in self.original_index.items()},
            "width": dict(self.width),
            "l1": {k: torch.stack(v) if v else torch.empty(0, self.width[k]) for k, v in self._rows["l1"].items()},
            "l2": {k: torch.stack(v) if v else torch.empty(0, self.width[k]) for k, v in self._rows["l2"].items()},
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> FilterNormHistory:
        history = cls.__new__(cls)
        history.every_k_steps = state["every_k_steps"] or None
        history.width = {k: int(v) for k, v in state["width"].items()}
        history.original_index = {k: [int(i) for i in v] for k, v in state["original_index"].items()}
        history.points = [(int(e), int(s)) for e, s in state["points"]]
        history.at_epoch_end = [bool(b) for b in state["at_epoch_end"]]
        history._rows = {norm: {k: list(t.unbind(0)) for k, t in state[norm].items()} for norm in ("l1", "l2")}
        history._epoch_offset = history._step_offset = 0
        return history


class EpochEnd(Callback):
    """Calls `fn(epoch, test_accuracy)` at the end of every epoch: the recovery curve's points."""

    def __init__(self, fn: Callable[[int, float], None]):
        self.fn = fn

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        self.fn(trainer.epoch, accuracy(trainer.model, trainer.data, trainer.data.test))


class ProgressBar(Callback):
    """A one-line progress bar on stderr, so stdout stays clean for --json."""

    def __init__(self, label: str, epochs: int, stream=None):
        self.label, self.epochs, self.stream = label, epochs, stream or sys.stderr
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        done = trainer.epoch
        bar = "#" * int(20 * done / max(1, self.epochs))
        elapsed = time.perf_counter() - self.start
        self.stream.write(
            f"\r{self.label} [{bar:<20}] epoch {done}/{self.epochs} loss {trainer.last_loss:.3f} {elapsed:.1f}s"
        )
        if done == self.epochs:
            self.stream.write("\n")
        self.stream.flush()
