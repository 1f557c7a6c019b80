"""Random vs criterion: accuracy over pruning ratios and seeds, for every chosen criterion."""

import streamlit as st

from plasticity.criteria import list_criteria
from plasticity.errors import PlasticityError
from plasticity.jobs import JobState, compare_work, start_job
from plasticity.views import comparison_configs, comparison_summary, comparison_table
from ui import charts, widgets

config, device = widgets.sidebar()
base = widgets.base_or_stop(config, device)

st.title("Random vs criterion")
st.caption(
    "Every criterion prunes the same base at every ratio, once per seed (the seed drives random pruning "
    "and fine-tuning). Lines are the mean over seeds, bands span the lowest to the highest seed."
)
criteria_col, ratios_col, seeds_col, epochs_col = st.columns([3, 3, 1, 2])
with criteria_col:
    criteria = widgets.kept(
        st.multiselect, "Criteria", list_criteria(), key="criteria", default={"default": ["random", "l1"]}
    )
with ratios_col:
    ratios = widgets.ratios_select("ratios", [25, 50, 75])
with seeds_col:
    seeds = widgets.seeds_input("seeds", 2)
with epochs_col:
    epochs = widgets.finetune_epochs_slider()

if not criteria or not ratios:
    st.warning("Pick at least one criterion and one ratio.")
    st.stop()

store = widgets.run_store()
try:
    configs = comparison_configs(base.config, criteria, ratios, seeds, epochs)
except PlasticityError as exc:
    st.error(str(exc))
    st.stop()

wanted = tuple(c.key for c in configs)
keys, job = st.session_state.get("compare_job", ((), None))
if keys != wanted:
    job = None
running = job is not None and job.snapshot().running
missing = sum(1 for c in configs if not ((run := store.get(c.key)) and run.status == "done"))

run_col, stop_col, _ = st.columns([2, 1, 4])
if run_col.button(
    f"Run the {missing} missing runs" if missing else "Every run is done",
    type="primary",
    disabled=running or missing == 0,
    key="run_missing",
):
    work = compare_work(
        base.config,
        criteria,
        ratios,
        seeds,
        store,
        device,
        finetune_epochs=epochs,
    )
    job = start_job(f"Comparing {', '.join(criteria)}", work)
    st.session_state["compare_job"] = (wanted, job)
if stop_col.button("Stop", disabled=job is None or not job.snapshot().running, key="stop"):
    job.cancel()


def show_comparison(state: JobState | None) -> None:
    if state is not None and state.running:
        st.progress(state.progress, text=f"{state.label}: {state.message or 'starting'}")
    widgets.show_job_problem(state)
    table = comparison_table(configs, store)
    failed = table[table["status"].str.startswith("failed")]
    for status in failed["status"].unique():
        st.warning(f"Some runs failed ({status.removeprefix('failed: ')}); running them again retries them.")
    if (table["status"] == "done").any():
        widgets.show_chart(charts.comparison_chart(comparison_summary(table)), "random-vs-criterion")
    else:
        st.info("No run of this comparison is done yet: press the button above to run them.")
    st.dataframe(
        table,
        key="comparison",
        hide_index=True,
        column_config={
            "ratio": st.column_config.NumberColumn("ratio", format="percent"),
            "acc_base": st.column_config.NumberColumn("base accuracy", format="percent"),
            "acc_pruned": st.column_config.NumberColumn("just pruned", format="percent"),
            "acc_final": st.column_config.NumberColumn("after fine-tuning", format="percent"),
            "macs_pruned": st.column_config.NumberColumn("MACs", format="localized"),
            "params_pruned": st.column_config.NumberColumn("parameters", format="localized"),
            "latency_ms_pruned": st.column_config.NumberColumn("latency (ms)", format="%.1f"),
        },
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


widgets.follow(job, show_comparison)
