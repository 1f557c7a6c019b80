"""The detection and segmentation table of docs/results.md, from the `plasticity prune --task ... --json` outputs.

    python benchmarks/scenes_table.py [--fps FPS.jsonl] benchmarks/results/scenes/*.json

One row per task, data set, criterion and ratio: the score of the base, right after pruning and after
fine-tuning (mean ± standard deviation over seeds, with the lowest and highest), and the frames per
second of the pruned network over the base's (a ratio of 0 is the control: the base, unpruned, trained for
the same fine-tuning epochs): by default as each run measured it at its end; with
`--fps`, the medians `benchmarks/bench_scenes_fps.py` measured for those of the runs it measured (by key).
"""

import json
import statistics
import sys
from collections import defaultdict


def spread(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {std:.3f} ({min(values):.3f}-{max(values):.3f})"


def _speedup(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{values[0]:.2f}x" if len(values) == 1 else spread(values)


def main(paths: list[str]) -> None:
    speedups = {}
    if paths[:1] == ["--fps"]:
        with open(paths[1]) as lines:
            speedups = {row["key"]: row["speedup"] for row in map(json.loads, lines)}
        paths = paths[2:]
    cells = defaultdict(list)
    for path in paths:
        result = json.load(open(path))
        cells[(result["task"], result["dataset"], result["criterion"], result["ratio"])].append(result)
    print(
        "| task | data set | criterion | ratio | seeds | base | just pruned | fine-tuned (3 epochs) "
        "| fps pruned / base |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (task, dataset, criterion, ratio), results in sorted(cells.items()):
        metric = "map" if task == "detection" else "miou"
        pruned, final = ([r[f"{metric}_{when}"] for r in results] for when in ("pruned", "final"))
        if speedups:  # the runs measured again (one seed may stand for all: the architecture is the same)
            speedup = [speedups[r["key"]] for r in results if r["key"] in speedups]
        else:
            speedup = [r["fps_pruned"] / r["fps_base"] for r in results]
        criterion = "none (control)" if ratio == 0 else criterion  # ratio 0 prunes nothing
        print(
            f"| {task} ({'mAP' if metric == 'map' else 'mean IoU'}) | {dataset} | {criterion} | {ratio:.0%} | "
            f"{len(results)} | {results[0][metric + '_base']:.3f} | {spread(pruned)} | "
            f"{spread(final)} | {_speedup(speedup)} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
