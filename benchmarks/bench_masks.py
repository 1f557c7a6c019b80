"""Random masks on the shipped LeNet-5 (mnist-5k): best of N against a single random mask, per granularity.

    OMP_NUM_THREADS=1 python benchmarks/bench_masks.py [--seeds 0,1,2] [--n-values 1,5,10,25,50]
        [--finetune-epochs 3] [--ratio feature-map=0.6,0.7] [--out benchmarks/results/masks-lenet5-mnist5k.json]
        [--dataset fashion-mnist]   # another data set: its LeNet-5 base is trained first (12 epochs)

For every granularity, ratio and seed it scores masks 0..max(N)-1 on the validation split once; best of N is
the best of the first N (mask i depends only on the seed and i, so this is exactly what
`plasticity masks --n-masks N` picks), and N = 1 is a single random mask. Each distinct chosen mask is
retrained once (`--finetune-epochs`, as `plasticity masks` does) and scored on the test split.
Sparsity is the share of all conv weights removed. The default run takes about 10-15 minutes on one core.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from plasticity.pruning.masks import MaskSearch, ranked, retrain_masked
from plasticity.runs import TrainConfig, get_base
from plasticity.store import RunStore
from plasticity.train import accuracy

# the share of each layer's units removed; a feature map takes the next layer's inputs with it, so its
# sparsity grows faster: 0.2, 0.3, 0.4, 0.5 remove 36%, 51%, 64%, 75% of the conv weights
RATIOS = {
    "feature-map": [0.2, 0.3, 0.4, 0.5],
    "kernel": [0.5, 0.6, 0.7, 0.8],
    "intra-kernel": [0.5, 0.6, 0.7, 0.8],
}


def numbers(kind):
    return lambda text: [kind(part) for part in text.split(",") if part]


def cell(base, granularity: str, ratio: float, seed: int, n_values: list[int], epochs: int) -> list[dict]:
    """One granularity, ratio and seed: best of each N, retrained."""
    data = base.data
    search = MaskSearch(base.model, data, granularity, ratio, seed=seed)
    start = time.perf_counter()
    val_accs = search.evaluate(max(n_values))
    eval_ms = 1000 * (time.perf_counter() - start) / max(n_values)
    retrained: dict[int, dict] = {}
    rows = []
    for n in n_values:
        index = ranked(val_accs[:n])["best"]
        if index not in retrained:
            mask = search.draw(index)
            model = mask.apply(copy.deepcopy(base.model))
            acc_pruned = accuracy(model, data, data.test)
            start = time.perf_counter()
            retrain_masked(model, mask, data, epochs=epochs, seed=seed)
            retrained[index] = {
                "acc_pruned": acc_pruned,
                "acc_final": accuracy(model, data, data.test),
                "retrain_s": time.perf_counter() - start,
                "sparsity": mask.sparsity(base.model),
            }
        rows.append(
            {
                "granularity": granularity,
                "ratio": ratio,
                "seed": seed,
                "n": n,
                "index": index,
                "val_best": val_accs[index],
                "val_median": statistics.median(val_accs[:n]),
                "eval_ms_per_mask": eval_ms,
                **retrained[index],
            }
        )
    return rows


def summarise(rows: list[dict], acc_base: float) -> list[dict]:
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault((row["granularity"], row["ratio"], row["n"]), []).append(row)
    summary = []
    for (granularity, ratio, n), group in cells.items():
        finals = [r["acc_final"] for r in group]
        summary.append(
            {
                "granularity": granularity,
                "ratio": ratio,
                "n": n,
                "seeds": len(group),
                "sparsity": group[0]["sparsity"],
                "val_best_mean": statistics.fmean(r["val_best"] for r in group),
                "acc_pruned_mean": statistics.fmean(r["acc_pruned"] for r in group),
                "acc_final_mean": statistics.fmean(finals),
                "acc_final_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
                "drop_points": 100 * (acc_base - statistics.fmean(finals)),
            }
        )
    return summary


def reachable(summary: list[dict], n: int, granularities: list[str], points: float = 1.0) -> dict[str, float | None]:
    """Per granularity, the highest sparsity whose mean test accuracy is within `points` of the base."""
    out = {}
    for granularity in granularities:
        cells = [s for s in summary if s["granularity"] == granularity and s["n"] == n]
        ok = [s["sparsity"] for s in cells if s["drop_points"] <= points]
        out[granularity] = max(ok) if ok else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=numbers(int), default=[0, 1, 2])
    parser.add_argument("--n-values", type=numbers(int), default=[1, 5, 10, 25, 50])
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--granularities", type=numbers(str), default=list(RATIOS))
    parser.add_argument(
        "--ratio",
        action="append",
        default=[],
        metavar="GRANULARITY=R1,R2",
        help="other ratios for one granularity (repeatable), e.g. feature-map=0.6,0.7",
    )
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--out", default="benchmarks/results/masks-lenet5-mnist5k.json")
    args = parser.parse_args()
    ratios = dict(RATIOS)
    for item in args.ratio:
        name, _, values = item.partition("=")
        ratios[name] = numbers(float)(values)

    with tempfile.TemporaryDirectory() as home:
        base = get_base(TrainConfig(dataset=args.dataset), RunStore(home))  # mnist-5k: the shipped LeNet-5
    acc_base = base.result["acc"]
    print(f"base: test {acc_base:.4f}, validation {base.result['acc_val']:.4f}", flush=True)
    start, cpu_start, rows = time.perf_counter(), time.process_time(), []
    for granularity in args.granularities:
        for ratio in ratios[granularity]:
            for seed in args.seeds:
                rows += cell(base, granularity, ratio, seed, args.n_values, args.finetune_epochs)
                last = rows[-len(args.n_values) :]
                finals = " ".join(f"N={r['n']}:{r['acc_final']:.3f}" for r in last)
                print(
                    f"{granularity:>12} ratio {ratio:.2f} seed {seed} sparsity {last[0]['sparsity']:.3f}  {finals}"
                    f"  ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
    summary = summarise(rows, acc_base)
    result = {
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "settings": vars(args) | {"ratios": {g: ratios[g] for g in args.granularities}},
        "acc_base": acc_base,
        "acc_val_base": base.result["acc_val"],
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,  # what the run costs a quiet core, whatever else runs
        "reachable_at_1_point": {str(n): reachable(summary, n, args.granularities) for n in args.n_values},
        "summary": summary,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\nmean test accuracy over {len(args.seeds)} seeds (base {acc_base:.3f}); drop in points", flush=True)
    for s in summary:
        print(
            f"{s['granularity']:>12} ratio {s['ratio']:.2f} sparsity {s['sparsity']:.3f} N={s['n']:>3}: "
            f"val best {s['val_best_mean']:.3f}  test masked {s['acc_pruned_mean']:.3f}  "
            f"retrained {s['acc_final_mean']:.3f} ± {s['acc_final_std']:.3f}  drop {s['drop_points']:+.1f}"
        )
    print("highest sparsity within 1 point of the base:", json.dumps(result["reachable_at_1_point"]))
    print(f"wrote {args.out} ({result['seconds']:.0f} s, {result['cpu_seconds']:.0f} s of CPU)")


if __name__ == "__main__":
    main()
