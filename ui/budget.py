"""The Layer sensitivity page's budget section: one MACs budget spent four ways, each fine-tuned alike.

The allocations are planned from the criterion's sensitivity analysis, and planning them prunes the base
many times over to count MACs (seconds): the Run button's job does it, never a visit. A planned study is
kept for the server's lifetime, so a later visit with the same settings shows its runs from the store.
"""

from __future__ import annotations

import streamlit as st

from plasticity.jobs import JobState, chained_work
from plasticity.pruning.budget import ALLOCATIONS, GLOBAL_NORMS
from plasticity.runs import Base
from plasticity.store import RunStore
from plasticity.studies.budget import BudgetStudy, budget_analysis, budget_study
from plasticity.studies.sensitivity import STALE
from ui import jobs, limits, widgets
from ui.charts.sensitivity import budget_chart


@st.cache_resource
def _planned() -> dict[tuple, BudgetStudy]:
    """The budget studies planned on this server, by their settings (base key, criterion, the analysis's
    ratios, MACs targets, seeds, fine-tuning epochs, BatchNorm batches)."""
    return {}


def budget_section(
    base: Base, criterion: str, ratios: list[float], recalibrate_bn: int, store: RunStore, device: str
) -> None:
    """The settings, the Run and Stop buttons, the chart and the table of the budget comparison; with
    `recalibrate_bn` batches, BatchNorm statistics are re-estimated after every cut, the analysis's too."""
    st.subheader("Spending a MACs budget")
    st.caption(
        "The network is brought down to a share of its MACs four ways: per-layer ratios from the criterion's "
        "sensitivity analysis at the ratios above (seed 0, right after pruning; the least sensitive layers lose "
        "most), one ratio for every layer, Torch-Pruning's global ranking of the criterion's norms, and filters "
        "drawn at random from the whole network. Each is then fine-tuned the same way. With BatchNorm batches set "
        "above, every cut (the analysis's too) re-estimates the statistics first."
    )
    if criterion not in GLOBAL_NORMS:
        st.info(f"Torch-Pruning ranks only {' and '.join(GLOBAL_NORMS)} globally: pick one to compare budgets.")
        return
    targets_col, seeds_col, epochs_col = st.columns([3, 1, 1])
    with targets_col:
        percents = widgets.kept(
            st.multiselect,
            "MACs kept (% of the base's)",
            list(range(10, 100, 10)),
            key="budget_targets",
            default={"default": [70, 50, 30]},
        )
    with seeds_col:
        seeds = tuple(widgets.seeds_input("budget_seeds", 1))
    with epochs_col:
        epochs = widgets.kept(
            st.number_input,
            "Fine-tuning epochs",
            min_value=1,
            max_value=limits.epochs(10),
            key="budget_finetune_epochs",
            default={"value": limits.epochs(3)},
        )
    if not percents:
        st.warning("Pick at least one MACs target.")
        return
    targets = tuple(sorted(percent / 100 for percent in percents))
    limits.check_runs(len(ALLOCATIONS) * len(targets) * len(seeds))
    settings = (base.config.key, criterion, tuple(ratios), targets, seeds, int(epochs), recalibrate_bn)
    planned = _planned()

    def plan() -> BudgetStudy:  # in the job's thread, once the analysis is done
        planned[settings] = budget_study(
            base, store, criterion, tuple(ratios), targets, seeds, int(epochs), recalibrate_bn=recalibrate_bn
        )
        return planned[settings]

    analysis = budget_analysis(base.config, criterion, tuple(ratios), recalibrate_bn)
    known = planned.get(settings)
    job = jobs.run_and_stop(
        "budget_job",
        settings,
        lambda: jobs.start("Budget comparison", chained_work(analysis, plan, store, device, jobs.long_work())),
        label=jobs.missing_label(known.missing(store)) if known else "Run the budget comparison",
        run_key="run_budget",
        stop_key="stop_budget",
    )

    def show_budget(state: JobState | None) -> None:
        jobs.show_progress(state)
        study = planned.get(settings)
        if study is None:
            st.info(
                "Press the button: it runs the sensitivity analysis if it is missing, plans the four allocations "
                "from it, then prunes and fine-tunes each."
            )
            return
        table = study.table(store)
        jobs.show_failures(table)
        if (table["status"] == "done").any():
            widgets.show_chart(budget_chart(study.chart_summary(table)), "macs-budget")
        st.dataframe(
            table[[name for name in study.columns if name != STALE or recalibrate_bn]],
            key="budget",
            hide_index=True,
            column_config={
                "target": widgets.percent_column("MACs target"),
                "acc_base": widgets.percent_column("base accuracy"),
                STALE: widgets.percent_column("just pruned, base's BatchNorm"),
                "acc_pruned": widgets.percent_column("just pruned"),
                "acc_final": widgets.percent_column("after fine-tuning"),
                "macs_base": st.column_config.NumberColumn("base MACs", format="localized"),
                "macs_pruned": st.column_config.NumberColumn("MACs", format="localized"),
            },
        )

    jobs.follow(job, show_budget)
