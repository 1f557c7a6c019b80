"""Prune & recover: prune the base, see the accuracy drop at once, and the recovery curve grow."""

from dataclasses import replace

import streamlit as st

from plasticity.errors import PlasticityError
from plasticity.jobs import JobState, prepare_work
from plasticity.pruning.cost import count_nonzero
from plasticity.runs import PruneConfig
from plasticity.views import channels_table, cost_table, measured_under_load, recovery_table
from ui import jobs, widgets
from ui.charts import prune as charts
from ui.export import download_buttons
from ui.plain import plain
from ui.ratios_section import ratios_section

PINNED = "pinned_runs"  # the session's pinned recovery curves: label -> run key

config, device = widgets.sidebar()
base = widgets.base_or_stop(config, device)

st.title("Prune & recover")
st.caption(
    "Remove a share of the filters of every conv layer, then fine-tune and watch the accuracy come back. "
    "Random pruning runs beside the chosen criterion on the same base with the same budget."
)
ratio_col, criterion_col, epochs_col, schedule_col = st.columns([3, 2, 2, 2])
with ratio_col:
    ratio = widgets.ratio_slider()
with criterion_col:
    criterion = widgets.criterion_select(base)
with epochs_col:
    epochs = widgets.finetune_epochs_slider()
with schedule_col:
    schedule = widgets.schedule_select(epochs)
lock_col, pin_col, clear_col, mask_col = st.columns([3, 2, 2, 2])  # at 1280 px a fifth column cut its label
with mask_col:
    show_mask = widgets.kept(
        st.toggle,
        "Also by masking",
        key="mask",
        default={"value": False},
        help="Also prune by masking only: zero the filters instead of removing them. Same accuracy, but the "
        "model is as slow as before.",
    )

try:
    runs = {
        criterion: PruneConfig(base.config, criterion, ratio, 0, epochs, schedule=schedule),
        "random": PruneConfig(base.config, "random", ratio, 0, epochs, schedule=schedule),
    }
    if show_mask:
        runs[f"{criterion}, masked"] = PruneConfig(base.config, criterion, ratio, 0, epochs, mode="mask")
except PlasticityError as exc:
    st.error(plain(exc))
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


def prepare_next_steps() -> None:
    """Once the pruned accuracies are on screen, prune the slider's neighbouring positions ahead, in the
    background, so a step of the slider shows its pruned accuracies at once (the runs stay in memory until
    asked for). Not waiting for the fine-tuning: in a busy class it waits its turn, and a student moves on."""
    percent = round(ratio * 100)
    steps = [(percent + step) / 100 for step in (5, -5) if 0 <= percent + step <= 95]
    neighbours = [replace(run, ratio=near) for near in steps for run in runs.values()]
    prepared_for = tuple(run.key for run in neighbours)
    if st.session_state.get("prepare_job", ((), None))[0] != prepared_for:
        st.session_state["prepare_job"] = (prepared_for, jobs.start("Preparing", prepare_work(neighbours, store, base)))


def pin(runs: dict[str, PruneConfig]) -> None:
    """Keep the recovery curves on screen on the chart while the slider moves on."""
    pinned = st.session_state.setdefault(PINNED, {})
    for name, run in runs.items():
        pinned[f"{name}, {run.ratio:.0%}, {run.finetune_epochs} epochs (pinned)"] = run.key


def pinned_curves() -> dict[str, dict]:
    """The pinned runs that are done and not on screen anyway, by their label."""
    on_screen = {run.key for run in runs.values()}
    pinned = st.session_state.get(PINNED, {}).items()
    return {label: run.result for label, key in pinned if key not in on_screen and (run := store.done(key))}


with lock_col:
    fixed_y = widgets.kept(
        st.toggle,
        "Same y axis at every ratio",
        key="fixed_y",
        default={"value": True},
        help="On: 0 to 100% whatever the ratio, so that curves compare by eye. Off: zoomed to the curves.",
    )
pin_col.button("Pin these curves", key="pin", on_click=pin, args=(runs,), help="Keep them on the chart to compare")
unpin = {"on_click": st.session_state.pop, "args": (PINNED, None), "disabled": PINNED not in st.session_state}
clear_col.button("Clear the pinned", key="unpin", **unpin)


def show_results(state: JobState | None) -> None:
    results = {**(state.results if state else {}), **finished}
    if state is not None and state.running:
        st.progress(state.progress, text=plain(state.message or "pruning"))
    if jobs.show_problem(state):
        jobs.retry_button("prune_job")
    # Two rows (just pruned, then fine-tuned), one column per run: in one row of seven, the labels were cut.
    just_pruned, fine_tuned = st.columns(1 + len(runs)), st.columns(1 + len(runs))
    just_pruned[0].metric("Before pruning", f"{base.result['acc']:.1%}")
    for i, name in enumerate(runs, start=1):
        result = results.get(name)
        pruned = f"{result['acc_pruned']:.1%}" if result else "..."
        final = f"{result['acc_final']:.1%}" if result and result["acc_final"] is not None else "..."
        just_pruned[i].metric(f"{name}: just pruned", pruned)
        fine_tuned[i].metric(f"{name}: after {epochs} epochs", final)
    shown = {name: results[name] for name in runs if name in results}
    if not shown:
        return
    if len(shown) == len(runs):
        prepare_next_steps()  # the first drawing (full rerun or live redraw) that has every pruned accuracy
    curve_col, bars_col = st.columns([3, 2])
    points = tuple((name, result["key"], len(result["curve"])) for name, result in shown.items())  # what is drawn
    pinned = pinned_curves()
    y_range = (0, 100.5) if fixed_y else None
    with curve_col:
        recovery = widgets.memo(
            "recovery",
            (points, epochs, base.config.key, y_range, tuple(pinned)),
            lambda: charts.recovery_chart(
                recovery_table(shown), base.result["acc"], epochs, y_range, recovery_table(pinned) if pinned else None
            ),
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
    nonzero = widgets.memo("base-nonzero", base.config.key, lambda: count_nonzero(base.model))
    measured = tuple(
        (r["key"], r["acc_final"], r.get("latency_ms_pruned"), r.get("latency_under_load")) for r in shown.values()
    )
    costs = widgets.memo("costs", (measured, nonzero), lambda: widgets.formatted_costs(cost_table(shown, nonzero)))
    st.dataframe(costs, key="costs")
    if state is None or not state.running:
        download_buttons({name: result["key"] for name, result in shown.items()}, store)
    if show_mask:
        st.caption(
            "Masking zeroes the same filters that removal cuts out, so right after pruning the accuracy is the same, "
            "but the layers keep their shape: the same MACs and no gain in latency."
        )


jobs.follow(job, show_results)
ratios_section(base, criterion, epochs, schedule, store, device)
