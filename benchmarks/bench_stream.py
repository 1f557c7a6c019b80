"""One training epoch of a folder of PNGs held in memory against the same folder streamed from its files.

    python benchmarks/bench_stream.py [--per-class 500] [--repeats 3] [--model lenet5] [--out FILE]

Writes an ImageFolder tree of `--per-class` mnist-5k digits per class as PNGs (5,000 images by default)
into a temporary folder, loads it once held in memory and once streamed (`PLASTICITY_STREAM_ABOVE=0`),
and times one epoch of `Trainer` on each, alternating, `--repeats` times, so both see the same load. The
ratio is the median streamed epoch over the median in-memory epoch, measured in this one run; the
accuracies after each epoch are reported too (they are equal: the same batches in the same order).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from plasticity.data import Dataset, load_dataset, stream_workers
from plasticity.models import ModelSpec, create_model
from plasticity.train import Trainer, accuracy


def write_tree(root: Path, per_class: int) -> int:
    digits = load_dataset("mnist-5k")
    images = torch.cat([digits.train.images, digits.val.images, digits.test.images])
    labels = torch.cat([digits.train.labels, digits.val.labels, digits.test.labels])
    written = 0
    for c in range(10):
        folder = root / f"class-{c}"
        folder.mkdir(parents=True)
        for i, image in enumerate(images[labels == c][:per_class, 0]):
            Image.fromarray(image.numpy()).save(folder / f"{i:04d}.png")
            written += 1
    return written


def timed_epoch(data: Dataset, model_name: str) -> tuple[float, float]:
    torch.manual_seed(0)
    model = create_model(ModelSpec(model_name, data.channels, data.num_classes, data.image_size))
    start = time.perf_counter()
    Trainer(model, data, batch_size=64, seed=0).fit(1)
    return time.perf_counter() - start, accuracy(model, data, data.test)


def load(name: str, root: Path, stream: bool) -> tuple[Dataset, float]:
    os.environ["PLASTICITY_STREAM_ABOVE"] = "0" if stream else str(2**40)
    start = time.perf_counter()
    data = load_dataset(name, root=root)
    return data, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree, cache = Path(tmp) / "tree", Path(tmp) / "cache"
        count = write_tree(tree, args.per_class)
        name = f"folder:{tree}"
        held, held_load = load(name, cache, stream=False)  # decodes the PNGs and writes the cache
        streamed, streamed_load = load(name, cache, stream=True)  # reads every training PNG for its statistics
        times: dict[str, list[float]] = {"memory": [], "streamed": []}
        accuracies: dict[str, list[float]] = {"memory": [], "streamed": []}
        for _ in range(args.repeats):
            for kind, data in (("memory", held), ("streamed", streamed)):
                seconds, acc = timed_epoch(data, args.model)
                times[kind].append(round(seconds, 3))
                accuracies[kind].append(round(acc, 4))
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    report = {
        "images": count,
        "train_images": len(held.train),
        "model": args.model,
        "workers": stream_workers(),
        "threads": torch.get_num_threads(),
        "load_s": {"memory_first": round(held_load, 3), "streamed": round(streamed_load, 3)},
        "epoch_s": times,
        "median_epoch_s": medians,
        "streamed_over_memory": round(medians["streamed"] / medians["memory"], 3),
        "test_accuracy": accuracies,
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
