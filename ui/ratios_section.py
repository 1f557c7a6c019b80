"""Prune & recover's section "Several ratios on one chart": the recovery curves of a few ratios (30%, 60%
and 90% by default) together, read from the run store, on axes that do not move when the ratios change."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from plasticity.errors import PlasticityError
from plasticity.jobs import JobState
from plasticity.runs import Base
from plasticity.store import RunStore
from plasticity.studies import Comparison
from plasticity.views import recovery_table
from ui import jobs, widgets
from ui.charts.prune import ratios_chart
from ui.plain import plain


def ratios_section(base: Base, criterion: str, epochs: int, schedule: str, store: RunStore, device: str) -> None:
    """The ratios picker, the button that runs the missing ones, and their curves on one chart."""
    st.subheader("Several ratios on one chart")
    st.caption(
        "The page's criterion and random at each ratio, with the same fine-tuning, on axes fixed whatever the "
        "ratios: 0 to 100% and every epoch. The runs are the slider's: a ratio already run is read from the store."
    )
    percents = widgets.kept(
        st.multiselect,
        "Ratios (%)",
        list(range(5, 100, 5)),
        key="overlay_ratios",
        default={"default": [30, 60, 90]},
    )
    if not percents:
        st.warning("Pick at least one ratio.")
        return
    try:
        ratios = sorted(p / 100 for p in percents)
        study = Comparison(
            base.config, (criterion, "random"), ratios, (0,), epochs, base_seed=base.config.seed, schedule=schedule
        )
    except PlasticityError as exc:
        st.error(plain(exc))
        return
    title = f"Recovery at {len(percents)} ratios"
    job = jobs.study_job("ratios_job", study, title, store, device, run_key="run_ratios", stop_key="stop_ratios")

    def show_ratios(state: JobState | None) -> None:
        jobs.show_progress(state)
        curves = curves_of(study, store)
        if curves.empty:
            st.info("None of these runs is done yet: press the button above to run them.")
            return
        widgets.show_chart(ratios_chart(curves, base.result["acc"], epochs), "recovery-at-several-ratios")

    jobs.follow(job, show_ratios)


def curves_of(study: Comparison, store: RunStore) -> pd.DataFrame:
    """The recovery curves of the study's done runs, with their `ratio` and `criterion`."""
    tables = [
        recovery_table({planned.config.key: run.result}).assign(
            ratio=planned.config.ratio, criterion=planned.config.criterion
        )
        for planned in study.plan()
        if (run := store.done(planned.config.key))
    ]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
