"""History-based filter pairs (HBFP, Basha et al. 2024): filters whose norms moved alike while training.

The distance between two filters of a layer is the sum over the recorded epochs of the difference
of their l1-norms. The closest disjoint pairs are redundant: a differentiable regulariser pulls each
pair's l1-norms together, after which one filter of each pair can go. Filters are named by their
original indices (the columns of the `FilterNormHistory`) throughout, so pairs stay meaningful
after earlier prunings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from plasticity.errors import InvalidConfigError
from plasticity.registry import Registry
from plasticity.train import Callback, FilterNormHistory, Trainer, conv_layers

# lambda: on LeNet-5 (lr 0.01) two epochs close about 90% of the pairs' l1 gaps in both layers; ten
# times more overshoots in conv2, whose 500-weight filters move ten times more per step than conv1's.
DEFAULT_STRENGTH = 3e-4
DEFAULT_OPTIMISE_EPOCHS = 2


@dataclass(frozen=True)
class Pair:
    """Two filters of one layer, by original index (a < b), and their history distance."""

    layer: str
    a: int
    b: int
    distance: float

    def to_dict(self) -> dict:
        return asdict(self)


def pair_distances(matrix: torch.Tensor) -> torch.Tensor:
    """(epochs, filters) norms -> (filters, filters) sums over epochs of |norm_i - norm_j|.

    A filter is infinitely far from itself and, if its column holds a NaN (it was pruned), from all.
    """
    norms = matrix.double()
    pruned = torch.isnan(norms).any(0)
    columns = torch.nan_to_num(norms).T.contiguous().unsqueeze(0)
    distances = torch.cdist(columns, columns, p=1).squeeze(0)
    distances[pruned, :] = math.inf
    distances[:, pruned] = math.inf
    distances.fill_diagonal_(math.inf)
    return distances


def select_pairs(distances: torch.Tensor, k: int) -> list[tuple[int, int, float]]:
    """The k closest disjoint pairs, greedily: the closest pair, then the closest of the filters left, ...

    Returns (i, j, distance) with i < j, closest first.
    """
    n = distances.shape[0]
    first, second = torch.triu_indices(n, n, offset=1)
    values = distances[first, second]
    finite = torch.isfinite(values)
    first, second, values = first[finite], second[finite], values[finite]
    if k > int((~torch.isinf(distances).all(1)).sum()) // 2:
        raise InvalidConfigError(f"cannot make {k} disjoint pairs of {n} filters; at most half of them pair up")
    taken: set[int] = set()
    pairs: list[tuple[int, int, float]] = []
    for index in torch.argsort(values, stable=True).tolist():
        if len(pairs) == k:
            break
        i, j = int(first[index]), int(second[index])
        if i not in taken and j not in taken:
            pairs.append((i, j, float(values[index])))
            taken.update((i, j))
    return pairs


def find_pairs(history: FilterNormHistory, counts: Mapping[str, int], norm: str = "l1") -> list[Pair]:
    """`counts[layer]` closest disjoint pairs of the surviving filters of each layer, from `history`."""
    pairs = []
    for layer, k in counts.items():
        if k <= 0:
            continue
        survivors = history.original_index[layer]
        matrix = history.matrix(layer, norm)
        if matrix.shape[0] < 2:
            raise InvalidConfigError(
                f"the filter-norm history of {layer} has {matrix.shape[0]} recorded epochs; pairing filters by "
                "history needs a base trained with its history (plasticity train records it)"
            )
        if k > len(survivors) // 2:
            raise InvalidConfigError(
                f"hbfp drops one filter of each pair, so one round removes at most half of the {len(survivors)} "
                f"filters of {layer}, not {k}; use a smaller ratio, or several rounds (plasticity hbfp)"
            )
        chosen = select_pairs(pair_distances(matrix[:, survivors]), k)
        pairs += [Pair(layer, survivors[i], survivors[j], distance) for i, j, distance in chosen]
    return pairs


def filter_l1(model: nn.Module, layer: str) -> torch.Tensor:
    """The l1-norm of every filter of a conv layer, differentiable."""
    return conv_layers(model)[layer].weight.flatten(1).abs().sum(1)


class PairRegulariser(Callback):
    """lambda x sum over pairs of |l1(w_a) - l1(w_b)|, added to the training loss.

    Its gradient moves the two filters' l1-norms towards each other. `gaps` records every pair's
    |l1(w_a) - l1(w_b)| when training starts and at every epoch's end: how the pairs close up.
    """

    def __init__(self, pairs: list[Pair], original_index: Mapping[str, list[int]], strength: float):
        if strength < 0:
            raise InvalidConfigError(f"the pair regulariser's strength (lambda) must be >= 0; got {strength}")
        layers = list(dict.fromkeys(p.layer for p in pairs))
        self.pairs = [p for layer in layers for p in pairs if p.layer == layer]  # grouped by layer, as gaps are
        self.strength = strength
        self._positions: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for layer in layers:
            position = {original: i for i, original in enumerate(original_index[layer])}
            ours = [p for p in self.pairs if p.layer == layer]
            self._positions[layer] = (
                torch.tensor([position[p.a] for p in ours]),
                torch.tensor([position[p.b] for p in ours]),
            )
        self.gaps: list[list[float]] = []  # one row per recorded point, one column per pair (in `pairs` order)

    def pair_gaps(self, model: nn.Module) -> torch.Tensor:
        """|l1(w_a) - l1(w_b)| of every pair, in `pairs` order, differentiable."""
        gaps = []
        for layer, (a, b) in self._positions.items():
            l1 = filter_l1(model, layer)
            gaps.append((l1[a.to(l1.device)] - l1[b.to(l1.device)]).abs())
        return torch.cat(gaps) if gaps else torch.zeros(0)

    def penalty(self, model: nn.Module) -> torch.Tensor:
        return self.strength * self.pair_gaps(model).sum()

    def loss_penalty(self, trainer: Trainer) -> torch.Tensor | None:
        return self.penalty(trainer.model) if self.pairs and self.strength > 0 else None

    @torch.no_grad()
    def record(self, model: nn.Module) -> None:
        self.gaps.append(self.pair_gaps(model).cpu().tolist())

    def on_train_start(self, trainer: Trainer) -> None:
        if not self.gaps:
            self.record(trainer.model)

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        self.record(trainer.model)


def _lower_importance(pair: Pair, model: nn.Module, history: FilterNormHistory) -> int:
    """The filter with the smaller l1-norm now (the l1 criterion's importance)."""
    position = {original: i for i, original in enumerate(history.original_index[pair.layer])}
    with torch.no_grad():
        l1 = filter_l1(model, pair.layer).cpu()
    return pair.a if float(l1[position[pair.a]]) < float(l1[position[pair.b]]) else pair.b


def _larger_cumulative(pair: Pair, model: nn.Module, history: FilterNormHistory) -> int:
    """The filter whose l1-norms summed over the history are larger (the authors' code)."""
    cumulative = torch.nan_to_num(history.matrix(pair.layer, "l1")).sum(0)
    return pair.a if float(cumulative[pair.a]) > float(cumulative[pair.b]) else pair.b


# A drop rule names the filter of a pair that goes (its original index); ties drop the later filter.
DROP_RULES: Registry[Callable[[Pair, nn.Module, FilterNormHistory], int]] = Registry("drop rule")
DROP_RULES.register("lower-importance")(_lower_importance)
DROP_RULES.register("larger-cumulative")(_larger_cumulative)


def drop_one_of_each(
    pairs: list[Pair], model: nn.Module, history: FilterNormHistory, rule: str = "lower-importance"
) -> list[int]:
    """The original index of the filter to prune from each pair, by the drop rule `rule`."""
    drop = DROP_RULES.get(rule)
    return [drop(pair, model, history) for pair in pairs]
