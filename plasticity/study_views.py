"""Chart-ready tables (pandas) for the class-subset and pre-training page (pages/studies.py).

Each plan lists the runs the library makes for a study, in its order and with its keys, so the page can
show what the run store already holds before anything runs, and count what is missing.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from plasticity.data import Dataset, format_classes
from plasticity.experiment import PruneConfig, TrainConfig
from plasticity.store import RunStore
from plasticity.studies import Task, pretraining_bases, prunable_share, summarise_study
from plasticity.views import comparison_configs, comparison_table

ALL_CLASSES = "all classes"


def scope_name(classes: tuple[int, ...]) -> str:
    return format_classes(classes) if classes else ALL_CLASSES


def subset_configs(
    base: TrainConfig,
    criteria: list[str],
    ratios: list[float],
    seeds: list[int],
    classes: tuple[int, ...],
    finetune_epochs: int,
    subset_finetune_epochs: int | None = None,
) -> list[PruneConfig]:
    """The runs `compare(..., classes=classes, base_seed=base.seed)` makes (fine-tuning for
    `subset_finetune_epochs`, by default `finetune_epochs`), then the same for every class."""
    everything = comparison_configs(base, criteria, ratios, seeds, finetune_epochs)
    epochs = finetune_epochs if subset_finetune_epochs is None else subset_finetune_epochs
    return [replace(c, classes=tuple(classes), finetune_epochs=epochs) for c in everything] + everything


def same_steps_epochs(data: Dataset, classes: tuple[int, ...], finetune_epochs: int) -> int:
    """Epochs on `classes` that take about as many optimiser steps as `finetune_epochs` on every class
    (an epoch on 3 of 10 balanced classes is 3/10 of the steps)."""
    share = len(data.subset(classes).train) / len(data.train)
    return max(1, round(finetune_epochs / share))


def subset_table(configs: list[PruneConfig], store: RunStore) -> pd.DataFrame:
    """`comparison_table` with the classes each run was pruned, fine-tuned and tested for in front."""
    table = comparison_table(configs, store).drop(columns="latency_ms_pruned")
    table.insert(0, "pruned for", [scope_name(config.classes) for config in configs])
    table.insert(4, "epochs", [config.finetune_epochs for config in configs])
    return table


def subset_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (pruned for, criterion, ratio): mean, min and max over seeds of the accuracy before pruning
    (ratio 0), right after pruning and after fine-tuning; one row per stage."""
    done = table[table["status"] == "done"]
    keys = ["pruned for", "criterion", "ratio", "seed"]
    pruned = done.melt(id_vars=keys, value_vars=["acc_pruned", "acc_final"], var_name="stage", value_name="accuracy")
    unpruned = [  # the base, as the ratio-0 point of every line, in both stages
        done[keys[:2] + ["seed", "acc_base"]].drop_duplicates().assign(ratio=0.0, stage=stage)
        for stage in ("acc_pruned", "acc_final")
    ]
    rows = pd.concat([pruned, *(u.rename(columns={"acc_base": "accuracy"}) for u in unpruned)], ignore_index=True)
    rows["accuracy"] = rows["accuracy"].astype(float)
    summary = rows.groupby(["stage", "pruned for", "criterion", "ratio"], sort=False)["accuracy"]
    return summary.agg(["mean", "min", "max", "count"]).reset_index().sort_values(["stage", "pruned for", "ratio"])


def prunable_ratio(table: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
    """Per (pruned for, criterion): the largest ratio whose fine-tuned accuracy (mean over seeds) stays within
    `tolerance` of the unpruned base on the same classes; 0 when none does."""
    done = table[table["status"] == "done"].astype({"acc_base": float, "acc_final": float})
    cells = done.groupby(["pruned for", "criterion", "ratio"], sort=False)[["acc_base", "acc_final"]].mean()
    cells = cells.reset_index()
    cells["within"] = cells["acc_final"] >= cells["acc_base"] - tolerance
    rows = []
    for (scope, criterion), group in cells.groupby(["pruned for", "criterion"], sort=False):
        rows.append(
            {
                "pruned for": scope,
                "criterion": criterion,
                "ratio": group.loc[group["within"], "ratio"].max() if group["within"].any() else 0.0,
                "acc_base": group["acc_base"].mean(),
            }
        )
    return pd.DataFrame(rows, columns=["pruned for", "criterion", "ratio", "acc_base"])


def pretraining_plan(
    model: str,
    target: Task,
    source: Task | str,
    criterion: str,
    ratios: list[float],
    seeds: list[int],
    *,
    epochs: int,
    source_epochs: int,
    finetune_epochs: int,
    lr: float = 0.01,
) -> list[tuple[str, PruneConfig]]:
    """(modality, run) for every run `pretraining_study` makes with these arguments, in its order."""
    return [
        (modality, PruneConfig(base, criterion, ratio, seed, finetune_epochs, lr=lr))
        for seed in seeds
        for modality, base in pretraining_bases(
            model, target, source, epochs=epochs, source_epochs=source_epochs, seed=seed, lr=lr
        ).items()
        for ratio in ratios
    ]


def missing_bases(plan: list[tuple[str, PruneConfig]], store: RunStore) -> int:
    """How many bases of the plan (the source ones included) the store does not hold yet."""
    bases = {config.base for _, config in plan} | {config.base.init_from for _, config in plan}
    return sum(1 for base in bases - {None} if not ((run := store.get(base.key)) and run.status == "done"))


PRETRAINING_COLUMNS = [
    "modality",
    "ratio",
    "seed",
    "acc_base",
    "acc_pruned",
    "acc_final",
    "params_removed",
    "macs_removed",
    "params_pruned",
    "status",
]


def pretraining_table(plan: list[tuple[str, PruneConfig]], store: RunStore) -> pd.DataFrame:
    """One row per run of the study, read from the store; runs not done yet have no numbers."""
    rows = []
    for modality, config in plan:
        run = store.get(config.key)
        row = {"modality": modality, "ratio": config.ratio, "seed": config.seed}
        if run and run.status == "done":
            result = run.result
            row.update({k: result[k] for k in ("acc_base", "acc_pruned", "acc_final", "params_pruned")})
            row["params_removed"] = 1 - result["params_pruned"] / result["params_base"]
            row["macs_removed"] = 1 - result["macs_pruned"] / result["macs_base"]
            row["status"] = "done"
        else:
            row["status"] = f"failed: {run.error}" if run and run.error else (run.status if run else "missing")
        rows.append(row)
    return pd.DataFrame(rows, columns=PRETRAINING_COLUMNS)


def pretraining_summary(table: pd.DataFrame, tolerance: float = 0.01) -> tuple[pd.DataFrame, dict[str, float]]:
    """The study's summary over seeds (`summarise_study`) as a table, and `prunable_share` per modality."""
    done = table[table["status"] == "done"].to_dict("records")
    summary = summarise_study(done)
    return pd.DataFrame(summary), prunable_share(summary, tolerance)
