"""The History-based pruning page through Streamlit's AppTest, on the shipped default (real rounds, no mocks)."""

import numpy as np
from test_app import charts, metrics, open_page, run_until_done, stop_jobs, values  # noqa: F401 (a fixture)

ONE_SMALL_ROUND = {"round_ratio": "25", "optimise_epochs": "1", "retrain_epochs": "1", "max_rounds": "1"}
DISTANCES = "Pair distances in conv2: sum over epochs of |l1(i) - l1(j)|"
CLOSEST_PAIR = "Filters 20 and 28 over training"  # conv2's closest pair in the shipped base's history


def test_before_any_round_the_page_shows_the_first_rounds_pairs():
    at = open_page("pages/hbfp.py", layer="conv2", **ONE_SMALL_ROUND)
    assert not at.exception and not at.error
    assert at.button(key="run_rounds").label == "Run the rounds (hbfp)"
    figures = charts(at)
    heatmap = figures[DISTANCES]
    assert np.shape(values(heatmap.data[0].z)) == (50, 50)
    assert len(values(heatmap.data[1].x)) == 2 * 13  # a quarter of 50 filters: 13 pairs, boxed on both sides
    pairs = at.dataframe[0].value
    assert len(pairs) == 13 and pairs["pair"].iloc[0] == "20 & 28"
    assert pairs["distance"].is_monotonic_increasing
    trajectories = figures[CLOSEST_PAIR]
    assert [trace.name for trace in trajectories.data] == ["filter 20", "filter 28"]
    assert values(trajectories.data[0].x) == list(range(13))  # the base's 12 epochs and its initialisation


def test_a_round_runs_and_can_be_stepped_through():
    at = open_page("pages/hbfp.py", layer="conv2", **ONE_SMALL_ROUND)
    at.button(key="run_rounds").click().run()
    run_until_done(at, "hbfp_job", timeout=180)
    assert not at.exception and not at.error
    assert at.button(key="run_rounds").label == "Every round is done"

    overview = charts(at)["Rounds: accuracy against the MACs removed"]
    retrained = next(trace for trace in overview.data if trace.name == "hbfp: retrained")
    removed = values(retrained.x)
    assert len(removed) == 2 and removed[0] == 0 and removed[1] > 30  # the base, then round 1
    rounds = at.dataframe[0].value
    assert list(rounds["round"]) == [0, 1] and rounds["within_threshold"].all()

    shown = metrics(at)  # accuracy at every step, the chosen step (after optimisation by default) marked
    assert list(shown) == ["before optimisation", "▶ after optimisation", "after pruning", "after retraining"]
    assert all(value.endswith("%") for value in shown.values())
    macs = [caption.value for caption in at.caption if caption.value.endswith("parameters")]
    assert len(macs) == 4 and macs[0] == macs[1] != macs[2] == macs[3]  # pruning is what removes MACs

    def pair_chart(step: str):
        at.segmented_control(key="step").set_value(step).run()
        assert not at.exception
        return charts(at)[CLOSEST_PAIR]

    before = pair_chart("before optimisation")
    assert max(values(before.data[0].x)) == 12 and len(before.data) == 2
    optimised = pair_chart("after optimisation")
    assert max(values(optimised.data[0].x)) == 13
    assert [shape.fillcolor for shape in optimised.layout.shapes if shape.type == "rect"] == ["#8e44ad"]
    assert "optimisation" in [trace.name for trace in optimised.data]
    pruned = pair_chart("after pruning")
    assert "pruned here" in [trace.name for trace in pruned.data]
    retrained = pair_chart("after retraining")
    lines = {trace.name: values(trace.x) for trace in retrained.data if trace.name.startswith("filter")}
    survivor, gone = sorted(lines, key=lambda name: "(pruned)" in name)
    assert max(lines[survivor]) == 14 and max(lines[gone]) == 13  # the pruned filter's line ends at pruning
    assert metrics(at)["▶ after retraining"].endswith("%")
    assert at.query_params["step"] == "after retraining"

    link = dict(at.query_params)
    assert link["round"] == "1"  # the round itself, not its label
    reopened = open_page("pages/hbfp.py", **link)
    assert reopened.selectbox(key="round").value == 1 and not reopened.text  # no link value was ignored
    assert reopened.segmented_control(key="step").value == "after retraining"
