"""Sweeps on Ray against sweeps in this process: the same results, wall time, Ray's start-up, growth with the
number of runs, and on paper a 1,000-run VGG-16 / CIFAR-10 sweep on N GPUs.

    python benchmarks/bench_ray.py --parts sweeps --repeats 3   # writes benchmarks/results/ray-sweeps-cpu-2core.json

1. Identity: the 12-run comparison (random and l1 x ratios 0.25, 0.5, 0.75 x seeds 0 and 1; LeNet-5 on
   mnist-5k, 3 fine-tuning epochs, seed s on the base trained with s) in this process at one torch thread,
   and on local Ray with one-CPU tasks (one torch thread each): every field but the timings must be equal.
   CPU training is bit-for-bit repeatable at a fixed thread count, so the comparison is exact.
2. Wall time of that comparison in this process at torch's default threads (every core), against local Ray
   with 2 one-CPU workers; Ray's fixed start-up (`ray.init`, then the first task in a fresh worker, which
   imports torch and the library and loads the data set).
3. Growth: the same sweep on Ray with 48 runs (random, l1, l2, apoz x 3 ratios x 4 seeds) against 12.
4. On paper: a measured VGG-16 training step on CIFAR-10-sized images on this CPU, and the H100 figures in
   results/h100-batch*.json, make the cost of a 1,000-run VGG-16 / CIFAR-10 sweep on N GPUs.

Each sweep starts from an empty run store (bases included: seed 0's is the shipped one, the others are
trained). Each figure is the median of `--repeats` measurements, every one of which is kept in the JSON
with the 1-minute load average at its end (the machine may be shared: a figure taken under load says so);
a ratio is made of figures measured in one run of the script.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from plasticity.executors import RayExecutor
from plasticity.models import ModelSpec, create_model
from plasticity.runs import TrainConfig
from plasticity.store import RunStore
from plasticity.studies import Comparison

TIMINGS = ("seconds", "train_seconds")  # and every latency field: measured, so never the same twice
TWELVE = Comparison(TrainConfig(), ("random", "l1"), (0.25, 0.5, 0.75), (0, 1), finetune_epochs=3)
FORTY_EIGHT = Comparison(
    TrainConfig(), ("random", "l1", "l2", "apoz"), (0.25, 0.5, 0.75), (0, 1, 2, 3), finetune_epochs=3
)
CIFAR10_TRAIN = 45_000  # CIFAR-10's 50,000 training images less the 10% validation split (data._build)
RESULTS = Path(__file__).parent / "results"


def timed_sweep(study: Comparison, executor=None) -> tuple[float, list[dict]]:
    with tempfile.TemporaryDirectory() as home:
        began = time.perf_counter()
        rows = study.run(RunStore(home), executor=executor)
        return time.perf_counter() - began, rows


def load_1min() -> float:
    return round(os.getloadavg()[0], 2)


def measured(out: dict, name: str, repeats: int, measure: Callable[[], float]) -> float:
    """The median of `repeats` calls of `measure` (seconds) as `out[name]`, with every measurement and the
    load average at its end in `out["each"][name]`."""
    each = []
    for _ in range(repeats):
        seconds = measure()
        each.append({"s": seconds, "load_1min": load_1min()})
    out[name] = statistics.median(item["s"] for item in each)
    out.setdefault("each", {})[name] = each
    return out[name]


def sweep_seconds(study: Comparison, executor=None) -> Callable[[], float]:
    return lambda: timed_sweep(study, executor)[0]


def without_timings(rows: list[dict]) -> list[dict]:
    return [
        {name: value for name, value in row.items() if name not in TIMINGS and not name.startswith("latency")}
        for row in rows
    ]


def warm_worker() -> int:
    """What the first task of a fresh worker pays once: torch, the library and the data set."""
    from plasticity.executors import run_task  # noqa: F401
    from plasticity.runs import dataset_on

    dataset_on("mnist-5k", "cpu")
    return os.getpid()


def start_ray(ray) -> tuple[float, float]:
    """Local Ray with 2 CPUs, and its 2 workers warmed: the seconds of `ray.init` and of the first tasks."""
    began = time.perf_counter()
    ray.init(address="local", num_cpus=2, log_to_driver=False, logging_level=logging.WARNING)
    initialised = time.perf_counter()
    warm = ray.remote(warm_worker).options(num_cpus=1)
    if len(set(ray.get([warm.remote() for _ in range(2)]))) != 2:
        raise RuntimeError("the two first tasks ran in one worker: the start-up of the second was not measured")
    return initialised - began, time.perf_counter() - initialised


def ray_start_up(ray, out: dict, repeats: int) -> None:
    """Ray's fixed cost, `repeats` times from nothing: `ray.init`, then one task in each of 2 fresh workers."""
    parts = []

    def start_and_stop() -> float:
        parts.append(start_ray(ray))
        ray.shutdown()
        return sum(parts[-1])

    measured(out, "ray_start_up_s", repeats, start_and_stop)
    out["ray_init_s"] = statistics.median(init for init, _ in parts)
    out["ray_first_tasks_s"] = statistics.median(first for _, first in parts)


