"""What every study is: a frozen config whose `plan()` lists the pruning runs it needs.

A study is written once and used by the CLI, the dashboard's jobs and pages alike: `plan()` gives the
runs in order (each a `PruneConfig` with the study's tags, e.g. its modality), `run()` computes the
missing ones (finished runs come from the store, so a stopped study resumes), `table()` reads every
planned run from the store with its status, and `summarise()` aggregates over seeds. Where the runs are
computed is the executor's choice (`plasticity.executors`: in this process, or on Ray). Seeds are
aggregated in one place (`aggregate`) and "the largest share within a tolerance" is one rule
(`largest_within`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd
import torch

from plasticity.executors import Executor, InProcess, OnStatus
from plasticity.runs.prune import PruneConfig
from plasticity.store import RunStore

STAGES = ("acc_pruned", "acc_final")  # right after pruning, after fine-tuning


@dataclass(frozen=True)
class Planned:
    """One run of a study: its config, and what the study calls it (e.g. {"modality": "scratch"})."""

    config: PruneConfig
    tags: dict = field(default_factory=dict)


class Study:
    """The protocol of a study (subclasses are frozen dataclasses)."""

    cells: ClassVar[tuple[str, ...]]  # the fields whose values make one cell of the summary (seeds vary within)
    metrics: ClassVar[tuple[str, ...]] = STAGES
    columns: ClassVar[list[str]]  # the columns of `table()`, `status` last

    def plan(self) -> list[Planned]:
        raise NotImplementedError

    def identity(self, planned: Planned) -> dict:
        """What names a run in the table before it has a result."""
        config = planned.config
        return {**planned.tags, "criterion": config.criterion, "ratio": config.ratio, "seed": config.seed}

    def row(self, planned: Planned, result: dict) -> dict:
        """A finished run's result as the study reports it."""
        return {**result, **planned.tags}

    def run(
        self,
        store: RunStore,
        device: torch.device | str = "cpu",
        *,
        executor: Executor | None = None,
        on_result: Callable[[int, int, dict], None] | None = None,
        on_status: OnStatus | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        progress: bool = False,
    ) -> list[dict]:
        """Every planned run, in plan order: finished ones come from the store, the others are computed by
        `executor` (in this process by default; `executors.RayExecutor` on Ray). `on_result(done, total, row)`
        hears of each run as it arrives, `on_status` of the sweep's counts."""
        plan, results = self.plan(), {}

        def arrived(index: int, result: dict) -> None:
            results[index] = result
            if on_result:
                on_result(len(results), len(plan), self.row(plan[index], result))

        (executor or InProcess()).run(
            [planned.config for planned in plan],
            store,
            device,
            on_result=arrived,
            on_status=on_status,
            should_stop=should_stop,
            progress=progress,
        )
        return [self.row(plan[index], results[index]) for index in sorted(results)]

    def keys(self) -> tuple[str, ...]:
        return tuple(planned.config.key for planned in self.plan())

    def missing(self, store: RunStore) -> int:
        """How many planned runs the store does not hold done."""
        keys = self.keys()
        runs = store.get_many(keys)
        return sum(1 for key in keys if key not in runs or not runs[key].done)

    def missing_bases(self, store: RunStore) -> int:
        """How many bases of the plan (the source ones of pre-training included) the store does not hold."""
        bases = {p.config.base for p in self.plan()} | {p.config.base.init_from for p in self.plan()}
        return sum(1 for base in bases - {None} if not store.done(base.key))

    def table(self, store: RunStore) -> pd.DataFrame:
        """One row per planned run, read from the store; runs not done yet have no numbers."""
        rows, plan = [], self.plan()
        runs = store.get_many(planned.config.key for planned in plan)
        for planned in plan:
            run = runs.get(planned.config.key)
            row = self.identity(planned)
            if run is not None and run.done:
                full = self.row(planned, run.result)
                row.update({name: full.get(name) for name in self.columns[:-1] if name not in row}, status="done")
            else:
                row["status"] = f"failed: {run.error}" if run and run.error else (run.status if run else "missing")
            rows.append(row)
        return pd.DataFrame(rows, columns=self.columns)

    def summarise(self, rows: list[dict]) -> list[dict]:
        """Mean and standard deviation over seeds of each cell."""
        return aggregate(rows, self.cells, self.metrics)

    def chart_summary(self, table: pd.DataFrame) -> pd.DataFrame:
        """Mean, min and max over seeds of each cell's done runs, one row per (stage, cell), for a chart."""
        summary = aggregate(done_rows(table), self.cells, self.metrics, stats=("mean", "min", "max"))
        return by_stage(summary, self.cells).sort_values(["stage", *self.cells])


STATS: dict[str, Callable[[list[float]], float]] = {
    "mean": statistics.fmean,
    "std": lambda values: statistics.stdev(values) if len(values) > 1 else 0.0,
    "min": min,
    "max": max,
}


def aggregate(
    rows: Iterable[dict],
    by: tuple[str, ...],
    metrics: tuple[str, ...],
    stats: tuple[str, ...] = ("mean", "std"),
) -> list[dict]:
    """Per cell (the fields `by`), over its rows (the seeds): `seeds` and `{metric}_{stat}` for each
    stat of mean, std (sample; 0 for one seed), min and max. Cells in the order first seen."""
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault(tuple(row[name] for name in by), []).append(row)
    summary = []
    for cell, group in cells.items():
        out = {**dict(zip(by, cell)), "seeds": len(group)}
        for metric in metrics:
            values = [float(r[metric]) for r in group]
            out.update({f"{metric}_{stat}": STATS[stat](values) for stat in stats})
        summary.append(out)
    return summary


def by_stage(summary: list[dict], by: tuple[str, ...], stages: tuple[str, ...] = STAGES) -> pd.DataFrame:
    """An `aggregate(..., stats=("mean", "min", "max"))` summary in long form for a chart: one row per
    (stage, cell) with the columns `stage`, the fields `by`, mean, min, max and count."""
    rows = [
        {
            "stage": stage,
            **{name: cell[name] for name in by},
            "mean": cell[f"{stage}_mean"],
            "min": cell[f"{stage}_min"],
            "max": cell[f"{stage}_max"],
            "count": cell["seeds"],
        }
        for stage in stages
        for cell in summary
    ]
    return pd.DataFrame(rows, columns=["stage", *by, "mean", "min", "max", "count"])


def largest_within(cells: list[dict], value: str, tolerance: float) -> float:
    """The largest `value` among `cells` whose fine-tuned accuracy (mean over seeds) stays within
    `tolerance` of the unpruned accuracy (the cells' mean `acc_base_mean`); 0 when none does."""
    if not cells:
        return 0.0
    reference = statistics.fmean(cell["acc_base_mean"] for cell in cells)
    return max((cell[value] for cell in cells if cell["acc_final_mean"] >= reference - tolerance), default=0.0)


def done_rows(table: pd.DataFrame) -> list[dict]:
    """The finished runs of a study's table, as rows."""
    return table[table["status"] == "done"].to_dict("records")
