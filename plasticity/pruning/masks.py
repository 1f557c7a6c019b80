"""Coarse pruning with random masks (Anwar and Sung): draw N random masks, keep the best on validation.

Three granularities of a conv layer's weight (out x in x k x k):
- `feature-map`: whole output channels, i.e. filters. Through Torch-Pruning's dependency graph, so
  the coupled parts go too (the channel's bias and BatchNorm, and the next layer's inputs that read
  it); `Mask.channels` says which filters survive, so the same choice can be removed physically.
- `kernel`: whole k x k kernels, i.e. connections between an input and an output channel.
- `intra-kernel`: positions inside the kernels, one pattern per layer shared by all its kernels:
  the pruned positions are (offset + i x stride) mod k^2 for i < count, with a random offset and a
  random stride coprime to k^2 (so they never repeat). 1x1 convs have nothing inside to prune.

The ratio is the share of a layer's units (filters, kernels, kernel positions) removed, the same in
every conv layer unless `layer_ratios` says otherwise. Mask `i` of seed `s` depends only on (s, i),
so the first masks of a search of 50 are exactly those of a search of 5.

A search evaluates its N masks on the validation split by swapping masked weights into one working
copy of the model (no copy per mask); the chosen mask is retrained once with `KeepMasked`, which
re-applies it after every optimiser step, and scored on the test split.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from plasticity.data import Dataset, Split
from plasticity.errors import InvalidConfigError
from plasticity.pruning.groups import (
    check_layer_ratios,
    check_ratio,
    count_to_prune,
    cut_slices,
    dependency_graph,
    prunable_groups,
    pruning_group,
)
from plasticity.pruning.prune import apply_structure
from plasticity.registry import Registry
from plasticity.train import Callback, Trainer, accuracy, conv_layers, seed_everything

PICKS = ("best", "median", "worst")  # which of the N masks is retrained
MAX_MASKS = 1000


@dataclass
class Mask:
    """One random mask: for every parameter it touches, a bool tensor of its shape (True keeps)."""

    granularity: str
    index: int
    keep: dict[str, torch.Tensor]
    channels: dict[str, list[int]] = field(default_factory=dict)  # feature-map: conv -> surviving filters

    @torch.no_grad()
    def apply(self, model: nn.Module) -> nn.Module:
        """Zero the masked weights of `model` in place (any model with the same parameter names)."""
        for name, keep in self.keep.items():
            model.get_parameter(name).mul_(keep)
        return model

    def removed(self, model: nn.Module) -> dict[str, tuple[int, int]]:
        """conv layer -> (weights removed, weights), counting only the conv weights."""
        counts = {}
        for name, conv in conv_layers(model).items():
            keep = self.keep.get(f"{name}.weight")
            counts[name] = (0 if keep is None else int((~keep).sum()), conv.weight.numel())
        return counts

    def sparsity(self, model: nn.Module) -> float:
        """The fraction of all conv weights the mask removes."""
        counts = self.removed(model).values()
        return sum(r for r, _ in counts) / max(1, sum(n for _, n in counts))


def _generator(seed: int, index: int, layer: str) -> torch.Generator:
    """Mask `index` of `seed` draws each layer from its own stream: no order or length dependence."""
    digest = hashlib.blake2b(f"{seed}:{index}:{layer}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


class Granularity:
    """Draws random masks of one granularity for one model."""

    name = "granularity"
    unit = "unit"  # what one pruning decision removes

    def __init__(self, model: nn.Module, example_input: torch.Tensor):
        self.model = model
        self.convs = conv_layers(model)

    def layers(self) -> list[str]:
        """The layers a per-layer ratio can name."""
        return list(self.convs)

    def draw(self, ratio_of: Callable[[str], float], seed: int, index: int) -> Mask:
        raise NotImplementedError


GRANULARITIES: Registry[type[Granularity]] = Registry("granularity", plural="granularities")


def list_granularities() -> list[str]:
    return GRANULARITIES.names()


def _register(cls: type[Granularity]) -> type[Granularity]:
    return GRANULARITIES.register(cls.name)(cls)


@_register
class FeatureMap(Granularity):
    """Whole filters, with everything coupled to them: the same cut as `prune_model`, as a mask."""

    name = "feature-map"
    unit = "feature map"

    def __init__(self, model: nn.Module, example_input: torch.Tensor):
        super().__init__(model, example_input)
        self.graph = dependency_graph(model, example_input)
        self.groups = prunable_groups(model, self.graph)
        self.names = {module: name for name, module in model.named_modules()}

    def layers(self) -> list[str]:
        return [group.root for group in self.groups]

    def draw(self, ratio_of: Callable[[str], float], seed: int, index: int) -> Mask:
        keep: dict[str, torch.Tensor] = {}
        channels = {}
        for group in self.groups:
            count = count_to_prune(group.size, ratio_of(group.root), group.root)
            order = torch.randperm(group.size, generator=_generator(seed, index, group.root))
            doomed = sorted(order[:count].tolist())
            survivors = sorted(order[count:].tolist())
            for layer in group.layers:
                channels[layer.name] = survivors
            if not doomed:
                continue
            for module, attribute, dim, idxs in cut_slices(self.graph, pruning_group(self.graph, group, doomed)):
                name = f"{self.names[module]}.{attribute}"
                param = self.model.get_parameter(name)
                if name not in keep:
                    keep[name] = torch.ones(param.shape, dtype=torch.bool, device=param.device)
                keep[name].index_fill_(dim, idxs.to(param.device), False)
        return Mask(self.name, index, keep, channels)


@_register
class Kernel(Granularity):
    """Whole k x k kernels: `ratio` of a layer's (output, input) connections, uniformly at random."""

    name = "kernel"
    unit = "kernel"

    def draw(self, ratio_of: Callable[[str], float], seed: int, index: int) -> Mask:
        keep = {}
        for name, conv in self.convs.items():
            out, inputs = conv.weight.shape[:2]
            count = count_to_prune(out * inputs, ratio_of(name), name, "kernels")
            connections = torch.ones(out * inputs, dtype=torch.bool)
            connections[torch.randperm(out * inputs, generator=_generator(seed, index, name))[:count]] = False
            keep[f"{name}.weight"] = _expand(connections.view(out, inputs, 1, 1), conv.weight)
        return Mask(self.name, index, keep)


