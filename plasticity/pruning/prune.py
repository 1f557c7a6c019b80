"""Structured filter pruning: real removal through Torch-Pruning, or masks that keep the shape.

`prune_model` never touches the model it is given: it prunes a copy, one decision per conv group
(`plasticity.pruning.groups`). A mode says what a decision does: `remove` cuts the filters and
everything coupled to them out of the network; `mask` zeroes the same slices and keeps them zero.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from plasticity.data import Dataset
from plasticity.errors import InvalidConfigError
from plasticity.pruning.criteria import Criterion
from plasticity.pruning.groups import (
    PrunableGroup,
    check_layer_ratios,
    check_ratio,
    count_to_prune,
    cut_slices,
    dependency_graph,
    prunable_groups,
    pruning_group,
)
from plasticity.registry import Registry
from plasticity.train import Callback, FilterNormHistory, Trainer, conv_layers


@dataclass
class FilterMask(Callback):
    """Zeroed slices of parameters, re-applied after every optimiser step so they stay zero."""

    slices: list[tuple[torch.Tensor, int, torch.Tensor]] = field(default_factory=list)

    @torch.no_grad()
    def apply(self) -> None:
        for tensor, dim, index in self.slices:
            tensor.index_fill_(dim, index, 0.0)

    def on_after_optimizer_step(self, trainer: Trainer) -> None:
        self.apply()


@dataclass(frozen=True)
class Mode:
    """What one pruning decision does to the network: `cut` applies it (and returns slices to keep zeroed)."""

    name: str
    cut: Callable[[tp.DependencyGraph, tp.Group], list[tuple[torch.Tensor, int, torch.Tensor]]]
    keeps_shape: bool


def _remove(graph: tp.DependencyGraph, group: tp.Group) -> list:
    group.prune()
    return []


def _zero(graph: tp.DependencyGraph, group: tp.Group) -> list:
    return [
        (getattr(module, name).data, dim, idxs.to(getattr(module, name).device))
        for module, name, dim, idxs in cut_slices(graph, group)
    ]


MODES: Registry[Mode] = Registry("mode")
MODES.register("remove")(Mode("remove", _remove, keeps_shape=False))
MODES.register("mask")(Mode("mask", _zero, keeps_shape=True))


def list_modes() -> list[str]:
    return MODES.names()


@dataclass
class PruneResult:
    model: nn.Module
    mode: str
    kept: dict[str, list[int]]  # conv layer -> positions of the surviving filters, before this pruning
    original: dict[str, int]  # conv layer -> filters before this pruning
    mask: FilterMask | None = None

    @property
    def channels(self) -> dict[str, list[int]]:
        """conv layer -> [kept, original]."""
        return {name: [len(self.kept[name]), self.original[name]] for name in self.original}


def prune_model(
    model: nn.Module,
    criterion: Criterion,
    ratio: float,
    data: Dataset,
    *,
    mode: str = "remove",
    layer_ratios: Mapping[str, float] | None = None,
    history: FilterNormHistory | None = None,
) -> PruneResult:
    """A pruned copy of `model`: in every conv group, the `ratio` lowest-scoring filters go.

    `layer_ratios` overrides the ratio for the named (root) layers. Data-dependent criteria are
    computed on the split of `data` they name (`criterion.split`: training, validation for the
    attribution criteria); history-based ones (hbfp) on `history`, the filter-norm history of
    `model`'s training.
    """
    how = MODES.get(mode)
    check_ratio(ratio)
    layer_ratios = dict(layer_ratios or {})
    model = copy.deepcopy(model).eval()
    graph = dependency_graph(model, data.example_input())
    groups = prunable_groups(model, graph)
    check_layer_ratios(layer_ratios, [g.root for g in groups])
    counts = {g.root: count_to_prune(g.size, layer_ratios.get(g.root, ratio), g.root) for g in groups}
    _prepare(criterion, model, groups, counts, data, history)

    original = {name: conv.out_channels for name, conv in conv_layers(model).items()}
    kept = {name: list(range(n)) for name, n in original.items()}
    plan = []
    for group in groups:
        if counts[group.root] == 0:
            continue
        scores = _group_scores(criterion, group)
        doomed = sorted(torch.argsort(scores, stable=True)[: counts[group.root]].tolist())
        survivors = [i for i in range(group.size) if i not in set(doomed)]
        for layer in group.layers:
            kept[layer.name] = survivors
        plan.append((group, doomed))

    slices = [cut for group, doomed in plan for cut in how.cut(graph, pruning_group(graph, group, doomed))]
    mask = FilterMask(slices) if how.keeps_shape else None
    if mask is not None:
        mask.apply()
    return PruneResult(model, mode, kept, original, mask)


def _prepare(
    criterion: Criterion,
    model: nn.Module,
    groups: list[PrunableGroup],
    counts: dict[str, int],
    data: Dataset,
    history: FilterNormHistory | None,
) -> None:
    """Let a data- or history-based criterion collect what it scores from."""
    if criterion.needs_data:
        criterion.reset()
        criterion.accumulate(model, [layer for g in groups for layer in g.layers], data, getattr(data, criterion.split))
    if criterion.needs_history:
        if history is None:
            raise InvalidConfigError(f"{criterion.name} needs the filter-norm history of the model's training")
        criterion.reset()
        criterion.accumulate_history(model, groups, counts, history, data)


def _group_scores(criterion: Criterion, group: PrunableGroup) -> torch.Tensor:
    """One score per filter of the group: the criterion's, summed over coupled layers after
    dividing each layer's by its mean, so no layer dominates by scale."""
    total = torch.zeros(group.size)
    for layer in group.layers:
        scores = criterion(layer).float().cpu()
        if scores.shape != (group.size,):
            raise InvalidConfigError(
                f"criterion {criterion.name} gave {tuple(scores.shape)} scores for {layer.name}, "
                f"expected ({group.size},)"
            )
        total += scores if len(group.layers) == 1 else scores / scores.abs().mean().clamp_min(1e-12)
    return total


def apply_structure(model: nn.Module, kept: Mapping[str, list[int]], example_input: torch.Tensor) -> nn.Module:
    """Remove, in place, every filter not in `kept`: rebuilds a pruned architecture from a checkpoint."""
    graph = dependency_graph(model, example_input)
    for group in prunable_groups(model, graph):
        if group.root not in kept:
            continue
        survivors = set(kept[group.root])
        doomed = [i for i in range(group.size) if i not in survivors]
        if doomed:
            pruning_group(graph, group, doomed).prune()
    return model
