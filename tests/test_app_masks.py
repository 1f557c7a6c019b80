"""The Random masks page through Streamlit's AppTest, on the shipped default (real runs, no mocks)."""

from test_app import charts, metrics, open_page, run_until_done, stop_jobs, values  # noqa: F401 (a fixture)


def test_masks_page_scores_n_masks_and_retrains_the_best_beside_a_median_one():
    at = open_page("pages/masks.py", granularity="kernel", mask_ratio="60", n_masks="4", finetune_epochs="1")
    assert not at.exception
    assert "masks_job" not in at.session_state  # a visit or a link starts nothing: the button does
    at.button(key="run_masks").click().run()
    run_until_done(at, "masks_job")
    assert not at.exception and not at.error

    shown = metrics(at)
    assert shown["Weights gone"] == "60.0%"
    assert shown["Best, retrained"].endswith("%") and shown["Median, retrained"].endswith("%")
    figures = charts(at)
    histogram = figures["Validation accuracy of the 4 random masks, before retraining"]
    assert len(values(histogram.data[0].x)) == 4
    marked = {trace.name.split()[0]: trace for trace in histogram.data[1:]}
    assert list(marked) == ["best", "median", "worst", "before"]  # named in the legend, not over the bars
    assert values(marked["best"].x)[0] == max(values(histogram.data[0].x))
    counts = histogram.layout.yaxis
    assert counts.tickformat == "d" and counts.dtick >= 1  # whole masks on the count axis

    recovery = figures["Recovery while fine-tuning"]
    curves = {trace.name: trace for trace in recovery.data if not trace.name.startswith("before")}
    assert {name: values(trace.x) for name, trace in curves.items()} == {"best": [0, 1], "median": [0, 1]}
    for name in ("best", "median"):  # one colour per mask in both charts
        assert curves[name].line.color == marked[name].line.color
    conv2 = figures["conv2: 60% of its weights removed"]
    assert len(values(conv2.data[0].z)) == 100  # 20 inputs x 5 rows of every kernel
    assert "conv1: 60% of its weights removed" in figures
    assert at.query_params["n_masks"] == "4"


def test_feature_maps_are_cut_out_for_real_and_a_setting_seen_comes_back_from_the_store():
    at = open_page("pages/masks.py", granularity="feature-map", mask_ratio="40", n_masks="3", finetune_epochs="1")
    at.button(key="run_masks").click().run()
    run_until_done(at, "masks_job")
    assert not at.exception
    assert any("cut out for real" in caption.value for caption in at.caption)
    assert "conv1: 40% of its weights removed" in charts(at)
    first = metrics(at)["Best, retrained"]

    at.selectbox(key="granularity").set_value("intra-kernel").run()  # a new setting waits for the button...
    assert at.button(key="run_masks").label == "Score 3 masks and retrain two"
    at.selectbox(key="granularity").set_value("feature-map").run()  # ...and one already seen comes back at once
    assert not at.get("progress")
    assert metrics(at)["Best, retrained"] == first
