"""Random vs criterion: accuracy over pruning ratios and seeds, for every chosen criterion."""

import streamlit as st

from plasticity.errors import PlasticityError
from plasticity.jobs import JobState
from plasticity.studies import Comparison
from ui import jobs, widgets
from ui.charts.compare import comparison_chart
from ui.plain import plain

config, device = widgets.sidebar()
base = widgets.base_or_stop(config, device)

st.title("Random vs criterion")
st.caption(
    "Every criterion prunes the same base at every ratio, once per seed (the seed drives random pruning "
    "and fine-tuning). Lines are the mean over seeds, bands span the lowest to the highest seed."
)
criteria_col, ratios_col = st.columns(2)
seeds_col, epochs_col, schedule_col, _ = st.columns([1, 2, 2, 2])  # at 1280 px five in a row cut the labels
with criteria_col:
    criteria = widgets.criteria_select(base, "criteria", ["random", "l1"])
with ratios_col:
    ratios = widgets.ratios_select("ratios", [25, 50, 75])
with seeds_col:
    seeds = widgets.seeds_input("seeds", 2)
with epochs_col:
    epochs = widgets.finetune_epochs_slider()
with schedule_col:
    schedule = widgets.schedule_select(epochs)

if not criteria or not ratios:
    st.warning("Pick at least one criterion and one ratio.")
    st.stop()

store = widgets.run_store()
try:
    study = Comparison(base.config, criteria, ratios, seeds, epochs, base_seed=base.config.seed, schedule=schedule)
except PlasticityError as exc:
    st.error(plain(exc))
    st.stop()
job = jobs.study_job(
    "compare_job", study, f"Comparing {', '.join(criteria)}", store, device, run_key="run_missing", stop_key="stop"
)


def show_comparison(state: JobState | None) -> None:
    jobs.show_progress(state)
    table = study.table(store)
    jobs.show_failures(table)
    if (table["status"] == "done").any():
        widgets.show_chart(comparison_chart(study.chart_summary(table)), "random-vs-criterion")
    else:
        st.info("No run of this comparison is done yet: press the button above to run them.")
    st.dataframe(
        table,
        key="comparison",
        hide_index=True,
        column_config={
            "ratio": widgets.percent_column("ratio"),
            "acc_base": widgets.percent_column("base accuracy"),
            "acc_pruned": widgets.percent_column("just pruned"),
            "acc_final": widgets.percent_column("after fine-tuning"),
            "macs_pruned": st.column_config.NumberColumn("MACs", format="localized"),
            "params_pruned": st.column_config.NumberColumn("parameters", format="localized"),
            "latency_ms_pruned": st.column_config.NumberColumn("latency (ms)", format="%.1f"),
            "latency_under_load": st.column_config.CheckboxColumn("latency under load"),
        },
    )
    if table["latency_under_load"].astype("boolean").fillna(False).any():
        st.caption(
            "A ticked latency was measured under load (its repeats spread by more than 15%, other work sharing "
            "the cores): it does not compare with the others."
        )
    st.download_button(
        "Download the table as CSV",
        table.to_csv(index=False),
        file_name="random-vs-criterion.csv",
        mime="text/csv",
        key="download_csv",
        on_click="ignore",
    )
    st.caption("To save the chart as PNG, use the camera button at the top right of the chart.")


jobs.follow(job, show_comparison)
