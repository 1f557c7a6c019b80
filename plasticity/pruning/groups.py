"""What can be pruned together: Torch-Pruning's dependency graph, grouped into one decision per conv group.

Torch-Pruning's dependency graph groups every conv layer with what is coupled to it (its BatchNorm,
the next layer's inputs, the other side of a residual add), so one decision per group keeps the
network consistent. This module is the one place that knows how a group is found, how many of its
units a ratio removes, and which parameter slices removing it cuts (for masks that keep the shape).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from plasticity.errors import InvalidConfigError
from plasticity.models import classifier_layer


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


def prunable_groups(
    model: nn.Module, graph: tp.DependencyGraph, kept: list[nn.Module] | None = None
) -> list[PrunableGroup]:
    """One group per decision; the layers in `kept` (default: the classifier) keep their outputs."""
    names = {module: name for name, module in model.named_modules()}
    order = {name: i for i, name in enumerate(names.values())}  # the model's own order, not the trace's
    groups = []
    ignored = [classifier_layer(model)] if kept is None else kept
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d]):
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


def pruning_group(graph: tp.DependencyGraph, group: PrunableGroup, doomed: list[int]) -> tp.Group:
    """Torch-Pruning's group that removes the filters `doomed` of `group` and everything coupled to them."""
    root = group.layers[0].conv
    return graph.get_pruning_group(root, graph.get_pruner_of_module(root).prune_out_channels, doomed)


def check_ratio(ratio: float, where: str = "ratio") -> None:
    if not 0.0 <= ratio < 1.0:
        raise InvalidConfigError(f"{where} must be in [0, 1); got {ratio}")


def count_to_prune(units: int, ratio: float, layer: str, what: str = "filters") -> int:
    """How many of `units` (filters, kernels, kernel positions) a ratio removes, rounded half up; never all."""
    count = int(ratio * units + 0.5)
    if count >= units:
        raise InvalidConfigError(
            f"ratio {ratio} would remove all {units} {what} of {layer}; "
            f"use a ratio below {(units - 0.5) / units:.3f} there"
        )
    return count


def check_layer_ratios(layer_ratios: dict[str, float], layers: list[str]) -> None:
    """Every per-layer ratio names a prunable layer and is a valid ratio."""
    for name, value in layer_ratios.items():
        if name not in layers:
            raise InvalidConfigError(f"no prunable layer {name!r}; prunable layers: {', '.join(layers)}")
        check_ratio(value, f"the ratio of {name}")


def cut_slices(graph: tp.DependencyGraph, group: tp.Group) -> list[tuple[nn.Module, str, int, torch.Tensor]]:
    """What removing `group` cuts, as (module, parameter name, dim, indices): the output rows of convs,
    BatchNorms and biases, and the matching input columns of the layers that read them. Functional
    nodes of the trace (pooling, flatten) hold no parameters and are skipped."""
    cuts = []
    for item in group:
        module, idxs = item.dep.target.module, torch.tensor(item.idxs, dtype=torch.long)
        out = graph.is_out_channel_pruning_fn(item.dep.handler)
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if out:
                cuts.append((module, "weight", 0, idxs))
                if module.bias is not None:
                    cuts.append((module, "bias", 0, idxs))
            elif not (isinstance(module, nn.Conv2d) and module.groups > 1):
                cuts.append((module, "weight", 1, idxs))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            cuts += [(module, "weight", 0, idxs), (module, "bias", 0, idxs)]
    return cuts


def check_prunable(model: nn.Module, example_input: torch.Tensor, name: str) -> None:
    """A user's network, checked before it is trained: it runs on the data's images, Torch-Pruning traces
    it into groups with a conv layer to prune, and with one filter of every group removed it still runs.
    Each failure is one InvalidConfigError that names the layer."""
    _run_naming_layer(model, example_input, f"{name} does not run on this data set's images")
    trial = copy.deepcopy(model).eval()
    try:
        graph = dependency_graph(trial, example_input)
        groups = prunable_groups(trial, graph)
    except Exception as exc:  # Torch-Pruning's trace of code it has not seen
        raise InvalidConfigError(f"Torch-Pruning cannot trace {name}: {exc.__class__.__name__}: {exc}") from None
    if not groups:
        raise InvalidConfigError(f"{name} has no Conv2d layer to prune (only conv filters are pruned)")
    for group in groups:
        if group.size < 2:
            continue
        try:
            pruning_group(graph, group, [0]).prune()
        except Exception as exc:
            raise InvalidConfigError(
                f"{name}: removing a filter of {group.root} fails in Torch-Pruning: {exc.__class__.__name__}: {exc}"
            ) from None
        _run_naming_layer(trial, example_input, f"{name} no longer runs once a filter of {group.root} is removed")


@torch.no_grad()
def _run_naming_layer(model: nn.Module, example_input: torch.Tensor, what: str) -> None:
    """Run `model` once; if it raises, the error names the innermost module that was running."""
    names = {module: name for name, module in model.named_modules()}
    running: list[nn.Module] = []
    hooks = [m.register_forward_pre_hook(lambda m, _: running.append(m)) for m in names]
    hooks += [m.register_forward_hook(lambda m, _, __: running.remove(m)) for m in names]  # returns None
    was_training = model.training
    try:
        model.eval()(example_input)
    except Exception as exc:
        where = f" (in {names[running[-1]] or 'its own forward'})" if running else ""
        first_line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise InvalidConfigError(f"{what}{where}: {first_line}") from None
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
