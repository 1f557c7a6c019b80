"""How much of a detector's time its pruned backbone takes, before and after pruning.

    PLASTICITY_HOME=H python benchmarks/bench_detector_backbone.py [--repeats 15] [--seeds 0] > out.jsonl

Pruning cuts only the backbone's filters, so the frames per second of a whole detector can rise at most
by the share of its time that the backbone takes. For every finished detection run in the store (of the
pruning seeds given), the base and the pruned network are timed on the same 16 test tiles as
`bench_scenes_fps.py` uses: the whole pass (resizing, backbone, region proposals, box heads and
post-processing) and the backbone alone on the resized batch, the median of `--repeats` passes after one
warm-up. One JSON line per run, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from bench_scenes_fps import stored_runs

from plasticity.store import RunStore
from plasticity.tasks.runs import FPS_BATCH
from plasticity.tasks.scenes import DETECTION
from plasticity.tasks.training import detector_inputs


def milliseconds(run: Callable[[], object], repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def timings(model: torch.nn.Module, images: list[torch.Tensor], repeats: int) -> dict[str, float]:
    """The whole detector's time on `images` and its backbone's on the same batch, resized as it does."""
    model.eval()
    with torch.no_grad():
        batch = model.transform(images)[0].tensors
        return {
            "whole_ms": milliseconds(lambda: model(images), repeats),
            "backbone_ms": milliseconds(lambda: model.backbone(batch), repeats),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed passes of each part (default: 15)")
    parser.add_argument("--home", default=None, help="the run store (default: $PLASTICITY_HOME)")
    parser.add_argument("--seeds", default="0", help="only the runs of these pruning seeds (default: 0)")
    args = parser.parse_args()
    seeds = {int(seed) for seed in args.seeds.split(",") if seed}
    store = RunStore(args.home)
    for config, base, pruned in stored_runs(store, seeds, DETECTION):
        images = detector_inputs(base.scenes.test.images[:FPS_BATCH])
        before, after = timings(base.model, images, args.repeats), timings(pruned, images, args.repeats)
        print(
            json.dumps(
                {
                    "key": config.key,
                    "dataset": config.base.dataset,
                    "criterion": config.criterion,
                    "ratio": config.ratio,
                    "seed": config.seed,
                    "threads": torch.get_num_threads(),
                    "tile": list(images[0].shape[1:]),
                    "base": before,
                    "pruned": after,
                    "backbone_share_base": round(before["backbone_ms"] / before["whole_ms"], 3),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
