"""Chart-ready tables (pandas) for the dashboard, built from bases, runs and histories (a study's own
tables are its `table()` and `chart_summary()`).

Nothing here draws: each function turns library objects into a tidy DataFrame, so a page
only picks a chart for it, and the same table can be checked in a test or saved as CSV.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from plasticity.data import format_classes
from plasticity.pruning.criteria import create_criterion
from plasticity.pruning.prune import prune_model
from plasticity.runs.base import Base, TrainConfig
from plasticity.store import RunStore
from plasticity.train import FilterNormHistory

DEFAULT_BASE = TrainConfig()


def base_label(config: TrainConfig) -> str:
    shipped = " (shipped default)" if config == DEFAULT_BASE else ""
    data = f"{config.dataset}:{format_classes(config.classes)}" if config.classes else config.dataset
    start = f", from {base_label(config.init_from)}" if config.init_from is not None else ""
    weights = f", from the weights {Path(config.weights).name}" if config.weights else ""
    epochs = f"{config.epochs} epoch{'' if config.epochs == 1 else 's'}"
    return f"{config.model} on {data}, {epochs}, seed {config.seed}{start}{weights}{shipped}"


def stored_bases(store: RunStore) -> list[TrainConfig]:
    """The shipped default first, then every finished base in the store."""
    configs = [DEFAULT_BASE]
    for run in store.runs(kind="train", status="done"):
        try:
            config = TrainConfig.from_dict(run.config)
        except TypeError:  # a row written by another version of the library
            continue
        if config not in configs:
            configs.append(config)
    return configs


def norm_table(history: FilterNormHistory, layer: str, norm: str = "l1") -> pd.DataFrame:
    """One row per (filter, epoch): the filter's norm at that epoch's end (epoch 0 = initialisation)."""
    matrix = history.matrix(layer, norm).numpy()
    frame = pd.DataFrame(matrix, index=pd.Index(history.epochs(), name="epoch"))
    frame.columns.name = "filter"
    return frame.stack(future_stack=True).rename(norm).reset_index()


def norm_matrix(history: FilterNormHistory, layer: str, norm: str = "l1", sort_by_final: bool = False) -> pd.DataFrame:
    """filters x epochs; sorted by the last epoch's norm (largest first) when asked."""
    matrix = history.matrix(layer, norm).numpy()
    frame = pd.DataFrame(matrix.T, columns=pd.Index(history.epochs(), name="epoch"))
    frame.index.name = "filter"
    if sort_by_final:
        frame = frame.sort_values(frame.columns[-1], ascending=False)
    return frame


def filters_pruned_by(base: Base, criterion: str, ratio: float, seed: int = 0) -> dict[str, list[int]]:
    """The original indices of the filters `criterion` would prune from `base` at `ratio` (base untouched)."""
    pruned = prune_model(base.model, create_criterion(criterion, seed), ratio, base.data, history=base.history)
    doomed = {}
    for layer, kept in pruned.kept.items():
        original = base.history.original_index.get(layer, list(range(pruned.original[layer])))
        doomed[layer] = sorted(set(original) - {original[p] for p in kept})
    return doomed


def recovery_table(results: dict[str, dict]) -> pd.DataFrame:
    """Accuracy against fine-tuning epoch per named run; `cut` marks a point right after pruning (epoch 0,
    and for a schedule every later cut, where the accuracy drops again at the same epoch)."""
    rows = []
    for name, result in results.items():
        cuts = result.get("steps") or [{"epoch": 0, "acc_pruned": result["acc_pruned"]}]
        for i, cut in enumerate(cuts):
            rows.append({"run": name, "epoch": cut["epoch"], "accuracy": cut["acc_pruned"], "cut": True})
            until = cuts[i + 1]["epoch"] if i + 1 < len(cuts) else float("inf")
            rows += [
                {"run": name, "epoch": p["epoch"], "accuracy": p["acc"], "cut": False}
                for p in result["curve"]
                if cut["epoch"] < p["epoch"] <= until
            ]
    return pd.DataFrame(rows, columns=["run", "epoch", "accuracy", "cut"])


def channels_table(results: dict[str, dict]) -> pd.DataFrame:
    """Filters kept per conv layer, per named run, with the layer's original width."""
    rows = [
        {"run": name, "layer": layer, "kept": kept, "original": original}
        for name, result in results.items()
        for layer, (kept, original) in result["channels"].items()
    ]
    return pd.DataFrame(rows, columns=["run", "layer", "kept", "original"])


def cost_table(results: dict[str, dict], base_nonzero_params: int | None = None) -> pd.DataFrame:
    """Accuracy, MACs, parameters and measured latency of the base and of each named pruned model (the
    base's non-zero parameters when given: its runs do not store them). A run's latency is measured beside
    the base's (one interleaved measurement); one measured under load has no figures here
    (`latency_under_load`), since they would not compare."""
    first = next(iter(results.values()))
    columns = {
        "base": {
            "accuracy just pruned": first["acc_base"],
            "accuracy after fine-tuning": first["acc_base"],
            "MACs": first["macs_base"],
            "parameters": first["params_base"],
            "non-zero parameters": base_nonzero_params,
            **_latency(first, "base"),
        }
    }
    for name, result in results.items():
        columns[name] = {
            "accuracy just pruned": result["acc_pruned"],
            "accuracy after fine-tuning": result["acc_final"],
            "MACs": result["macs_pruned"],
            "parameters": result["params_pruned"],
            "non-zero parameters": result["nonzero_params_pruned"],
            **_latency(result, "pruned"),
        }
    return pd.DataFrame(columns)


def _latency(result: dict, model: str) -> dict:
    measured = None if result.get("latency_under_load") else result[f"latency_ms_{model}"]
    spread = result.get(f"latency_range_ms_{model}") if measured is not None else None
    return {"latency (ms / 256 images)": measured, "latency, middle half of the repeats (ms)": spread}


def measured_under_load(results: dict[str, dict]) -> bool:
    """Whether any of these runs' latency was measured under load (its figures are then left out)."""
    return any(result.get("latency_under_load") for result in results.values())
