"""Is Torch-Pruning's random global pruning fair? (Torch-Pruning issue #498 reports it biased since v1.4.3.)

Prunes ResNet-20 (built for the 8x8 digits; random importance needs no training) to a global ratio many
times with `MetaPruner(global_pruning=True, importance=RandomImportance())`, and as many times with
`plasticity.pruning.budget.random_global_counts` (every filter equally likely). Fair pruning removes
about the same share of every group; the script prints the share per group for both, the coupled
groups (several convs joined by residual adds) marked.

    python benchmarks/random_global_bias.py [draws] [ratio]
"""

from __future__ import annotations

import copy
import json
import statistics
import sys

import torch
import torch_pruning as tp

from plasticity.models import ModelSpec, classifier_layer, create_model
from plasticity.pruning.budget import Budget
from plasticity.runs.base import dataset_on


def torch_pruning_shares(model, data, ratio: float, draws: int) -> dict[str, list[float]]:
    shares: dict[str, list[float]] = {}
    widths = {name: m.out_channels for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    for seed in range(draws):
        torch.manual_seed(seed)
        pruned = copy.deepcopy(model)
        pruner = tp.pruner.MetaPruner(
            pruned,
            data.example_input(),
            importance=tp.importance.RandomImportance(),
            global_pruning=True,
            pruning_ratio=ratio,
            ignored_layers=[classifier_layer(pruned)],
        )
        with torch.enable_grad():
            pruner.step()
        for name, module in pruned.named_modules():
            if isinstance(module, torch.nn.Conv2d):
                shares.setdefault(name, []).append(1 - module.out_channels / widths[name])
    return shares


def fair_shares(budget: Budget, ratio: float, draws: int) -> dict[str, list[float]]:
    owners = [root for root, size in budget.sizes.items() for _ in range(size)]
    shares: dict[str, list[float]] = {}
    for seed in range(draws):
        order = torch.randperm(len(owners), generator=torch.Generator().manual_seed(seed)).tolist()
        taken = order[: int(ratio * len(order))]
        for root, size in budget.sizes.items():
            shares.setdefault(root, []).append(sum(owners[i] == root for i in taken) / size)
    return shares


def main(draws: int = 20, ratio: float = 0.5) -> None:
    data = dataset_on("digits", "cpu")
    model = create_model(ModelSpec("resnet20", data.channels, data.num_classes, data.image_size)).eval()
    budget = Budget(model, data)
    coupled = {group.root for group in budget.groups if len(group.layers) > 1}
    ours, theirs = fair_shares(budget, ratio, draws), torch_pruning_shares(model, data, ratio, draws)
    rows = [
        {
            "group": root,
            "coupled": root in coupled,
            "torch_pruning": round(statistics.fmean(theirs[root]), 3),
            "fair": round(statistics.fmean(ours[root]), 3),
        }
        for root in budget.sizes
    ]
    print(json.dumps({"torch_pruning": tp.__version__, "ratio": ratio, "draws": draws, "groups": rows}, indent=1))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(int(arguments[0]) if arguments else 20, float(arguments[1]) if len(arguments) > 1 else 0.5)
