"""History-based filter pruning: filters whose norms moved alike are paired, drawn together, one of each pruned."""

from dataclasses import replace

import streamlit as st

from plasticity.errors import PlasticityError
from plasticity.hbfp_views import (
    distance_matrix,
    first_round_pairs,
    pairs_table,
    rounds_table,
    steps_table,
    trajectory_table,
)
from plasticity.jobs import JobState, runs_work
from plasticity.pruning.pairs import DROP_RULES
from plasticity.runs import Base
from plasticity.runs.hbfp import STEPS, HbfpConfig, stored_rounds
from ui import jobs, limits, widgets
from ui.charts import hbfp as charts
from ui.plain import plain

config, device = widgets.sidebar()
base = widgets.base_or_stop(config, device)
store = widgets.run_store()


@st.cache_data(show_spinner=False, max_entries=64)
def preview_pairs(_base: Base, base_key: str, device: str, round_ratio: float) -> list[dict]:
    return first_round_pairs(_base, HbfpConfig(_base.config, round_ratio=round_ratio))


st.title("History-based filter pruning (HBFP)")
st.caption(
    "Filters whose l1-norms moved alike while the network trained are redundant (Basha et al. 2024). "
    "Each round pairs the closest filters of every layer by their norm histories, trains with a term that pulls "
    "each pair's norms together, prunes one filter of each pair for real, and retrains. Rounds go on until the "
    "validation accuracy falls more than the threshold below the best; the last model within it is kept."
)
# Two rows of four: at 1280 px, six columns cut a label and the rule picked ("lower-impo...").
ratio_col, optimise_col, retrain_col, strength_col = st.columns([3, 2, 2, 2])
with ratio_col:
    round_percent = widgets.kept(
        st.slider,
        "Filters pruned a round (% of each layer)",
        min_value=5,
        max_value=50,
        step=5,
        format="%d%%",
        key="round_ratio",
        default={"value": 10},
    )
with optimise_col:
    optimise_epochs = widgets.kept(
        st.number_input,
        "Optimisation epochs",
        min_value=0,
        max_value=limits.epochs(10),
        key="optimise_epochs",
        default={"value": 2},
    )
with retrain_col:
    retrain_epochs = widgets.kept(
        st.number_input,
        "Retraining epochs",
        min_value=0,
        max_value=limits.epochs(10),
        key="retrain_epochs",
        default={"value": 2},
    )
with strength_col:
    strength = widgets.kept(
        st.select_slider,
        "Pull strength (lambda)",
        options=["0", "0.0001", "0.0003", "0.001", "0.003"],
        key="strength",
        default={"value": "0.0003"},
        help="lambda x sum over pairs of |l1(filter a) - l1(filter b)| is added to the loss while optimising.",
    )
drop_col, stop_col, rounds_col, baselines_col = st.columns([2, 2, 2, 3])
with drop_col:
    drop = widgets.kept(
        st.selectbox,
        "Filter of a pair pruned",
        DROP_RULES.names(),
        key="drop",
        default={},
        help="lower-importance: the one with the smaller l1-norm after optimisation (the paper's 'importance'); "
        "larger-cumulative: the one whose norms summed over the history are larger (the authors' code).",
    )
with stop_col:
    threshold = widgets.kept(
        st.select_slider,
        "Stop at a drop of (points)",
        options=["0.5", "1", "2", "3", "5"],
        key="threshold",
        default={"value": "1"},
    )
with rounds_col:
    max_rounds = widgets.kept(
        st.number_input, "At most rounds", min_value=1, max_value=30, key="max_rounds", default={"value": 30}
    )
with baselines_col:
    baselines = widgets.kept(
        st.toggle,
        "Also run l1 and random",
        key="baselines",
        default={"value": False},
        help="Also run l1 and random through the same rounds: the same filters per layer and round, the same "
        "epochs; only the choice of filters differs.",
    )

try:
    hbfp_config = HbfpConfig(
        base.config,
        "hbfp",
        round_percent / 100,
        int(optimise_epochs),
        int(retrain_epochs),
        float(strength),
        drop,
        float(threshold) / 100,
        int(max_rounds),
    )
except PlasticityError as exc:
    st.error(plain(exc))
    st.stop()
configs = {"hbfp": hbfp_config}
if baselines:
    configs |= {name: replace(hbfp_config, criterion=name) for name in ("l1", "random")}

wanted = tuple(c.key for c in configs.values())
missing = [name for name, c in configs.items() if not store.done(c.key)]
job = jobs.run_and_stop(
    "hbfp_job",
    wanted,
    lambda: jobs.start(f"HBFP rounds at {round_percent}% a round", runs_work(configs, store, device, base)),
    label=f"Run the rounds ({', '.join(missing)})" if missing else "Every round is done",
    run_key="run_rounds",
    stop_key="stop_rounds",
)


