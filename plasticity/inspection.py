"""Looking inside a base: how a criterion ranks its filters, what each filter does with one image,
and where the base, the pruned and the fine-tuned networks look in it (the attribution page's library).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from plasticity.attribution import FilterMaps, filter_maps, input_attribution, map_similarity
from plasticity.checkpoint import load_checkpoint
from plasticity.data import Dataset
from plasticity.errors import InvalidConfigError
from plasticity.pruning.criteria import create_criterion
from plasticity.pruning.groups import dependency_graph, prunable_groups
from plasticity.pruning.prune import prune_model
from plasticity.runs.base import Base
from plasticity.runs.prune import PruneConfig
from plasticity.store import RunStore


@dataclass
class FilterRanking:
    """A criterion's verdict on every filter of a base at one ratio."""

    criterion: str
    ratio: float
    scores: dict[str, torch.Tensor]  # conv layer -> the criterion's score of each filter (higher keeps)
    pruned: dict[str, list[int]]  # conv layer -> the filters pruning at `ratio` removes
    model: nn.Module  # the pruned network, right after pruning (no fine-tuning)

    def order(self, layer: str) -> list[int]:
        """The layer's filters, most important first (ties keep the filter order)."""
        return torch.argsort(self.scores[layer], descending=True, stable=True).tolist()


def rank_filters(base: Base, criterion: str, ratio: float, seed: int = 0) -> FilterRanking:
    """Score every filter of `base` with `criterion`, and prune at `ratio` as `run_prune` does (same
    criterion, seed and choice of filters), in one pass of the criterion. The base is not changed."""
    scorer = create_criterion(criterion, seed)
    result = prune_model(base.model, scorer, ratio, base.data, history=base.history)
    # The scorer keeps what it accumulated: ask it about the unpruned layers of a copy of the base.
    model = copy.deepcopy(base.model).eval()
    groups = prunable_groups(model, dependency_graph(model, base.data.example_input()))
    scores = {layer.name: scorer(layer).float().cpu() for group in groups for layer in group.layers}
    pruned = {name: sorted(set(range(result.original[name])) - set(kept)) for name, kept in result.kept.items()}
    return FilterRanking(criterion, ratio, scores, pruned, result.model.eval())


def finetuned_model(config: PruneConfig, store: RunStore, device: torch.device | str = "cpu") -> nn.Module | None:
    """The fine-tuned network of a finished prune run in the store, or None when it is not done."""
    run = store.done(config.key)
    if not (run and run.checkpoint and run.checkpoint.exists()):
        return None
    return load_checkpoint(run.checkpoint).build_model(device).eval()


def gallery(data: Dataset, per_class: int = 2) -> list[int]:
    """Indices into the test split: the first `per_class` images of every class, class by class."""
    labels = data.test.labels.cpu()
    picked = []
    for cls in range(data.num_classes):
        picked += torch.nonzero(labels == cls).flatten()[:per_class].tolist()
    return picked


def pick_test_image(data: Dataset, index: int) -> tuple[torch.Tensor, int]:
    """The normalised test image `index` (1, C, H, W) and its label."""
    if not 0 <= index < len(data.test):
        raise InvalidConfigError(f"no test image {index}; the test split has images 0 to {len(data.test) - 1}")
    return data.normalize(data.test.images[index : index + 1]), int(data.test.labels[index])


def black_image(data: Dataset) -> torch.Tensor:
    """An all-black image, normalised: the reference input of integrated gradients and conductance."""
    return data.normalize(torch.zeros_like(data.test.images[:1]))


def layer_maps(model: nn.Module, data: Dataset, index: int, layer: str, method: str) -> FilterMaps:
    """Every filter's activation and attribution map in `layer` for test image `index`, for its label."""
    image, label = pick_test_image(data, index)
    return filter_maps(model, layer, image, label, black_image(data), method)


@dataclass(frozen=True)
class Looking:
    """Where one network looks in one image."""

    name: str
    attribution: torch.Tensor  # (H, W)
    predicted: int
    confidence: float  # softmax probability of the predicted class
    similarity: float  # cosine similarity of the attribution with the first network's (1 for itself)


def where_they_look(models: dict[str, nn.Module], data: Dataset, index: int, method: str) -> list[Looking]:
    """The input attribution of test image `index` for its label, for each named network, compared with
    the first one's (the base): do the pruned and the fine-tuned networks look at the same strokes?"""
    image, label = pick_test_image(data, index)
    targets = torch.tensor([label], device=image.device)
    looks = []
    for name, shared in models.items():
        model = copy.deepcopy(shared).eval()  # eval() on a model other threads use would change it for them
        attribution = input_attribution(model, image, targets, method, black_image(data))[0]
        with torch.no_grad():
            probabilities = torch.softmax(model(image), dim=1)[0]
        first = looks[0].attribution if looks else attribution
        looks.append(
            Looking(
                name,
                attribution,
                int(probabilities.argmax()),
                float(probabilities.max()),
                map_similarity(first, attribution),
            )
        )
    return looks