def vgg16_step_s(repeats: int, batch: int = 64) -> float:
    """One training step (forward, backward, SGD) of a full-width VGG-16 on a CIFAR-10-sized batch, as the
    library's `Trainer` takes it (channels-last); the median after one warm-up step."""
    model = create_model(ModelSpec("vgg16", 3, 10, 32)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)  # the cost, not the values
    labels = torch.randint(0, 10, (batch,))
    times = []
    for _ in range(repeats + 1):
        began = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:])


def driver_write_s(repeats: int = 3) -> float:
    """What the driver spends, one run after another, storing a full-width VGG-16 run that a worker returned:
    its checkpoint file (about 60 MB) and its row, as `Record.write` does; the median."""
    from plasticity.checkpoint import Checkpoint, save_checkpoint
    from plasticity.executors import Record

    spec = ModelSpec("vgg16", 3, 10, 32)
    times = []
    with tempfile.TemporaryDirectory() as home:
        save_checkpoint(Checkpoint(spec, {}, create_model(spec).state_dict()), Path(home) / "vgg16.pt")
        data = (Path(home) / "vgg16.pt").read_bytes()
        store = RunStore(Path(home) / "store")
        for index in range(repeats):
            record = Record(f"prune-{index:016x}", "prune", {}, {"acc": 0.0}, None, data)
            began = time.perf_counter()
            record.write(store)
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def paper_estimate(cpu_step_s: float, driver_s: float) -> dict:
    """A 1,000-run sweep (say 10 criteria x 10 ratios x 10 seeds): 10 bases of 30 epochs, then 1,000 runs of 3
    fine-tuning epochs at batch 64 (a pruned run's epoch is taken to cost the base's, an upper bound; pruning,
    evaluation and latency are left out, a few seconds a run against minutes of epochs).

    The GPU epoch is an estimate from H100 figures of bench_library.py (VGG-16 forward passes of 28x28
    images): at a batch of 128 a pass is launch-bound, so a batch-64 step is taken as 3 such passes
    (backward is about twice a forward); at a batch of 2,048 it gives the throughput bound, scaled to 32x32
    images by their pixels. The larger of the two is kept. The driver stores the runs one after another
    (`driver_s` each), which bounds the sweep from below however many GPUs there are."""
    steps = math.ceil(CIFAR10_TRAIN / 64)
    h100_128 = json.loads((RESULTS / "h100-batch128.json").read_text())["vgg16_latency_ms_dense"] / 1000
    h100_2048 = json.loads((RESULTS / "h100-batch2048.json").read_text())["vgg16_latency_ms_dense"] / 1000
    launch_bound = steps * 3 * h100_128
    throughput_bound = 3 * h100_2048 * (CIFAR10_TRAIN / 2048) * (32 * 32) / (28 * 28)
    gpu_epoch = max(launch_bound, throughput_bound)
    runs, run_epochs, bases, base_epochs = 1000, 3, 10, 30
    out = {
        "epoch_s_cpu_2core": steps * cpu_step_s,
        "epoch_s_h100_estimate": gpu_epoch,
        "epoch_s_h100_launch_bound": launch_bound,
        "epoch_s_h100_throughput_bound": throughput_bound,
        "sweep_hours_cpu_2core": (bases * base_epochs + runs * run_epochs) * steps * cpu_step_s / 3600,
        "driver_hours_storing_1000_runs": runs * driver_s / 3600,
    }
    for gpus in (1, 8, 32, 128):
        # the bases first (in parallel as far as there are GPUs), then the runs spread over every GPU
        compute = math.ceil(bases / gpus) * base_epochs * gpu_epoch + math.ceil(runs / gpus) * run_epochs * gpu_epoch
        out[f"sweep_hours_h100_estimate_{gpus}_gpus"] = max(compute, runs * driver_s) / 3600
    return out


