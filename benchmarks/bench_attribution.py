"""What the attribution criteria and the attribution page cost, on the shipped default (LeNet-5, mnist-5k).

    python benchmarks/bench_attribution.py [--device cpu|cuda] [--repeats 3] [--threads N]
        [--out benchmarks/results/attribution-cpu-2core.json]

Every figure is the median of `--repeats` runs, after one warm-up run (captum is imported then).
- `prune_s_<criterion>`: `prune_model` at 50% (the criterion's pass over its images, then the
  surgery), beside the cheap criteria for scale;
- `filter_maps_s_<layer>_<method>`, `where_they_look_s_<method>`: the page's computations for one image;
- `cpu_seconds`: the same figures in CPU time of this process (with `--threads 1`, the work itself: far
  less inflated than wall-clock time when other programs share the cores);
- `conductance_steps_spearman`: how well the conductance ranking with the steps used agrees with
  50 steps, per layer (the reason for the step count in plasticity/attribution.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import torch

from plasticity import attribution
from plasticity.inspection import layer_maps, rank_filters, where_they_look
from plasticity.pruning.criteria import Layer, create_criterion
from plasticity.pruning.prune import prune_model
from plasticity.runs import TrainConfig, get_base
from plasticity.store import RunStore
from plasticity.train import resolve_device

CRITERIA = ("random", "l1", "taylor", "attribution", "attribution:conductance", "attribution:ablation")


CPU_SECONDS: dict[str, float] = {}  # the same measurements in this process's CPU time


def median_seconds(fn, repeats: int, name: str = "") -> float:
    """Median wall-clock seconds of `fn`; its median CPU seconds go to CPU_SECONDS[name] (with one torch
    thread, CPU time is the work itself, which other programs on the same cores inflate much less)."""
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    if name:
        CPU_SECONDS[name] = statistics.median(cpu)
    return statistics.median(times)


def measured(name: str, fn, repeats: int) -> dict:
    return {name: median_seconds(fn, repeats, name)}


def criterion_costs(base, repeats: int) -> dict:
    out = {}
    for name in CRITERIA:
        out |= measured(
            f"prune_s_{name}",
            lambda name=name: prune_model(base.model, create_criterion(name), 0.5, base.data),
            repeats,
        )
    return out


def page_costs(base, repeats: int) -> dict:
    out = {}
    for layer in ("conv1", "conv2"):
        for method in attribution.list_layer_methods(spatial_only=True):
            out |= measured(
                f"filter_maps_s_{layer}_{method}",
                lambda layer=layer, method=method: layer_maps(base.model, base.data, 76, layer, method),
                repeats,
            )
    models = {"base": base.model, "pruned": rank_filters(base, "l1", 0.5).model, "again": base.model}
    for method in attribution.list_input_methods():
        out |= measured(
            f"where_they_look_s_{method}", lambda method=method: where_they_look(models, base.data, 76, method), repeats
        )
    return out


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ranks = torch.stack([a.argsort().argsort().double(), b.argsort().argsort().double()])
    return float(torch.corrcoef(ranks)[0, 1])


def conductance_steps_agreement(base) -> dict:
    model = base.model
    layers = [Layer("conv1", model.conv1), Layer("conv2", model.conv2)]
    scores = {}
    for steps in (attribution.CONDUCTANCE_STEPS, 50):
        attribution.CONDUCTANCE_STEPS, used = steps, attribution.CONDUCTANCE_STEPS
        try:
            criterion = create_criterion("attribution:conductance")
            criterion.accumulate(model, layers, base.data, base.data.val)
            scores[steps] = {layer.name: criterion(layer) for layer in layers}
        finally:
            attribution.CONDUCTANCE_STEPS = used
    low, high = scores
    return {
        "conductance_steps": low,
        "conductance_steps_spearman": {name: spearman(scores[low][name], scores[high][name]) for name in scores[low]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    base = get_base(TrainConfig(), RunStore(tempfile.mkdtemp()), device)
    load_before = os.getloadavg()[0]
    results = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "validation_images": len(base.data.val),
        "repeats": args.repeats,
        **criterion_costs(base, args.repeats),
        **page_costs(base, args.repeats),
        **conductance_steps_agreement(base),
        "cpu_seconds": CPU_SECONDS,
        "load_average_before_after": [load_before, os.getloadavg()[0]],  # others' work on the same cores
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
