"""One training step of a pruned network against its unpruned base, on this machine's CPU (or GPU).

    python benchmarks/bench_pruned_step.py [--model resnet20] [--widths 0.5,1] [--ratios 0.25,0.5] [--steps 9]

Fewer filters mean fewer MACs, but not always a faster step: a pruned network's odd channel counts can
leave the convolution library's fast paths. For each width, the untrained network and its random prunings
at each ratio each take `--steps` SGD steps (batch 64 of Fashion-MNIST, or mnist-5k when that is missing),
in channels-last and in NCHW memory format, inside `guarded_backward` as the Trainer takes them (without
it, a shortcut left with fewer than 8 channels hangs or computes wrong gradients: plasticity/onednn.py);
the median step time of each is printed as JSON, with the ratio to the base's in the same format.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch

from plasticity.data import load_dataset
from plasticity.errors import DatasetUnavailableError
from plasticity.models import ModelSpec, create_model
from plasticity.onednn import guarded_backward
from plasticity.pruning.criteria import create_criterion
from plasticity.pruning.prune import prune_model
from plasticity.train import seed_everything

FORMATS = {"channels-last": torch.channels_last, "nchw": torch.contiguous_format}


def step_seconds(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, fmt, steps: int) -> float:
    model = copy.deepcopy(model).train()
    for tensor in model.parameters():  # clone, not to(): a one-channel or 1x1 tensor fits either format's strides
        if tensor.dim() == 4:
            tensor.data = tensor.data.clone(memory_format=fmt)
    images = images.clone(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    with guarded_backward(model):
        for _ in range(steps + 2):  # the first two pick their kernels
            start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--widths", default="0.5,1")
    parser.add_argument("--ratios", default="0.25,0.5")
    parser.add_argument("--steps", type=int, default=9)
    args = parser.parse_args()
    try:
        data = load_dataset("fashion-mnist")
    except DatasetUnavailableError:
        data = load_dataset("mnist-5k")
    images, labels = data.normalize(data.train.images[:64]), data.train.labels[:64]
    for width in (float(w) for w in args.widths.split(",")):
        seed_everything(0)
        base = create_model(ModelSpec(args.model, data.channels, data.num_classes, data.image_size, width=width))
        networks = {"base": base}
        for ratio in (float(r) for r in args.ratios.split(",")):
            networks[f"random {ratio:g}"] = prune_model(base, create_criterion("random"), ratio, data).model
        for fmt_name, fmt in FORMATS.items():
            base_s = None
            for name, network in networks.items():
                seconds = step_seconds(network, images, labels, fmt, args.steps)
                base_s = base_s or seconds
                row = {"data": data.name, "model": args.model, "width": width, "network": name, "format": fmt_name}
                row |= {"step_s": round(seconds, 4), "to_base": round(seconds / base_s, 3)}
                row["torch_threads"] = torch.get_num_threads()
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
