"""Attribution with captum: how much each filter, or each input pixel, moves a class's score.

Two families, each a registry of small functions:
- layer methods attribute a class score to a layer's output, element by element (gradient x
  activation, conductance, feature ablation of whole channels); `channel_attribution` reduces that to
  one value per channel and image, the quantity the attribution pruning criteria average;
- input methods attribute it to the input pixels (integrated gradients, saliency).

captum hooks the model it is given, so the functions a page calls (`filter_maps`,
`input_attribution`) work on a copy: a model shared between threads is never hooked. captum is
imported when first used, so the command line starts no slower.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from plasticity.errors import InvalidConfigError
from plasticity.registry import Registry

CONDUCTANCE_STEPS = 16  # LeNet-5/mnist-5k: ranks filters as 50 steps do (Spearman >= 0.999), about 3x faster
INTEGRATED_GRADIENTS_STEPS = 32
INTERNAL_BATCH = 256  # images a path method sends through the model at once: bounds memory on wide models
ABLATION_BATCH = 2048  # images (batch x channels ablated together) in one forward pass of channel ablation


@dataclass(frozen=True)
class LayerMethod:
    """A captum layer attribution: (model, layer module, inputs, targets, baselines) -> attribution of the
    layer's output; `baselines` are the reference inputs of the path methods (e.g. black images)."""

    label: str
    attribute: Callable[[nn.Module, nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    spatial: bool  # True: a map per channel that sums to the channel's share; False: one value per channel


LAYER_METHODS: Registry[LayerMethod] = Registry("layer attribution method")
INPUT_METHODS: Registry[Callable] = Registry("input attribution method")


def list_layer_methods(spatial_only: bool = False) -> list[str]:
    return [name for name in LAYER_METHODS.names() if LAYER_METHODS.get(name).spatial or not spatial_only]


def list_input_methods() -> list[str]:
    return INPUT_METHODS.names()


def _output_channels(module: nn.Module) -> int:
    for attribute in ("out_channels", "num_features"):
        if hasattr(module, attribute):
            return getattr(module, attribute)
    raise InvalidConfigError(f"cannot attribute to the channels of a {module.__class__.__name__}")


def _gradient_x_activation(model, module, inputs, targets, baselines):
    from captum.attr import LayerGradientXActivation

    return LayerGradientXActivation(model, module).attribute(inputs, target=targets)


def _conductance(model, module, inputs, targets, baselines):
    from captum.attr import LayerConductance

    return LayerConductance(model, module).attribute(
        inputs,
        baselines=baselines,
        target=targets,
        n_steps=CONDUCTANCE_STEPS,
        internal_batch_size=max(INTERNAL_BATCH, 2 * len(inputs)),  # captum's least: twice the images
    )


def _channel_ablation(model, module, inputs, targets, baselines):
    """Each channel in turn set to zero (the filter removed), the class score's drop; one value per channel."""
    from captum.attr import LayerFeatureAblation

    def class_score(images: torch.Tensor) -> torch.Tensor:
        # The score of each image's own class. captum stacks the batch once per channel ablated in the same
        # forward pass, and its own `target` is not stacked with it (captum 0.9), so the labels are repeated here.
        return model(images).gather(1, targets.repeat(len(images) // len(targets))[:, None])[:, 0]

    channels = _output_channels(module)
    mask = torch.arange(channels, device=inputs.device).view(1, channels, 1, 1)
    return LayerFeatureAblation(class_score, module).attribute(
        inputs, layer_mask=mask, perturbations_per_eval=max(1, ABLATION_BATCH // len(inputs))
    )


LAYER_METHODS.register("gradient-x-activation")(LayerMethod("gradient x activation", _gradient_x_activation, True))
LAYER_METHODS.register("conductance")(LayerMethod("layer conductance", _conductance, True))
LAYER_METHODS.register("ablation")(LayerMethod("channel ablation", _channel_ablation, False))


@INPUT_METHODS.register("integrated-gradients")
def _integrated_gradients(model, inputs, targets, baselines):
    from captum.attr import IntegratedGradients

    return IntegratedGradients(model).attribute(
        inputs,
        baselines=baselines,
        target=targets,
        n_steps=INTEGRATED_GRADIENTS_STEPS,
        internal_batch_size=INTERNAL_BATCH,
    )


@INPUT_METHODS.register("saliency")
def _saliency(model, inputs, targets, baselines):
    from captum.attr import Saliency

    return Saliency(model).attribute(inputs, target=targets, abs=True)


def layer_attribution(
    model: nn.Module,
    module: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    method: str,
    baselines: torch.Tensor,
) -> torch.Tensor:
    """(batch, C, H, W): the attribution of each image's `targets` score to `module`'s output."""
    attribute = LAYER_METHODS.get(method).attribute
    with torch.enable_grad():
        return attribute(model, module, inputs, targets, baselines).detach()


def channel_attribution(
    model: nn.Module,
    module: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    method: str,
    baselines: torch.Tensor,
) -> torch.Tensor:
    """(batch, C): each output channel's attribution per image, summed over positions for the spatial
    methods (its share of the score), the channel's own value for ablation (the score's drop)."""
    attribution = layer_attribution(model, module, inputs, targets, method, baselines).flatten(2)
    return attribution.sum(2) if LAYER_METHODS.get(method).spatial else attribution.mean(2)


@dataclass(frozen=True)
class FilterMaps:
    """What every filter of one conv layer does with one image."""

    activation: torch.Tensor  # (filters, H, W): the rectified output of each filter
    attribution: torch.Tensor  # (filters, H, W): each position's share of the target class's score
    target: int


def filter_maps(
    model: nn.Module,
    layer: str,
    image: torch.Tensor,
    target: int,
    baseline: torch.Tensor,
    method: str = "gradient-x-activation",
) -> FilterMaps:
    """Per filter of the conv `layer`, its activation map and its attribution map for one normalised
    image (1, C, H, W) and the class `target` (`baseline`: the path methods' reference input)."""
    if not LAYER_METHODS.get(method).spatial:
        raise InvalidConfigError(
            f"{method} gives one value per filter, not a map; use one of {list_layer_methods(True)}"
        )
    model = copy.deepcopy(model).eval()
    modules = dict(model.named_modules())
    if not isinstance(modules.get(layer), nn.Conv2d):
        convs = [name for name, module in modules.items() if isinstance(module, nn.Conv2d)]
        raise InvalidConfigError(f"no conv layer {layer!r}; conv layers: {', '.join(convs)}")
    captured: list[torch.Tensor] = []
    handle = modules[layer].register_forward_hook(lambda module, inputs, output: captured.append(output.detach()))
    try:
        with torch.no_grad():
            model(image)
    finally:
        handle.remove()
    targets = torch.tensor([target], device=image.device)
    attribution = layer_attribution(model, modules[layer], image, targets, method, baseline)
    return FilterMaps(torch.relu(captured[0][0]).cpu(), attribution[0].cpu(), target)


def input_attribution(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, method: str, baselines: torch.Tensor
) -> torch.Tensor:
    """(batch, H, W): each pixel's attribution of the `targets` scores, summed over colour channels.

    `baselines` are the reference inputs of integrated gradients (e.g. a black image, normalised).
    """
    attribute = INPUT_METHODS.get(method)
    model = copy.deepcopy(model).eval()
    with torch.enable_grad():
        attribution = attribute(model, images.detach().requires_grad_(), targets, baselines)
    return attribution.detach().sum(1).cpu()


def map_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two attribution maps: 1 when they point at the same pixels alike."""
    a, b = a.flatten().double(), b.flatten().double()
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0, eps=1e-12))
