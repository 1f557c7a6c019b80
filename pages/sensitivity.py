"""Layer sensitivity: every prunable group pruned alone at each ratio, by the criterion and by random."""

import streamlit as st

from plasticity.errors import PlasticityError
from plasticity.jobs import JobState
from plasticity.studies.sensitivity import STALE, Sensitivity
from ui import jobs, limits, widgets
from ui.budget import budget_section
from ui.charts.sensitivity import sensitivity_heatmaps, sensitivity_lines
from ui.plain import plain

config, device = widgets.sidebar()
base = widgets.base_or_stop(config, device)

st.title("Layer sensitivity")
st.caption(
    "Each prunable group is pruned alone, every other layer untouched: a residual stage's coupled convs "
    "are one group and lose the same filters. Where random pruning hurts as much as the criterion, the "
    "layer's loss is its lost width, not the criterion's choice."
)
criterion_col, ratios_col, seeds_col, epochs_col, bn_col = st.columns([2, 3, 1, 1, 1])
with criterion_col:
    criterion = widgets.criterion_select(base)
with ratios_col:
    ratios = widgets.ratios_select("sensitivity_ratios", [25, 50, 75])
with seeds_col:
    seeds = widgets.seeds_input("sensitivity_seeds", 1)
with epochs_col:
    epochs = widgets.kept(
        st.number_input,
        "Fine-tuning epochs",
        min_value=0,
        max_value=limits.epochs(10),
        key="sensitivity_finetune_epochs",
        default={"value": 0},
    )
with bn_col:
    recalibrate = widgets.kept(
        st.number_input,
        "BatchNorm batches",
        min_value=0,
        max_value=100,
        key="recalibrate_bn",
        default={"value": 0},
        help="Training batches that re-estimate BatchNorm statistics right after pruning (0: keep the base's)",
    )

if not ratios:
    st.warning("Pick at least one ratio.")
    st.stop()

store = widgets.run_store()
try:
    study = Sensitivity(base.config, (criterion, "random"), ratios, seeds, int(epochs), recalibrate_bn=int(recalibrate))
except PlasticityError as exc:
    st.error(plain(exc))
    st.stop()
job = jobs.study_job(
    "sensitivity_job", study, f"Sensitivity of {criterion}", store, device, run_key="run_missing", stop_key="stop"
)

STAGES = {"acc_pruned": "right after pruning", "acc_final": "after fine-tuning"}


def show_sensitivity(state: JobState | None) -> None:
    jobs.show_progress(state)
    table = study.table(store)
    jobs.show_failures(table)
    if not (table["status"] == "done").any():
        st.info("No run of this analysis is done yet: press the button above to run them.")
    else:
        stage = "acc_final" if epochs else "acc_pruned"
        what = STAGES[stage]
        grids = {name: study.heatmap(table, name, stage) for name in study.criteria}
        widgets.show_chart(sensitivity_heatmaps(grids, what), "layer-sensitivity")
        if recalibrate:
            stale = {
                f"{criterion}, the base's BatchNorm statistics": study.heatmap(table, criterion, STALE),
                f"{criterion}, recalibrated on {recalibrate} batches": study.heatmap(table, criterion, "acc_pruned"),
            }
            widgets.show_chart(sensitivity_heatmaps(stale, "right after pruning"), "batchnorm-recalibration")
        lines = study.lines(table)
        layers = [group.root for group in study.groups()]
        widgets.show_chart(sensitivity_lines(lines[lines["stage"] == stage], layers, what), "sensitivity-lines")
    shown = [name for name in study.columns if name != STALE or recalibrate]
    st.dataframe(
        table[shown],
        key="sensitivity",
        hide_index=True,
        column_config={
            "ratio": widgets.percent_column("ratio"),
            "acc_base": widgets.percent_column("base accuracy"),
            STALE: widgets.percent_column("just pruned, base's BatchNorm"),
            "acc_pruned": widgets.percent_column("just pruned"),
            "acc_final": widgets.percent_column("after fine-tuning"),
            "macs_pruned": st.column_config.NumberColumn("MACs", format="localized"),
        },
    )
    st.download_button(
        "Download the table as CSV",
        table.to_csv(index=False),
        file_name="layer-sensitivity.csv",
        mime="text/csv",
        key="download_csv",
        on_click="ignore",
    )


jobs.follow(job, show_sensitivity)
budget_section(base, criterion, ratios, int(recalibrate), store, device)
