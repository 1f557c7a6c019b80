"""Chart-ready tables (pandas) for the HBFP page: pair distances, pairs, trajectories, rounds and their steps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from plasticity.pruning.groups import dependency_graph, prunable_groups
from plasticity.pruning.pairs import find_pairs, pair_distances
from plasticity.runs.base import Base
from plasticity.runs.hbfp import HbfpConfig, round_counts
from plasticity.train import FilterNormHistory


def distance_matrix(history: FilterNormHistory, layer: str, norm: str = "l1") -> pd.DataFrame:
    """Surviving filters x surviving filters: the sum over the recorded epochs of |norm_i - norm_j| (NaN on the
    diagonal); rows and columns are original filter indices."""
    survivors = history.original_index[layer]
    distances = pair_distances(history.matrix(layer, norm)[:, survivors]).numpy()
    distances[np.isinf(distances)] = np.nan
    index = pd.Index(survivors, name="filter")
    return pd.DataFrame(distances, index=index, columns=index.rename("other filter"))


def first_round_pairs(base: Base, config: HbfpConfig) -> list[dict]:
    """The pairs the first round of `config` takes from the base's history (before any optimisation)."""
    groups = prunable_groups(base.model, dependency_graph(base.model, base.data.example_input()))
    return [pair.to_dict() for pair in find_pairs(base.history, round_counts(groups, base.history, config.round_ratio))]


PAIR_COLUMNS = ["layer", "pair", "a", "b", "distance", "gap_before", "gap_after", "dropped"]


def pairs_table(pairs: list[dict]) -> pd.DataFrame:
    """One row per pair: its filters, history distance, l1 gap before and after optimisation, the filter dropped."""
    rows = [
        {
            "layer": p["layer"],
            "pair": f"{p['a']} & {p['b']}",
            "a": p["a"],
            "b": p["b"],
            "distance": p["distance"],
            "gap_before": p.get("gap_before"),
            "gap_after": p.get("gap_after"),
            "dropped": p.get("dropped"),
        }
        for p in pairs
    ]
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def epoch_positions(history: FilterNormHistory) -> list[float]:
    """Every recorded point's place on an epoch axis: an epoch's end at its number, a point recorded during
    an epoch in between by its step, one recorded between epochs (right after pruning) at the epoch before."""
    ends = {epoch: step for (epoch, step), at_end in zip(history.points, history.at_epoch_end) if at_end}
    positions = []
    for epoch, step in history.points:
        start, end = ends.get(epoch), ends.get(epoch + 1)
        within = start is not None and end is not None and end > start and step != start
        positions.append(epoch + (step - start) / (end - start) if within else float(epoch))
    return positions


def trajectory_table(
    history: FilterNormHistory, layer: str, filters: list[int], up_to_point: int | None = None, norm: str = "l1"
) -> pd.DataFrame:
    """One row per (filter, recorded point) of the chosen filters, the first `up_to_point` points (all if None):
    the point's place in epochs and the norm, NaN once the filter was pruned."""
    matrix = history.matrix(layer, norm, epochs_only=False).numpy()
    positions = epoch_positions(history)[:up_to_point]
    rows = [{"filter": f, "epoch": x, norm: float(matrix[i, f])} for f in filters for i, x in enumerate(positions)]
    return pd.DataFrame(rows, columns=["filter", "epoch", norm])


ROUND_COLUMNS = ["criterion", "round", "ratio", "macs", "macs_reduction", "acc_pruned", "acc_final", "acc_val_final"]


def rounds_table(rounds: dict[str, list[dict]], base_result: dict) -> pd.DataFrame:
    """Round 0 (the base) and every round of each named run: share pruned, MACs, accuracy before and after
    retraining, validation accuracy, and whether the stop rule kept it."""
    rows = []
    for name, rows_of_run in rounds.items():
        rows.append(
            {
                "criterion": name,
                "round": 0,
                "ratio": 0.0,
                "macs": base_result["macs"],
                "macs_reduction": 0.0,
                "acc_pruned": base_result["acc"],
                "acc_final": base_result["acc"],
                "acc_val_final": base_result["acc_val"],
                "within_threshold": True,
            }
        )
        for row in rows_of_run:
            rows.append(
                {
                    "criterion": name,
                    **{k: row[k] for k in ("round", "ratio", "macs", "acc_pruned", "acc_final", "acc_val_final")},
                    "macs_reduction": 1 - row["macs"] / base_result["macs"],
                    "within_threshold": row["within_threshold"],
                }
            )
    return pd.DataFrame(rows, columns=[*ROUND_COLUMNS, "within_threshold"])


def steps_table(row: dict) -> pd.DataFrame:
    """The four steps of one round: accuracy (test, validation), MACs and parameters after each."""
    return pd.DataFrame(row["steps"], columns=["step", "epoch", "point", "acc", "acc_val", "macs", "params"])
