"""Structured filter pruning: real removal through Torch-Pruning, or masks that keep the shape.

Torch-Pruning's dependency graph groups every conv layer with what is coupled to it (its
BatchNorm, the next layer's inputs, the other side of a residual add), so one decision per group
keeps the network consistent. `prune_model` never touches the model it is given: it prunes a copy.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from plasticity.criteria import Criterion, Layer
from plasticity.data import Dataset
from plasticity.errors import InvalidConfigError
from plasticity.models import classifier_layer
from plasticity.train import Callback, FilterNormHistory, Trainer, conv_layers

MODES = ("remove", "mask")


@dataclass
class PrunableGroup:
    """One pruning decision: a root conv and the conv layers whose filters go with it."""

    root: str  # the group's first conv layer in the model's order; names the group in `layer_ratios`
    layers: list[Layer]  # the coupled conv layers, in the model's order

    @property
    def size(self) -> int:
        return self.layers[0].conv.out_channels


def dependency_graph(model: nn.Module, example_input: torch.Tensor) -> tp.DependencyGraph:
    with torch.enable_grad():
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_input, verbose=False)


def prunable_groups(model: nn.Module, graph: tp.DependencyGraph) -> list[PrunableGroup]:
    names = {module: name for name, module in model.named_modules()}
    order = {name: i for i, name in enumerate(names.values())}  # the model's own order, not the trace's
    groups = []
    for group in graph.get_all_groups(ignored_layers=[classifier_layer(model)], root_module_types=[nn.Conv2d]):
        convs = [
            item.dep.target.module
            for item in group
            if isinstance(item.dep.target.module, nn.Conv2d) and graph.is_out_channel_pruning_fn(item.dep.handler)
        ]
        layers = [Layer(names[conv], conv, _following_batchnorm(graph, conv)) for conv in dict.fromkeys(convs)]
        layers.sort(key=lambda layer: order[layer.name])
        groups.append(PrunableGroup(layers[0].name, layers))
    return sorted(groups, key=lambda g: order[g.root])


def _following_batchnorm(graph: tp.DependencyGraph, conv: nn.Conv2d) -> nn.BatchNorm2d | None:
    for node in graph.module2node[conv].outputs:
        if isinstance(node.module, nn.BatchNorm2d):
            return node.module
    return None


def check_ratio(ratio: float, where: str = "ratio") -> None:
    if not 0.0 <= ratio < 1.0:
        raise InvalidConfigError(f"{where} must be in [0, 1); got {ratio}")


def filters_to_prune(size: int, ratio: float, layer: str) -> int:
    """How many of `size` filters a ratio removes (rounded half up); never all of them."""
    count = int(ratio * size + 0.5)
    if count >= size:
        raise InvalidConfigError(
            f"ratio {ratio} would remove all {size} filters of {layer}; "
            f"use a ratio below {(size - 0.5) / size:.3f} there"
        )
    return count


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
    if mode not in MODES:
        raise InvalidConfigError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    check_ratio(ratio)
    layer_ratios = dict(layer_ratios or {})
    model = copy.deepcopy(model).eval()
    graph = dependency_graph(model, data.example_input())
    groups = prunable_groups(model, graph)
    _check_layer_ratios(layer_ratios, groups)

    if criterion.needs_data:
        criterion.reset()
        criterion.accumulate(model, [layer for g in groups for layer in g.layers], data, getattr(data, criterion.split))
    if criterion.needs_history:
        if history is None:
            raise InvalidConfigError(f"{criterion.name} needs the filter-norm history of the model's training")
        counts = {g.root: filters_to_prune(g.size, layer_ratios.get(g.root, ratio), g.root) for g in groups}
        criterion.reset()
        criterion.accumulate_history(model, groups, counts, history, data)

    original = {name: conv.out_channels for name, conv in conv_layers(model).items()}
    kept = {name: list(range(n)) for name, n in original.items()}
    plan = []
    for group in groups:
        group_ratio = layer_ratios.get(group.root, ratio)
        count = filters_to_prune(group.size, group_ratio, group.root)
        if count == 0:
            continue
        scores = _group_scores(criterion, group)
        doomed = sorted(torch.argsort(scores, stable=True)[:count].tolist())
        survivors = [i for i in range(group.size) if i not in set(doomed)]
        for layer in group.layers:
            kept[layer.name] = survivors
        plan.append((group, doomed))

    mask = FilterMask() if mode == "mask" else None
    for group, doomed in plan:
        root = group.layers[0].conv
        tp_group = graph.get_pruning_group(root, graph.get_pruner_of_module(root).prune_out_channels, doomed)
        if mask is None:
            tp_group.prune()
        else:
            mask.slices += _mask_slices(graph, tp_group)
    if mask is not None:
        mask.apply()
    return PruneResult(model, mode, kept, original, mask)


def _check_layer_ratios(layer_ratios: dict[str, float], groups: list[PrunableGroup]) -> None:
    roots = [g.root for g in groups]
    for name, value in layer_ratios.items():
        if name not in roots:
            raise InvalidConfigError(f"no prunable layer {name!r}; prunable layers: {', '.join(roots)}")
        check_ratio(value, f"the ratio of {name}")


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


def _mask_slices(graph: tp.DependencyGraph, group) -> list[tuple[torch.Tensor, int, torch.Tensor]]:
    """What removing `group` would cut, as zeroed slices: output rows of convs, BatchNorms and
    biases, and the matching input columns of the layers that read them."""
    slices = []
    for item in group:
        module, idxs = item.dep.target.module, torch.tensor(item.idxs, dtype=torch.long)
        out = graph.is_out_channel_pruning_fn(item.dep.handler)
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if out:
                slices.append((module.weight.data, 0, idxs.to(module.weight.device)))
                if module.bias is not None:
                    slices.append((module.bias.data, 0, idxs.to(module.bias.device)))
            elif not (isinstance(module, nn.Conv2d) and module.groups > 1):
                slices.append((module.weight.data, 1, idxs.to(module.weight.device)))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            slices += [
                (module.weight.data, 0, idxs.to(module.weight.device)),
                (module.bias.data, 0, idxs.to(module.bias.device)),
            ]
    return slices


def apply_structure(model: nn.Module, kept: Mapping[str, list[int]], example_input: torch.Tensor) -> nn.Module:
    """Remove, in place, every filter not in `kept`: rebuilds a pruned architecture from a checkpoint."""
    graph = dependency_graph(model, example_input)
    for group in prunable_groups(model, graph):
        if group.root not in kept:
            continue
        survivors = set(kept[group.root])
        doomed = [i for i in range(group.size) if i not in survivors]
        if doomed:
            root = group.layers[0].conv
            graph.get_pruning_group(root, graph.get_pruner_of_module(root).prune_out_channels, doomed).prune()
    return model


@dataclass(frozen=True)
class Cost:
    macs: int
    params: int
    nonzero_params: int
    latency_ms: float | None  # median forward time of one batch (None: not measured)


def measure(model: nn.Module, data: Dataset, *, batch: int = 256, repeats: int = 7, latency: bool = True) -> Cost:
    """MACs and parameters as the dense hardware runs them, and the measured latency of a batch."""
    example = data.example_input(1)
    macs, params = tp.utils.count_ops_and_params(model, example)
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    measured = latency_ms(model, data.example_input(batch), repeats) if latency else None
    return Cost(int(macs), int(params), nonzero, measured)


@torch.no_grad()
def latency_ms(model: nn.Module, inputs: torch.Tensor, repeats: int = 7) -> float:
    was_training = model.training
    model.eval()
    sync = torch.cuda.synchronize if inputs.is_cuda else (lambda: None)
    model(inputs)  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        model(inputs)
        sync()
        times.append((time.perf_counter() - start) * 1000)
    model.train(was_training)
    return statistics.median(times)
