"""Pruning criteria: small strategy objects that give every filter of a conv layer one score.

A higher score means a more important filter, one to keep. The random baseline is a criterion
like any other. Criteria that need data (`needs_data`) first `accumulate` statistics from
forward (and backward) passes over the images of their `split` (training images, validation
images for the attribution criteria), and are `reset` explicitly.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from plasticity.attribution import channel_attribution
from plasticity.data import Dataset, Split, batches
from plasticity.errors import InvalidConfigError
from plasticity.onednn import guarded_backward
from plasticity.pruning.groups import Layer, PrunableGroup
from plasticity.pruning.pairs import (
    DEFAULT_OPTIMISE_EPOCHS,
    DEFAULT_STRENGTH,
    DROP_RULES,
    Pair,
    PairRegulariser,
    drop_one_of_each,
    find_pairs,
)
from plasticity.registry import Registry
from plasticity.train import Callback, FilterNormHistory, Trainer


class Criterion:
    name = "criterion"
    needs_data = False
    split = "train"  # the split of the data set a `needs_data` criterion is measured on
    needs_history = False
    optimises = False  # trains the model itself before scoring (hbfp's pair regulariser); takes training options

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        """Forget accumulated statistics."""

    def accumulate(self, model: nn.Module, layers: list[Layer], data: Dataset, split: Split) -> None:
        """Collect what the criterion needs from `split` (only for `needs_data` criteria)."""

    def accumulate_history(
        self,
        model: nn.Module,
        groups: list[PrunableGroup],
        counts: Mapping[str, int],
        history: FilterNormHistory,
        data: Dataset,
    ) -> None:
        """Prepare from `history`, the filter-norm history of `model`'s training (only for `needs_history`
        criteria); `counts[group.root]` filters of each group will go."""

    def __call__(self, layer: Layer) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def unusable_on(cls, model: nn.Module) -> str | None:
        """Why this criterion cannot score `model`'s filters, or None when it can (checked before offering it)."""
        return None


CRITERIA: Registry[type[Criterion]] = Registry("criterion", plural="criteria")


def list_criteria() -> list[str]:
    return CRITERIA.names()


def unusable_criteria(model: nn.Module) -> dict[str, str]:
    """The criteria that cannot score `model`'s filters, each with the reason."""
    reasons = {name: CRITERIA.get(name).unusable_on(model) for name in list_criteria()}
    return {name: reason for name, reason in reasons.items() if reason is not None}


def create_criterion(name: str, seed: int = 0, **options) -> Criterion:
    """The criterion `name`; `options` are its own keyword arguments (hbfp's strength, attribution's classes)."""
    factory = CRITERIA.get(name)
    try:
        return factory(seed=seed, **options)
    except TypeError as exc:
        raise InvalidConfigError(f"criterion {name} does not take these options ({exc})") from None


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

    @classmethod
    def unusable_on(cls, model: nn.Module) -> str | None:
        if not any(isinstance(module, nn.BatchNorm2d) for module in model.modules()):
            return "it needs a BatchNorm after the conv layers, and this model has none"
        return None


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
            with guarded_backward(model):
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


