"""Training throughput on the full Fashion-MNIST: plasticity's Trainer against a bare PyTorch loop.

    python benchmarks/bench_data.py [--models lenet5,resnet20] [--steps 0] [--repeats 3] [--out FILE]

For each model, one epoch over the 54,000 training images (or `--steps` batches of 64) is timed with
plasticity's `Trainer` (the data set held as uint8 on the device, normalised per batch, callbacks
called) and with a loop written here over the same tensors (the same model, SGD, batch order and
per-batch normalisation, no callbacks). The two alternate, `--repeats` times each, so both see the same
load; the ratio is the median Trainer time over the median bare time, measured in this one run. The
goal is a ratio of at most 1.1. Fashion-MNIST is read from Debian's `dataset-fashion-mnist`
(/usr/share/datasets/fashion-mnist) or `$PLASTICITY_DATA`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time

import torch
from torch import nn

from plasticity.data import Dataset, Split, batches, load_dataset
from plasticity.models import ModelSpec, create_model
from plasticity.train import Trainer, resolve_device, seed_everything


def head(split: Split, steps: int, batch_size: int) -> Split:
    return split if steps <= 0 else Split(split.images[: steps * batch_size], split.labels[: steps * batch_size])


def plasticity_epoch(model: nn.Module, data: Dataset, batch_size: int) -> None:
    Trainer(model, data, batch_size=batch_size, seed=0).fit(1)


def bare_epoch(model: nn.Module, data: Dataset, batch_size: int) -> None:
    """The loop a PyTorch user writes over the same uint8 tensors: the same work, nothing else."""
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    mean = torch.tensor(data.mean, device=data.device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=data.device).view(1, -1, 1, 1)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for images, labels in batches(data.train, batch_size, torch.Generator().manual_seed(0)):
        x = ((images.float() / 255.0 - mean) / std).contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # the Trainer reads every step's loss (for its callbacks and the divergence check)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare(name: str, data: Dataset, repeats: int, batch_size: int) -> dict:
    seed_everything(0)
    model = create_model(ModelSpec(name, data.channels, data.num_classes, data.image_size)).to(data.device)
    warm_up = Dataset(data.name, head(data.train, 2, batch_size), data.val, data.test, **_rest(data))
    plasticity_epoch(copy.deepcopy(model), warm_up, batch_size)  # oneDNN's first calls pick their kernels
    bare_epoch(copy.deepcopy(model), warm_up, batch_size)
    times: dict[str, list[float]] = {"plasticity": [], "bare": []}
    for _ in range(repeats):
        times["plasticity"].append(timed(plasticity_epoch, copy.deepcopy(model), data, batch_size))
        times["bare"].append(timed(bare_epoch, copy.deepcopy(model), data, batch_size))
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": name,
        "images": len(data.train),
        "seconds": times,
        "median_s": medians,
        "ratio": medians["plasticity"] / medians["bare"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,resnet20")
    parser.add_argument("--steps", type=int, default=0, help="batches per epoch (0: the whole 54,000 images)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = load_dataset("fashion-mnist", device)
    data = Dataset(data.name, head(data.train, args.steps, args.batch_size), data.val, data.test, **_rest(data))
    rows = []
    for name in args.models.split(","):
        row = compare(name, data, args.repeats, args.batch_size)
        print(json.dumps(row), flush=True)
        rows.append(row)
    report = {
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


def _rest(data: Dataset) -> dict:
    return {"num_classes": data.num_classes, "mean": data.mean, "std": data.std}


if __name__ == "__main__":
    main()
