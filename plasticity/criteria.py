"""Pruning criteria: small strategy objects that give every filter of a conv layer one score.

A higher score means a more important filter, one to keep. The random baseline is a criterion
like any other. Criteria that need data (`needs_data`) first `accumulate` statistics from
forward (and backward) passes over training images, and are `reset` explicitly.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch
from torch import nn

from plasticity.data import Dataset, Split, batches
from plasticity.errors import InvalidConfigError
from plasticity.registry import Registry


@dataclass(frozen=True)
class Layer:
    """A conv layer as a criterion sees it: its name, the conv, and the BatchNorm right after it."""

    name: str
    conv: nn.Conv2d
    bn: nn.BatchNorm2d | None = None

    @property
    def output(self) -> nn.Module:
        """The module whose output is the layer's pre-activation."""
        return self.bn if self.bn is not None else self.conv


class Criterion:
    name = "criterion"
    needs_data = False

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        """Forget accumulated statistics."""

    def accumulate(self, model: nn.Module, layers: list[Layer], data: Dataset, split: Split) -> None:
        """Collect what the criterion needs from `split` (only for `needs_data` criteria)."""

    def __call__(self, layer: Layer) -> torch.Tensor:
        raise NotImplementedError


CRITERIA: Registry[type[Criterion]] = Registry("criterion", plural="criteria")


def list_criteria() -> list[str]:
    return CRITERIA.names()


def create_criterion(name: str, seed: int = 0) -> Criterion:
    return CRITERIA.get(name)(seed=seed)


def _register(cls: type[Criterion]) -> type[Criterion]:
    return CRITERIA.register(cls.name)(cls)


@_register
class Random(Criterion):
    """Uniform random scores; each layer draws from its own seeded stream, so order does not matter."""

    name = "random"

    def __call__(self, layer: Layer) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(layer.name.encode()))
        return torch.rand(layer.conv.out_channels, generator=generator)


@_register
class L1(Criterion):
    """The l1-norm of each filter's weights (Li et al. 2017)."""

    name = "l1"

    def __call__(self, layer: Layer) -> torch.Tensor:
        return layer.conv.weight.detach().flatten(1).abs().sum(1).cpu()


@_register
class L2(Criterion):
    name = "l2"

    def __call__(self, layer: Layer) -> torch.Tensor:
        return layer.conv.weight.detach().flatten(1).norm(dim=1).cpu()


@_register
class BNScale(Criterion):
    """|gamma| of the BatchNorm after the conv (network slimming, Liu et al. 2017)."""

    name = "bn-scale"

    def __call__(self, layer: Layer) -> torch.Tensor:
        if layer.bn is None:
            raise InvalidConfigError(
                f"bn-scale needs a BatchNorm after every conv layer, and {layer.name} has none; "
                "use a model with BatchNorm (vgg16, resnet20, ...) or another criterion"
            )
        return layer.bn.weight.detach().abs().cpu()


class _DataCriterion(Criterion):
    """Sums one per-channel statistic over up to `max_images` training images."""

    needs_data = True
    max_images = 1024
    batch_size = 256

    def reset(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def __call__(self, layer: Layer) -> torch.Tensor:
        if layer.name not in self._sums:
            raise InvalidConfigError(f"{self.name} has no statistics for {layer.name}; call accumulate() first")
        return self._sums[layer.name] / max(1, self._counts[layer.name])

    def _add(self, name: str, per_image: torch.Tensor) -> None:
        """`per_image`: (batch, channels) statistic of one layer."""
        total = per_image.detach().float().sum(0).cpu()
        self._sums[name] = self._sums.get(name, 0) + total
        self._counts[name] = self._counts.get(name, 0) + per_image.shape[0]

    def _image_batches(self, data: Dataset, split: Split):
        head = Split(split.images[: self.max_images], split.labels[: self.max_images])
        for images, labels in batches(head, self.batch_size):
            yield data.normalize(images), labels


class _ActivationCriterion(_DataCriterion):
    def statistic(self, activation: torch.Tensor) -> torch.Tensor:
        """(batch, C, H, W) rectified activation -> (batch, C) statistic."""
        raise NotImplementedError

    @torch.no_grad()
    def accumulate(self, model: nn.Module, layers: list[Layer], data: Dataset, split: Split) -> None:
        def hook_for(name: str):
            return lambda module, inputs, output: self._add(name, self.statistic(torch.relu(output)))

        handles = [layer.output.register_forward_hook(hook_for(layer.name)) for layer in layers]
        was_training = model.training
        model.eval()
        try:
            for images, _ in self._image_batches(data, split):
                model(images)
        finally:
            model.train(was_training)
            for handle in handles:
                handle.remove()


@_register
class APoZ(_ActivationCriterion):
    """1 - the average percentage of zeros of the rectified output (Hu et al. 2016): few zeros, keep."""

    name = "apoz"

    def statistic(self, activation: torch.Tensor) -> torch.Tensor:
        return (activation > 0).float().mean(dim=(2, 3))


@_register
class MeanActivation(_ActivationCriterion):
    """The mean rectified output of each channel."""

    name = "mean-activation"

    def statistic(self, activation: torch.Tensor) -> torch.Tensor:
        return activation.mean(dim=(2, 3))


@_register
class Taylor(_DataCriterion):
    """First-order Taylor estimate of the loss change when a channel is removed (Molchanov et al. 2017).

    Per image, |mean over positions of activation x gradient|, averaged over images and divided by
    the layer's l2-norm so layers compare.
    """

    name = "taylor"

    def accumulate(self, model: nn.Module, layers: list[Layer], data: Dataset, split: Split) -> None:
        activations: dict[str, torch.Tensor] = {}

        def hook_for(name: str):
            def keep(module, inputs, output):
                output.retain_grad()
                activations[name] = output

            return keep

        handles = [layer.output.register_forward_hook(hook_for(layer.name)) for layer in layers]
        was_training = model.training
        model.eval()
        try:
            for images, labels in self._image_batches(data, split):
                activations.clear()
                loss = nn.functional.cross_entropy(model(images), labels, reduction="sum")
                loss.backward()
                for name, act in activations.items():
                    self._add(name, (act * act.grad).mean(dim=(2, 3)).abs())
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
            for handle in handles:
                handle.remove()

    def __call__(self, layer: Layer) -> torch.Tensor:
        scores = super().__call__(layer)
        return scores / scores.norm().clamp_min(1e-12)
