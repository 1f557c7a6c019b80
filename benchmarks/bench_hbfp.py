"""HBFP against l1 and random through the same rounds and budget (LeNet-5, mnist-5k by default).

    python benchmarks/bench_hbfp.py [--seeds 0,1,2] [--out benchmarks/results/hbfp-lenet5-mnist5k.json]

Every variant prunes the shipped base round after round (10% of each layer's original filters a round,
2 optimisation + 2 retraining epochs) until no layer has two filters left, with each seed. From each
such sweep it reads what the stop rule keeps (validation accuracy at most 1 point below the best, as
`plasticity hbfp` does by default) and the deepest round whose test accuracy is at most 1 point below
the base's. A fresh run store each time, so every round is computed and timed. Figures in README
come from this script.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from plasticity.runs import TrainConfig, get_base
from plasticity.runs.hbfp import HbfpConfig, run_hbfp, within_threshold
from plasticity.store import RunStore

VARIANTS = {
    "hbfp": {"criterion": "hbfp"},
    "hbfp (larger-cumulative)": {"criterion": "hbfp", "drop": "larger-cumulative"},
    "l1": {"criterion": "l1"},
    "random": {"criterion": "random"},
}
LOST = 0.01  # one point of accuracy


def stop_rule(result: dict, threshold: float) -> dict:
    """What `plasticity hbfp --threshold` keeps, read off a sweep: the rounds are the same up to the stop."""
    best, kept, seconds = result["acc_val_base"], None, 0.0
    for row in result["rounds"]:
        seconds += row["seconds"]
        if not within_threshold(row["acc_val_final"], best, threshold):
            break
        best, kept = max(best, row["acc_val_final"]), row
    return summary(result, kept, seconds)


def deepest_within(result: dict, lost: float) -> dict:
    """The round with the fewest MACs whose test accuracy is at most `lost` below the base's."""
    fine = [r for r in result["rounds"] if r["acc_final"] >= result["acc_base"] - lost - 1e-9]
    kept = min(fine, key=lambda r: r["macs"]) if fine else None
    seconds = sum(r["seconds"] for r in result["rounds"][: kept["round"]]) if kept else 0.0
    return summary(result, kept, seconds)


def summary(result: dict, row: dict | None, seconds: float) -> dict:
    macs = row["macs"] if row else result["macs_base"]
    return {
        "round": row["round"] if row else 0,
        "ratio": row["ratio"] if row else 0.0,
        "channels": row["channels"] if row else None,
        "acc": row["acc_final"] if row else result["acc_base"],
        "acc_val": row["acc_val_final"] if row else result["acc_val_base"],
        "macs": macs,
        "macs_reduction": 1 - macs / result["macs_base"],
        "seconds": round(seconds, 2),
    }


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--out", default="benchmarks/results/hbfp-lenet5-mnist5k.json")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    store = RunStore(tempfile.mkdtemp(prefix="bench-hbfp-"))
    base = get_base(TrainConfig(model=args.model, dataset=args.dataset), store)
    defaults = HbfpConfig()
    runs, table = [], {}
    for name in args.variants.split(","):
        for seed in seeds:
            config = HbfpConfig(base.config, **VARIANTS[name], seed=seed, threshold=1.0)  # sweep to the end
            start = time.perf_counter()
            result = run_hbfp(config, store, base=base)
            wall = time.perf_counter() - start
            entry = {
                "variant": name,
                "seed": seed,
                "sweep_seconds": round(wall, 2),
                "stop_rule": stop_rule(result, defaults.threshold),
                "within_one_point_test": deepest_within(result, LOST),
                "rounds": [
                    {k: r[k] for k in ("round", "ratio", "channels", "acc_final", "acc_val_final", "macs", "seconds")}
                    for r in result["rounds"]
                ],
            }
            runs.append(entry)
            s, d = entry["stop_rule"], entry["within_one_point_test"]
            print(
                f"{name:>25} seed {seed}: stop rule keeps round {s['round']} ({s['macs_reduction']:.1%} fewer MACs, "
                f"test {s['acc']:.3f}, {s['seconds']:.0f} s); deepest within 1 point on test: round {d['round']} "
                f"({d['macs_reduction']:.1%}, test {d['acc']:.3f}); sweep {wall:.0f} s",
                flush=True,
            )
        ours = [r for r in runs if r["variant"] == name]
        table[name] = {
            view: {
                metric: mean_std([r[view][metric] for r in ours])
                for metric in ("macs_reduction", "acc", "ratio", "seconds", "round")
            }
            for view in ("stop_rule", "within_one_point_test")
        }
    payload = {
        "what": "HBFP vs l1 vs random through the same rounds (benchmarks/bench_hbfp.py)",
        "settings": {
            k: v for k, v in defaults.to_dict().items() if k not in ("base", "criterion", "seed", "threshold")
        },
        "stop_threshold": defaults.threshold,
        "base": {**base.config.to_dict(), **{k: base.result[k] for k in ("acc", "acc_val", "macs", "params")}},
        "seeds": seeds,
        "summary": table,
        "runs": runs,
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
