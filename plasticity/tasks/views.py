"""What the detection and segmentation page shows: the recovery table, pictures with boxes or masks,
and the background work that trains the base and runs the pruning runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from plasticity.jobs import Job
from plasticity.store import RunStore
from plasticity.tasks.runs import ScenePruneConfig, get_scene_base, run_scene_prune
from plasticity.tasks.scenes import DETECTION, Scenes
from plasticity.tasks.training import predict

SCORE_SHOWN = 0.5  # a detection drawn on a picture scores at least this
PALETTE = np.array(
    [[0, 0, 0], [230, 80, 60], [60, 140, 230], [90, 190, 90], [240, 190, 40], [170, 90, 200], [40, 200, 200]]
    + [[200, 120, 60], [130, 130, 130], [240, 110, 170], [110, 90, 60]],
    dtype=np.uint8,
)


def recovery_table(results: dict[str, dict], metric: str) -> pd.DataFrame:
    """One row per run and epoch (0: right after pruning): run, epoch, score."""
    rows = []
    for name, result in results.items():
        rows.append({"run": name, "epoch": 0, "score": result[f"{metric}_pruned"]})
        rows += [{"run": name, "epoch": p["epoch"], "score": p[metric]} for p in result["curve"]]
    return pd.DataFrame(rows, columns=["run", "epoch", "score"])


def pictures(model: nn.Module, task: str, scenes: Scenes, count: int = 4) -> list[np.ndarray]:
    """The first `count` test tiles as RGB pictures with `model`'s predictions: boxes scoring at least
    `SCORE_SHOWN` (in their class's colour; the true boxes in white), or the predicted mask over the image."""
    images = scenes.test.images[:count]
    predicted = predict(model, task, scenes, images)
    drawn = []
    for k, image in enumerate(images):
        rgb = image.expand(3, -1, -1).permute(1, 2, 0).numpy().copy()
        if task == DETECTION:
            _boxes(rgb, scenes.test.boxes[k], np.full(len(scenes.test.boxes[k]), -1))
            keep = predicted[k]["scores"] >= SCORE_SHOWN
            _boxes(rgb, predicted[k]["boxes"][keep], predicted[k]["labels"][keep].numpy())
        else:
            mask = predicted[k].numpy()
            colours = PALETTE[1 + (mask - 1) % (len(PALETTE) - 1)]
            rgb[mask > 0] = (0.45 * rgb[mask > 0] + 0.55 * colours[mask > 0]).astype(np.uint8)
        drawn.append(rgb)
    return drawn


def _boxes(rgb: np.ndarray, boxes: torch.Tensor, labels: np.ndarray) -> None:
    """Draw one-pixel rectangles in place; label -1 is white."""
    height, width = rgb.shape[:2]
    for (x1, y1, x2, y2), label in zip(boxes.round().int().tolist(), labels):
        x1, y1 = max(0, x1), max(0, y1)
        x2, y2 = min(width - 1, x2 - 1), min(height - 1, y2 - 1)
        colour = (255, 255, 255) if label < 0 else PALETTE[1 + (int(label) - 1) % (len(PALETTE) - 1)]
        rgb[y1, x1 : x2 + 1] = rgb[y2, x1 : x2 + 1] = colour
        rgb[y1 : y2 + 1, x1] = rgb[y1 : y2 + 1, x2] = colour


def scenes_work(configs: dict[str, ScenePruneConfig], store: RunStore, device: str):
    """Work for a job: the runs' base (trained now if the store has none, epoch by epoch), then each run,
    its partial results reported under its name; a stop is seen after every epoch."""

    def work(job: Job) -> None:
        first = next(iter(configs.values())).base

        def on_epoch(done: int, of: int) -> None:
            job.report(done / of / 2, f"training the base: epoch {done}/{of}")
            job.check()

        base = get_scene_base(first, store, device, on_epoch=on_epoch)
        for k, (name, config) in enumerate(configs.items()):

            def on_progress(result: dict, name: str = name, k: int = k, config: ScenePruneConfig = config) -> None:
                share = (k + len(result["curve"]) / max(1, config.finetune_epochs)) / len(configs)
                job.report(0.5 + share / 2, f"{name}: epoch {len(result['curve'])}", **{name: result})
                job.check()

            run_scene_prune(config, store, device, base=base, on_progress=on_progress)  # a stop marks it failed

    return work
