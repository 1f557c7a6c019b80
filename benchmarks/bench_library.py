"""Speed of the library on the shipped default (LeNet-5, mnist-5k) and of real versus mask-only pruning.

    python benchmarks/bench_library.py [--device cpu|cuda] [--repeats 5] [--out benchmarks/results-cpu.json]

Every figure is the median of `--repeats` runs. Figures in README come from this script.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch

from plasticity.models import ModelSpec, create_model
from plasticity.pruning import latency_ms, prune_model
from plasticity.pruning.criteria import create_criterion
from plasticity.runs import TrainConfig, get_base
from plasticity.store import RunStore
from plasticity.train import FilterNormHistory, Trainer, accuracy, resolve_device, seed_everything


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def finetune_epoch(base, repeats: int) -> dict:
    pruned = prune_model(base.model, create_criterion("random"), 0.5, base.data).model
    unpruned = prune_model(base.model, create_criterion("random"), 0.0, base.data).model
    out = {}
    for label, model in (("pruned_50", pruned), ("unpruned", unpruned)):
        trainer = Trainer(model, base.data)
        trainer.fit(1)  # warm-up
        out[f"finetune_epoch_s_{label}"] = median_seconds(lambda t=trainer: t.fit(1), repeats)
    return out


def prune_and_evaluate(base, repeats: int) -> dict:
    out = {}
    for name in ("random", "l1", "apoz", "taylor"):

        def step(name=name):
            pruned = prune_model(base.model, create_criterion(name), 0.5, base.data)
            accuracy(pruned.model, base.data, base.data.test)

        step()
        out[f"prune_and_eval_s_{name}"] = median_seconds(step, repeats)
    return out


def history_overhead(data, device, repeats: int, epochs: int = 2) -> dict:
    def train(with_history: bool) -> None:
        seed_everything(0)
        model = create_model(ModelSpec("lenet5", 1, 10, 28)).to(device)
        callbacks = [FilterNormHistory(model)] if with_history else []
        Trainer(model, data, callbacks=callbacks).fit(epochs)

    plain, recorded = [], []
    train(False)
    for _ in range(repeats):  # interleaved, so drifting machine load hits both alike
        plain.append(median_seconds(lambda: train(False), 1))
        recorded.append(median_seconds(lambda: train(True), 1))
    plain_s, recorded_s = statistics.median(plain), statistics.median(recorded)
    return {
        "train_2_epochs_s": plain_s,
        "train_2_epochs_with_history_s": recorded_s,
        "history_overhead_pct": 100 * (recorded_s / plain_s - 1),
    }


def vgg_remove_vs_mask(data, device, repeats: int, batch: int = 128) -> dict:
    """A full-width VGG-16 on mnist-5k images: latency of real removal against masks, same filters."""
    seed_everything(0)
    model = create_model(ModelSpec("vgg16", 1, 10, 28)).to(device).to(memory_format=torch.channels_last).eval()
    inputs = data.normalize(data.train.images[:batch])
    out = {"vgg16_latency_ms_dense": latency_ms(model, inputs, repeats)}
    for ratio in (0.25, 0.5, 0.75):
        removed = prune_model(model, create_criterion("l1"), ratio, data).model
        masked = prune_model(model, create_criterion("l1"), ratio, data, mode="mask").model
        t_removed = latency_ms(removed.to(memory_format=torch.channels_last), inputs, repeats)
        t_masked = latency_ms(masked.to(memory_format=torch.channels_last), inputs, repeats)
        out[f"vgg16_r{ratio}_latency_ms_removed"] = t_removed
        out[f"vgg16_r{ratio}_latency_ms_masked"] = t_masked
        out[f"vgg16_r{ratio}_speedup_removed_over_masked"] = t_masked / t_removed
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vgg-batch", type=int, default=128, help="batch size of the VGG-16 latency runs")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as home:
        base = get_base(TrainConfig(), RunStore(home), device)
        results = {
            "device": str(device),
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "repeats": args.repeats,
        }
        for part in (
            lambda: finetune_epoch(base, args.repeats),
            lambda: prune_and_evaluate(base, args.repeats),
            lambda: history_overhead(base.data, device, args.repeats),
            lambda: vgg_remove_vs_mask(base.data, device, args.repeats, args.vgg_batch),
        ):
            results.update(part())
            print(json.dumps(results, indent=1), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
