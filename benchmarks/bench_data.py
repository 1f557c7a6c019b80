"""Training throughput on the full Fashion-MNIST: plasticity's Trainer, held and streamed, against a bare loop.

    python benchmarks/bench_data.py [--models lenet5,resnet20] [--steps 0] [--repeats 3] [--no-stream] [--out FILE]

For each model, one epoch over the 54,000 training images (or `--steps` batches of 64) is timed three ways:
- `plasticity`: plasticity's `Trainer` with the data set held as uint8 on the device, normalised per
  batch, callbacks called;
- `streamed`: the same `Trainer` on the same images written once as PNG files (an ImageFolder tree in a
  temporary folder) and decoded by a DataLoader's workers each epoch, as a folder too large for memory
  is (`plasticity.data.ImageFiles`), in the same batch order;
- `bare`: a loop written here over the held tensors (the same model, SGD, batch order and per-batch
  normalisation, no callbacks).
The three alternate, `--repeats` times each, so all see the same load; each ratio is a median over the
bare loop's median, measured in this one run. The goal is a ratio of at most 1.1. Fashion-MNIST is read
from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist) or `$PLASTICITY_DATA`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from plasticity.data import Dataset, ImageFiles, Split, batches, load_dataset, stream_workers
from plasticity.models import ModelSpec, create_model
from plasticity.train import Trainer, resolve_device, seed_everything


def head(split: Split, steps: int, batch_size: int) -> Split:
    return split if steps <= 0 else Split(split.images[: steps * batch_size], split.labels[: steps * batch_size])


def as_files(split: Split, folder: Path) -> Split:
    """The split's images written as PNGs in class folders, streamed from there in the split's order."""
    from PIL import Image

    files = []
    for i, (image, label) in enumerate(zip(split.images.cpu().numpy(), split.labels.tolist())):
        path = folder / str(label) / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0]).save(path)
        files.append(str(path))
    streamed = ImageFiles(np.asarray(files, dtype=object), split.images.shape[1], split.images.shape[2])
    return Split(streamed.to(split.images.device), split.labels)


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


def compare(name: str, data: Dataset, streamed: Dataset | None, repeats: int, batch_size: int) -> dict:
    seed_everything(0)
    model = create_model(ModelSpec(name, data.channels, data.num_classes, data.image_size)).to(data.device)
    variants = {"plasticity": (plasticity_epoch, data), "bare": (bare_epoch, data)}
    if streamed is not None:
        variants["streamed"] = (plasticity_epoch, streamed)
    for epoch, held in variants.values():  # oneDNN's first calls pick their kernels; the workers start once
        epoch(copy.deepcopy(model), with_train(held, head(held.train, 2, batch_size)), batch_size)
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    for _ in range(repeats):
        for variant, (epoch, held) in variants.items():
            times[variant].append(timed(epoch, copy.deepcopy(model), held, batch_size))
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": name,
        "images": len(data.train),
        "seconds": times,
        "median_s": medians,
        "ratio": medians["plasticity"] / medians["bare"],
        **({"ratio_streamed": medians["streamed"] / medians["bare"]} if streamed is not None else {}),
    }


def with_train(data: Dataset, train: Split) -> Dataset:
    return Dataset(data.name, train, data.val, data.test, **_rest(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,resnet20")
    parser.add_argument("--steps", type=int, default=0, help="batches per epoch (0: the whole 54,000 images)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-stream", action="store_true", help="leave out the streamed variant")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = load_dataset("fashion-mnist", device)
    data = with_train(data, head(data.train, args.steps, args.batch_size))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-data-") as folder:
        streamed = None if args.no_stream else with_train(data, as_files(data.train, Path(folder)))
        for name in args.models.split(","):
            row = compare(name, data, streamed, args.repeats, args.batch_size)
            print(json.dumps(row), flush=True)
            rows.append(row)
    report = {
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "stream_workers": stream_workers(),
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