@_register
class IntraKernel(Granularity):
    """One strided pattern of kernel positions per layer, pruned in every kernel of that layer."""

    name = "intra-kernel"
    unit = "kernel position"

    def __init__(self, model: nn.Module, example_input: torch.Tensor):
        super().__init__(model, example_input)
        self.convs = {name: conv for name, conv in self.convs.items() if _positions(conv) > 1}
        if not self.convs:
            raise InvalidConfigError("intra-kernel pruning needs kernels larger than 1x1, and this model has none")

    def draw(self, ratio_of: Callable[[str], float], seed: int, index: int) -> Mask:
        keep = {}
        for name, conv in self.convs.items():
            positions = _positions(conv)
            count = count_to_prune(positions, ratio_of(name), name, "kernel positions")
            generator = _generator(seed, index, name)
            strides = [s for s in range(1, positions) if math.gcd(s, positions) == 1]
            stride = strides[int(torch.randint(len(strides), (1,), generator=generator))]
            offset = int(torch.randint(positions, (1,), generator=generator))
            pattern = torch.ones(positions, dtype=torch.bool)
            pattern[[(offset + i * stride) % positions for i in range(count)]] = False
            keep[f"{name}.weight"] = _expand(pattern.view(1, 1, *conv.weight.shape[2:]), conv.weight)
        return Mask(self.name, index, keep)


def _positions(conv: nn.Conv2d) -> int:
    return conv.weight.shape[2] * conv.weight.shape[3]


