"""Frames per second of the pruned detectors and SegNets in a run store, against their bases.

    PLASTICITY_HOME=H python benchmarks/bench_scenes_fps.py [--rounds 5] [--seeds 0] > results.jsonl

A `scene-prune` run records the frames per second of its base and of its pruned network once, at its
end, under whatever load the machine had then. This measures them again, quietly: for every finished
run in the store, the base and the pruned network (rebuilt from the checkpoint) each take `--rounds`
turns, alternately, of `frames_per_second` (the median of 5 timed passes over the same 16 test tiles as
the run used, box post-processing included). One JSON line per run: the median fps of each, and the
median of the per-round ratios. `benchmarks/scenes_table.py --fps results.jsonl` puts them in the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Iterator

import torch

from plasticity.store import RunStore
from plasticity.tasks.runs import FPS_BATCH, ScenePruneConfig, get_scene_base, load_pruned
from plasticity.tasks.training import frames_per_second


def stored_runs(store: RunStore, seeds: set[int], task: str | None = None) -> Iterator[tuple]:
    """(config, base, pruned network) of every finished pruning run in `store`, of the pruning `seeds`
    (every seed when empty) and of `task` (every task when None)."""
    for run in store.runs("scene-prune", "done"):
        config = ScenePruneConfig.from_dict(run.config)
        if (seeds and config.seed not in seeds) or (task and config.base.task != task):
            continue
        base = get_scene_base(config.base, store)
        yield config, base, load_pruned(config, store, base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating turns of each network (default: 5)")
    parser.add_argument("--home", default=None, help="the run store (default: $PLASTICITY_HOME)")
    parser.add_argument(
        "--seeds",
        default="",
        help="only the runs of these pruning seeds, like 0 (default: every run); a ratio's "
        "pruned architecture is the same for every seed and criterion",
    )
    args = parser.parse_args()
    seeds = {int(seed) for seed in args.seeds.split(",") if seed}
    store = RunStore(args.home)
    for config, base, pruned in stored_runs(store, seeds):
        task, scenes = config.base.task, base.scenes
        images = scenes.test.images[:FPS_BATCH]
        rounds = []
        for _ in range(args.rounds):
            rounds.append(
                (frames_per_second(base.model, task, scenes, images), frames_per_second(pruned, task, scenes, images))
            )
        print(
            json.dumps(
                {
                    "key": config.key,
                    "task": task,
                    "dataset": config.base.dataset,
                    "criterion": config.criterion,
                    "ratio": config.ratio,
                    "seed": config.seed,
                    "threads": torch.get_num_threads(),
                    "rounds": args.rounds,
                    "fps_base": round(statistics.median(b for b, _ in rounds), 2),
                    "fps_pruned": round(statistics.median(p for _, p in rounds), 2),
                    "speedup": round(statistics.median(p / b for b, p in rounds), 3),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