def show_rounds(state: JobState | None) -> None:
    jobs.show_progress(state)
    rounds = {name: stored_rounds(c, store) for name, c in configs.items()}
    if not any(rounds.values()):
        st.info("No round has run yet with these settings: press the button above.")
        return
    table = rounds_table(rounds, base.result)
    chart_col, table_col = st.columns([3, 2])
    with chart_col:
        widgets.show_chart(charts.hbfp_rounds_chart(table, base.result["acc"]), "hbfp-rounds")
    with table_col:
        for name, c in configs.items():
            if run := store.done(c.key):
                r = run.result
                st.markdown(
                    f"**{name}** kept round {r['final_round']}: {r['macs_reduction']:.1%} of MACs removed, "
                    f"accuracy {r['acc_base']:.1%} → {r['acc_final']:.1%} ({r['seconds']:.0f} s). "
                    f"Stopped: {plain(r['stop_reason'])}."
                )
        st.dataframe(
            table.drop(columns=["macs"]),
            key="rounds_table",
            hide_index=True,
            column_config={
                "ratio": widgets.percent_column("filters pruned"),
                "macs_reduction": widgets.percent_column("MACs removed"),
                "acc_pruned": widgets.percent_column("just pruned"),
                "acc_final": widgets.percent_column("retrained"),
                "acc_val_final": widgets.percent_column("validation"),
                "within_threshold": st.column_config.CheckboxColumn("kept by the stop rule"),
            },
        )


jobs.follow(job, show_rounds)

st.subheader("Step through a round")
rounds = stored_rounds(hbfp_config, store)
layers = list(base.history.width)
layer_col, round_col, _ = st.columns([1, 2, 4])
step_col = st.container()  # a row of its own: beside the pickers at 1280 px it cut "after retraining"
with layer_col:
    layer = widgets.kept(st.selectbox, "Layer", layers, key="layer", default={})
if rounds:
    with round_col:
        round_index = widgets.kept(
            st.selectbox,
            "Round",
            list(range(1, len(rounds) + 1)),
            key="round",
            default={},
            format_func=lambda r: f"round {r}: {rounds[r - 1]['ratio']:.0%} of filters pruned",
        )
    with step_col:
        step = widgets.kept(
            st.segmented_control, "Step", list(STEPS), key="step", default={"default": STEPS[1]}, required=True
        )
    row = rounds[round_index - 1]
    before = base.history if round_index == 1 else store.history(hbfp_config.round_key(round_index - 1))
    after = store.history(hbfp_config.round_key(round_index))
    pairs = pairs_table(row["pairs"])
    steps = steps_table(row)
    at = STEPS.index(step)
    metrics = st.columns(4)
    for i, (column, values) in enumerate(zip(metrics, steps.itertuples())):
        delta = None if i == 0 else f"{(values.acc - steps.acc[i - 1]) * 100:+.1f} points"
        column.metric(
            ("▶ " if i == at else "") + values.step,
            f"{values.acc:.1%}",
            delta,
            border=i == at,
            help="test accuracy",
        )
        column.caption(f"{values.macs:,} MACs, {values.params:,} parameters")
else:
    st.info(
        "The rounds have not run yet: here are the pairs the first round takes from the base's history. "
        "Run the rounds to step through them: before optimisation, after it, after pruning, after retraining."
    )
    row, before, after = None, base.history, base.history
    pairs = pairs_table(preview_pairs(base, base.config.key, device, hbfp_config.round_ratio))

ours = pairs[pairs["layer"] == layer]
heat_col, list_col = st.columns([3, 2])
with heat_col:
    widgets.show_chart(charts.pair_distance_heatmap(distance_matrix(before, layer), pairs, layer), "hbfp-distances")
with list_col:
    st.markdown(f"**{len(ours)} pairs chosen in `{layer}`**, closest first")
    not_yet_run = ["gap_before", "gap_after", "dropped"] if row is None else []
    st.dataframe(
        ours.drop(columns=["layer", "a", "b", *not_yet_run]),
        key="pairs_table",
        hide_index=True,
        column_config={
            "distance": st.column_config.NumberColumn("history distance", format="%.2f"),
            "gap_before": st.column_config.NumberColumn("l1 gap before", format="%.3f"),
            "gap_after": st.column_config.NumberColumn("after optimising", format="%.3f"),
            "dropped": st.column_config.NumberColumn("pruned filter", format="%d"),
        },
    )

if ours.empty:
    st.info(f"This round pairs no filters in {layer}.")
    st.stop()
pair_label = widgets.kept(st.selectbox, "Pair to draw", list(ours["pair"]), key="pair", default={})
chosen = ours[ours["pair"] == pair_label].iloc[0]
pair = (int(chosen["a"]), int(chosen["b"]))
if row is None:
    table = trajectory_table(after, layer, list(pair))
    fig = charts.pair_trajectory_chart(table, pair, [])
else:
    epochs = [s["epoch"] for s in row["steps"]]
    phases = [(epochs[0], epochs[1], "optimisation"), (epochs[2], epochs[3], "retraining")]
    shown = [(start, end, name) for start, end, name in phases if end <= epochs[at] and end > start]
    table = trajectory_table(after, layer, list(pair), up_to_point=row["steps"][at]["point"])
    dropped = int(chosen["dropped"]) if at >= 2 else None
    fig = charts.pair_trajectory_chart(table, pair, shown, (epochs[at], step), dropped)
    gap_before, gap_after = chosen["gap_before"], chosen["gap_after"]
    st.caption(
        f"Optimising pulled the pair's l1-norms from {gap_before:.3f} apart to {gap_after:.3f}; "
        f"pruning then removes filter {int(chosen['dropped'])} ({hbfp_config.drop} rule). A layer after a pruned "
        "one loses the weights that read the pruned filters, so its norms drop at pruning too."
    )
widgets.show_chart(fig, "hbfp-pair")