def _expand(keep: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return keep.expand(weight.shape).clone().to(weight.device)


class MaskSearch:
    """Random masks of one granularity and ratio for `model`, drawn and scored on one working copy.

    `model` itself is never changed. Mask `index` is the same whatever else was drawn before it.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Dataset,
        granularity: str,
        ratio: float,
        *,
        seed: int = 0,
        layer_ratios: Mapping[str, float] | None = None,
    ):
        check_ratio(ratio)
        self.data, self.ratio, self.seed = data, ratio, seed
        # channels-last takes oneDNN's fast conv path: scoring a mask on LeNet-5 here, 110 ms -> 66 ms
        self.working = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
        self.granularity = GRANULARITIES.get(granularity)(self.working, data.example_input())
        self.layer_ratios = dict(layer_ratios or {})
        check_layer_ratios(self.layer_ratios, self.granularity.layers())
        self._originals = {name: p.detach().clone() for name, p in self.working.named_parameters()}
        self.draw(0)  # a ratio that empties a layer fails here, before any work

    def ratio_of(self, layer: str) -> float:
        return self.layer_ratios.get(layer, self.ratio)

    def draw(self, index: int) -> Mask:
        return self.granularity.draw(self.ratio_of, self.seed, index)

    @torch.no_grad()
    def evaluate(
        self, n_masks: int, split: Split | None = None, on_mask: Callable[[int, float], None] | None = None
    ) -> list[float]:
        """The accuracy of masks 0..n_masks-1 on `split` (validation by default), without retraining."""
        split = self.data.val if split is None else split
        accuracies: list[float] = []
        touched: set[str] = set()
        for index in range(n_masks):
            mask = self.draw(index)
            for name in touched | set(mask.keep):  # the previous mask's weights back, then this mask's
                param = self.working.get_parameter(name)
                param.copy_(self._originals[name])
                if name in mask.keep:
                    param.mul_(mask.keep[name])
            touched = set(mask.keep)
            accuracies.append(accuracy(self.working, self.data, split, batch_size=len(split) or 1))
            if on_mask:
                on_mask(index, accuracies[-1])
        for name in touched:
            self.working.get_parameter(name).copy_(self._originals[name])
        return accuracies


def ranked(accuracies: list[float]) -> dict[str, int]:
    """Indices of the best, median and worst mask (first on ties; the median is the mask at the middle
    rank of the sorted list, the upper one of the two middle masks when N is even)."""
    order = sorted(range(len(accuracies)), key=lambda i: (-accuracies[i], i))
    return {"best": order[0], "median": order[len(order) // 2], "worst": order[-1]}


class KeepMasked(Callback):
    """Re-applies a mask after every optimiser step, so masked weights stay exactly zero."""

    def __init__(self, mask: Mask):
        self.mask = mask

    def on_train_start(self, trainer: Trainer) -> None:
        self.mask.apply(trainer.model)

    def on_after_optimizer_step(self, trainer: Trainer) -> None:
        self.mask.apply(trainer.model)


def retrain_masked(
    model: nn.Module,
    mask: Mask,
    data: Dataset,
    *,
    epochs: int,
    lr: float = 0.01,
    batch_size: int = 64,
    seed: int = 0,
    callbacks: Iterable[Callback] = (),
) -> nn.Module:
    """Retrain `model` in place with `mask` applied before the first step and after every step."""
    seed_everything(seed)
    trainer = Trainer(model, data, lr=lr, batch_size=batch_size, seed=seed, callbacks=[KeepMasked(mask), *callbacks])
    return trainer.fit(epochs)


def layer_positions(model: nn.Module, example_input: torch.Tensor) -> dict[str, int]:
    """conv and linear layer -> output positions per image (each weight is used once per position)."""
    positions, hooks = {}, []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):

            def record(module, inputs, output, name=name):
                positions[name] = output[0].numel() // output.shape[-1 if isinstance(module, nn.Linear) else 1]

            hooks.append(module.register_forward_hook(record))
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(example_input[:1])
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return positions


def count_macs(model: nn.Module, positions: dict[str, int], mask: Mask | None = None) -> int:
    """Multiply-accumulates of the conv and linear layers for one image: every weight once per output
    position, skipping the weights `mask` removes (what a sparse kernel skips). Biases, pooling and
    activations are not counted."""
    total = 0
    for name, count in positions.items():
        weight = model.get_submodule(name).weight
        keep = mask.keep.get(f"{name}.weight") if mask is not None else None
        total += (weight.numel() if keep is None else int(keep.sum())) * count
    return total


def physical_copy(model: nn.Module, mask: Mask, example_input: torch.Tensor) -> nn.Module:
    """A feature-map mask's model with the masked filters removed for real (the `prune` path)."""
    if not mask.channels:
        raise InvalidConfigError(f"only feature-map masks can be removed physically, not {mask.granularity} masks")
    return apply_structure(copy.deepcopy(model), mask.channels, example_input)


def layer_images(mask: Mask, model: nn.Module) -> dict[str, torch.Tensor]:
    """conv layer -> (input channels x k, output channels x k) bool image of its weights, True where
    kept: each k x k tile is one kernel, so gone filters show as columns, gone inputs as rows, gone
    kernels as tiles and gone positions as the same holes in every tile."""
    images = {}
    for name, conv in conv_layers(model).items():
        keep = mask.keep.get(f"{name}.weight")
        if keep is None:
            keep = torch.ones(conv.weight.shape, dtype=torch.bool)
        out, inputs, kh, kw = keep.shape
        images[name] = keep.cpu().permute(1, 2, 0, 3).reshape(inputs * kh, out * kw)
    return images