def sweeps(repeats: int) -> dict:
    """Parts 1 to 3: identity, wall time and start-up, growth."""
    import ray

    out = {"ray": ray.__version__, "inprocess_threads": torch.get_num_threads()}
    torch.set_num_threads(1)
    began = time.perf_counter()
    _, reference = timed_sweep(TWELVE)
    out["inprocess_12_one_thread_s"] = time.perf_counter() - began
    torch.set_num_threads(out["inprocess_threads"])
    every_core = measured(out, "inprocess_12_s", repeats, sweep_seconds(TWELVE))

    ray_start_up(ray, out, repeats)
    start_ray(ray)  # the sweeps below run on a started Ray with warm workers, as a sweep after the first does
    executor = RayExecutor(cpus_per_run=1)
    _, rows = timed_sweep(TWELVE, executor)
    out["identical_12"] = without_timings(rows) == without_timings(reference)
    on_ray = measured(out, "ray_12_s", repeats, sweep_seconds(TWELVE, executor))
    out.update(
        ray_12_with_start_up_s=on_ray + out["ray_start_up_s"],
        ratio_inprocess_over_ray=every_core / on_ray,
        ratio_inprocess_over_ray_with_start_up=every_core / (on_ray + out["ray_start_up_s"]),
    )
    measured(out, "ray_48_s", repeats, sweep_seconds(FORTY_EIGHT, executor))
    out["growth_48_over_12"] = out["ray_48_s"] / on_ray
    ray.shutdown()
    return out


def paper(repeats: int) -> dict:
    """Part 4: the measured VGG-16 step and driver write, and the estimate made of them."""
    out = {"vgg16_cifar10_step_s_cpu": vgg16_step_s(repeats), "driver_write_s_vgg16_run": driver_write_s(repeats)}
    out.update(paper_estimate(out["vgg16_cifar10_step_s_cpu"], out["driver_write_s_vgg16_run"]))
    return out


PARTS = {"sweeps": sweeps, "paper": paper}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each sweep (the median is kept)")
    parser.add_argument("--step-repeats", type=int, default=5, help="measurements of the VGG-16 step and write")
    parser.add_argument("--parts", default="sweeps,paper", help="which parts: sweeps (1-3), paper (4)")
    parser.add_argument("--out", type=Path, help="the JSON file (default: results/ray-PARTS-cpu-Ncore.json)")
    args = parser.parse_args()
    parts = args.parts.split(",")
    out_file = args.out or RESULTS / f"ray-{'-'.join(parts)}-cpu-{os.cpu_count()}core.json"
    out = {
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_at_start": os.getloadavg(),
    }
    for part in parts:
        out.update(PARTS[part](args.step_repeats if part == "paper" else args.repeats))
    out["load_average_at_end"] = os.getloadavg()
    text = json.dumps(out, indent=1)
    print(text)
    out_file.write_text(text + "\n")


if __name__ == "__main__":
    main()
