"""Training, evaluation and speed of a detector or a segmenter on a scene data set.

A detector (torchvision's detection API) takes a list of float images in [0, 1] and, while
training, their targets, and returns its losses; evaluated, its boxes, labels and scores. A
segmenter takes normalised images and returns per-pixel class scores.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from plasticity.errors import DivergedError, InvalidConfigError
from plasticity.onednn import guarded_backward
from plasticity.tasks.metrics import confusion, mean_average_precision, mean_iou
from plasticity.tasks.scenes import DETECTION, Scenes, SceneSplit

EVAL_BATCH = 32


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def detector_inputs(images: torch.Tensor, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """uint8 (N, C, H, W) -> the detector's list of 3-channel float images in [0, 1], on `device`."""
    floats = images.to(device).float() / 255.0
    return list(floats.expand(-1, 3, -1, -1) if floats.shape[1] == 1 else floats)


def median_frequency_weights(masks: torch.Tensor, classes: int) -> torch.Tensor:
    """SegNet's class balancing (Badrinarayanan et al., after Eigen and Fergus): a class's weight is the
    median of the class frequencies over its own, where a class's frequency is its pixels over the pixels
    of the images it appears in. A class absent from `masks` weighs 1."""
    counts = torch.bincount(masks.flatten(), minlength=classes)[:classes].double()
    images_with = torch.stack([(masks == c).flatten(1).any(1).sum() for c in range(classes)]).double()
    present = counts > 0
    frequency = counts[present] / (images_with[present] * masks[0].numel())
    weights = torch.ones(classes, dtype=torch.float64)
    weights[present] = frequency.quantile(0.5) / frequency  # the median, halfway between two middle values
    return weights.float()


def _loss(
    model: nn.Module, task: str, scenes: Scenes, split: SceneSplit, index: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    device = _device(model)
    if task == DETECTION:
        targets = [{k: v.to(device) for k, v in t.items()} for t in split.targets(index.tolist())]
        return sum(model(detector_inputs(split.images[index], device), targets).values())
    logits = model(scenes.normalize(split.images[index].to(device)))
    return nn.functional.cross_entropy(logits, split.masks[index].to(device), weight=weights)


def fit(
    model: nn.Module,
    task: str,
    scenes: Scenes,
    epochs: int,
    *,
    lr: float,
    batch_size: int,
    seed: int,
    balance: bool = False,
    on_epoch_end: Callable[[int], None] | None = None,
) -> nn.Module:
    """SGD with momentum over the training split, shuffled by `seed`; `on_epoch_end(epoch)` after each.
    With `balance`, a segmenter's loss weighs its classes by `median_frequency_weights` of the split."""
    if lr <= 0 or batch_size <= 0:
        raise InvalidConfigError(f"lr and batch_size must be positive; got lr={lr}, batch_size={batch_size}")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    split = scenes.train
    weights = None
    if balance and task != DETECTION:
        weights = median_frequency_weights(split.masks, len(scenes.classes) + 1).to(_device(model))
    with guarded_backward(model):
        for epoch in range(1, epochs + 1):
            model.train()
            for index in torch.randperm(len(split), generator=generator).split(batch_size):
                loss = _loss(model, task, scenes, split, index, weights)
                if not torch.isfinite(loss):
                    raise DivergedError(f"the loss became {loss.item()} at epoch {epoch}; lower the learning rate")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if on_epoch_end:
                on_epoch_end(epoch)
    return model


@torch.no_grad()
def predict(model: nn.Module, task: str, scenes: Scenes, images: torch.Tensor) -> list[dict] | torch.Tensor:
    """Detections (one dict per image) or predicted masks (N, H, W) of `images`, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        device = _device(model)
        if task == DETECTION:
            return [
                {k: v.cpu() for k, v in d.items()}
                for batch in images.split(EVAL_BATCH)
                for d in model(detector_inputs(batch, device))
            ]
        return torch.cat([model(scenes.normalize(b.to(device))).argmax(1).cpu() for b in images.split(EVAL_BATCH)])
    finally:
        model.train(was_training)


def score(model: nn.Module, task: str, scenes: Scenes, split: SceneSplit) -> dict[str, float]:
    """{"map", "map_50"} of a detector or {"miou"} of a segmenter on `split`."""
    predicted = predict(model, task, scenes, split.images)
    if task == DETECTION:
        return mean_average_precision(predicted, split.targets(range(len(split))))
    return {"miou": mean_iou(confusion(predicted, split.masks, len(scenes.classes) + 1))}


@torch.no_grad()
def frames_per_second(model: nn.Module, task: str, scenes: Scenes, images: torch.Tensor, repeats: int = 5) -> float:
    """Images per second of inference on `images` (one batch), the median of `repeats` timed passes
    after one warm-up; a detector's includes its box post-processing."""
    was_training = model.training
    model.eval()
    device = _device(model)
    if task == DETECTION:
        inputs = detector_inputs(images, device)
        run = lambda: model(inputs)  # noqa: E731
    else:
        normalised = scenes.normalize(images.to(device))
        run = lambda: model(normalised)  # noqa: E731
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    run()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    model.train(was_training)
    return len(images) / statistics.median(times)