@_register
class HBFP(Criterion):
    """History-based filter pruning (Basha et al. 2024), one round of it.

    From the filter-norm history of the model's training, the closest disjoint pairs of filters,
    one pair per filter to prune; `optimise_epochs` of training with the pair regulariser (lambda =
    `strength`) pull each pair's l1-norms together, on `prune_model`'s own copy of the model; then
    the filter of each pair that `drop` names scores 0 and every other filter 1. `callbacks` join the
    optimisation's trainer (e.g. the history, so that it keeps recording).
    """

    name = "hbfp"
    needs_history = True
    optimises = True

    def __init__(
        self,
        seed: int = 0,
        *,
        strength: float = DEFAULT_STRENGTH,
        optimise_epochs: int = DEFAULT_OPTIMISE_EPOCHS,
        drop: str = "lower-importance",
        lr: float = 0.01,
        batch_size: int = 64,
        callbacks: Iterable[Callback] = (),
    ):
        DROP_RULES.get(drop)
        if optimise_epochs < 0 or strength < 0:
            raise InvalidConfigError(f"optimise epochs and strength must be >= 0; got {optimise_epochs} and {strength}")
        self.strength, self.optimise_epochs, self.drop = strength, optimise_epochs, drop
        self.lr, self.batch_size, self.callbacks = lr, batch_size, list(callbacks)
        super().__init__(seed)

    def reset(self) -> None:
        self.pairs: list[Pair] = []
        self.dropped: list[int] = []  # the original index of the filter dropped from each pair
        self.gaps: list[list[float]] = []  # each pair's |l1 gap| before and after every optimisation epoch
        self._scores: dict[str, torch.Tensor] = {}

    def accumulate_history(
        self,
        model: nn.Module,
        groups: list[PrunableGroup],
        counts: Mapping[str, int],
        history: FilterNormHistory,
        data: Dataset,
    ) -> None:
        for group in groups:
            if len(history.original_index.get(group.root, ())) != group.size:
                raise InvalidConfigError(
                    f"the filter-norm history does not match the model: {group.root} has {group.size} filters; "
                    "give the history recorded while this model trained"
                )
        regulariser = PairRegulariser(
            find_pairs(history, {g.root: counts.get(g.root, 0) for g in groups}), history.original_index, self.strength
        )
        self.pairs = regulariser.pairs
        if self.pairs and self.optimise_epochs:
            with torch.enable_grad():
                Trainer(
                    model,
                    data,
                    lr=self.lr,
                    batch_size=self.batch_size,
                    seed=self.seed,
                    callbacks=[regulariser, *self.callbacks],
                ).fit(self.optimise_epochs)
            model.eval()
        else:
            regulariser.record(model)
        self.gaps = regulariser.gaps
        self.dropped = drop_one_of_each(self.pairs, model, history, self.drop)
        for group in groups:
            position = {original: i for i, original in enumerate(history.original_index[group.root])}
            scores = torch.ones(group.size)
            for pair, dropped in zip(self.pairs, self.dropped):
                if pair.layer == group.root:
                    scores[position[dropped]] = 0.0
            for layer in group.layers:
                self._scores[layer.name] = scores

    def __call__(self, layer: Layer) -> torch.Tensor:
        if layer.name not in self._scores:
            raise InvalidConfigError(
                f"hbfp has no pairs for {layer.name}: it needs the model's filter-norm history "
                "(prune_model(..., history=...))"
            )
        return self._scores[layer.name]


@_register
class Attribution(_DataCriterion):
    """Attribution of the correct class's score to each filter's output, with captum (class-conditional).

    Over up to `max_images` validation images, each conv layer's output is attributed to the score
    of the image's own label by the layer method `method` (see plasticity.attribution); per image,
    one value per filter (summed over positions), and the importance is the mean of its absolute value
    over the images: how far the filter moves the correct class's score, either way (as Taylor does).
    `classes` keeps only the images of those classes, so the ranking is for them.
    """

    name = "attribution"
    method = "gradient-x-activation"
    split = "val"

    def __init__(self, seed: int = 0, classes: Iterable[int] | None = None):
        self.classes = tuple(sorted({int(c) for c in classes})) if classes else None
        super().__init__(seed)

    def accumulate(self, model: nn.Module, layers: list[Layer], data: Dataset, split: Split) -> None:
        split = self._of_classes(split, data.num_classes)
        was_training = model.training
        model.eval()
        try:
            for images, labels in self._image_batches(data, split):
                black = data.normalize(torch.zeros_like(images))  # the reference input of path methods
                for layer in layers:
                    per_image = channel_attribution(model, layer.output, images, labels, self.method, black)
                    self._add(layer.name, per_image.abs())
        finally:
            model.train(was_training)

    def _of_classes(self, split: Split, num_classes: int) -> Split:
        if self.classes is None:
            return split
        unknown = [c for c in self.classes if not 0 <= c < num_classes]
        if unknown:
            raise InvalidConfigError(f"no class {unknown[0]} in this data set; classes are 0 to {num_classes - 1}")
        subset = split.subset(torch.isin(split.labels, torch.tensor(self.classes, device=split.labels.device)))
        if len(subset) == 0:
            raise InvalidConfigError(f"the split has no images of classes {list(self.classes)}")
        return subset


@_register
class ConductanceAttribution(Attribution):
    """Layer conductance (Dhamdhere et al. 2018): integrated gradients through the layer, from a black image."""

    name = "attribution:conductance"
    method = "conductance"


@_register
class AblationAttribution(Attribution):
    """Each filter's output set to zero in turn: the drop of the correct class's score (one forward per filter)."""

    name = "attribution:ablation"
    method = "ablation"
