"""Prune & recover: prune the base, see the accuracy drop at once, and the recovery curve grow."""

from dataclasses import replace

import streamlit as st

from plasticity.errors import PlasticityError
from plasticity.jobs import JobState, prepare_work
from plasticity.runs import PruneConfig
from plasticity.views import channels_table, cost_table, measured_under_load, recovery_table
from ui import jobs, widgets
from ui.charts import prune as charts
from ui.export import download_buttons

config, device = widgets.sidebar()
base = widgets.base_or_stop(config, device)

st.title("Prune & recover")
st.caption(
    "Remove a share of the filters of every conv layer, then fine-tune and watch the accuracy come back. "
    "Random pruning runs beside the chosen criterion on the same base with the same budget."
)
ratio_col, criterion_col, epochs_col, mask_col = st.columns([3, 2, 2, 2])
with ratio_col:
    ratio = widgets.ratio_slider()
with criterion_col:
    criterion = widgets.criterion_select()
with epochs_col:
    epochs = widgets.finetune_epochs_slider()
with mask_col:
    show_mask = widgets.kept(
        st.toggle,
        "Also prune by masking only",
        key="mask",
        default={"value": False},
        help="Zero the filters instead of removing them: same accuracy, but the model is as slow as before.",
    )

try:
    runs = {
        criterion: PruneConfig(base.config, criterion, ratio, 0, epochs),
        "random": PruneConfig(base.config, "random", ratio, 0, epochs),
    }
    if show_mask:
        runs[f"{criterion}, masked"] = PruneConfig(base.config, criterion, ratio, 0, epochs, mode="mask")
except PlasticityError as exc:
    st.error(str(exc))
    st.stop()

store = widgets.run_store()
label = f"Pruning {ratio:.0%} with {criterion} and random"
finished, job, fresh = jobs.follow_runs("prune_job", runs, store, device, base, label)
if fresh:
    _, preparing = st.session_state.pop("prepare_job", ((), None))
    if preparing is not None:
        preparing.cancel()  # its CPU is this view's now
    if job is not None:
        # Pruning and evaluating takes a fraction of a second: wait for it, so this very rerun shows the
        # pruned accuracies rather than the next refresh of the live view.
        job.wait_for(lambda state: all(name in state.results for name in runs), timeout=widgets.PROMPT_SECONDS)

if job is None or job.snapshot().done:
    # The view is complete: prune the slider's neighbouring positions ahead, in the background, so a
    # step of the slider shows its pruned accuracies at once (runs stay in memory until asked for).
    percent = round(ratio * 100)
    steps = [(percent + step) / 100 for step in (5, -5) if 0 <= percent + step <= 95]
    neighbours = [replace(run, ratio=near) for near in steps for run in runs.values()]
    prepared_for = tuple(run.key for run in neighbours)
    if st.session_state.get("prepare_job", ((), None))[0] != prepared_for:
        st.session_state["prepare_job"] = (prepared_for, jobs.start("Preparing", prepare_work(neighbours, store, base)))


def show_results(state: JobState | None) -> None:
    results = {**(state.results if state else {}), **finished}
    if state is not None and state.running:
        st.progress(state.progress, text=state.message or "pruning")
    if jobs.show_problem(state):
        jobs.retry_button("prune_job")
    metrics = st.columns(1 + 2 * len(runs))
    metrics[0].metric("Before pruning", f"{base.result['acc']:.1%}")
    for i, name in enumerate(runs):
        result = results.get(name)
        pruned = f"{result['acc_pruned']:.1%}" if result else "..."
        final = f"{result['acc_final']:.1%}" if result and result["acc_final"] is not None else "..."
        metrics[1 + 2 * i].metric(f"{name}: just pruned", pruned)
        metrics[2 + 2 * i].metric(f"{name}: after {epochs} epochs", final)
    shown = {name: results[name] for name in runs if name in results}
    if not shown:
        return
    curve_col, bars_col = st.columns([3, 2])
    points = tuple((name, result["key"], len(result["curve"])) for name, result in shown.items())  # what is drawn
    with curve_col:
        recovery = widgets.memo(
            "recovery",
            (points, epochs, base.config.key),
            lambda: charts.recovery_chart(recovery_table(shown), base.result["acc"], epochs),
        )
        widgets.show_chart(recovery, "recovery")
    with bars_col:
        channels = widgets.memo(
            "filters-kept", tuple(key for _, key, _ in points), lambda: charts.channels_chart(channels_table(shown))
        )
        widgets.show_chart(channels, "filters-kept")
    st.subheader("Cost before and after")
    st.caption(
        "Latency: the median time of a forward pass over 256 images, measured once a run has fine-tuned "
        "(the architecture no longer changes), the base's and the pruned model's in turn, repeat after repeat."
    )
    if measured_under_load(shown):
        st.caption(
            "Some latency was measured under load (its repeats spread by more than 15%): "
            "those figures are left out, since they would not compare."
        )
    st.dataframe(widgets.formatted_costs(cost_table(shown)), key="costs")
    if state is None or not state.running:
        download_buttons({name: result["key"] for name, result in shown.items()}, store)
    if show_mask:
        st.caption(
            "Masking zeroes the same filters that removal cuts out, so right after pruning the accuracy is the same, "
            "but the layers keep their shape: the same MACs and no gain in latency."
        )


jobs.follow(job, show_results)
