"""The Random masks page through Streamlit's AppTest, on the shipped default (real runs, no mocks)."""

from test_app import charts, metrics, open_page, run_until_done, stop_jobs, values  # noqa: F401 (a fixture)


def test_masks_page_scores_n_masks_and_retrains_the_best_beside_a_median_one():
    at = open_page("pages/masks.py", granularity="kernel", mask_ratio="60", n_masks="4", finetune_epochs="1")
    assert not at.exception
    run_until_done(at, "masks_job")
    assert not at.exception and not at.error

    shown = metrics(at)
    assert shown["Weights gone"] == "60.0%"
    assert shown["Best, retrained"].endswith("%") and shown["Median, retrained"].endswith("%")
    figures = charts(at)
    histogram = figures["Validation accuracy of the 4 random masks, before retraining"]
    assert len(values(histogram.data[0].x)) == 4
    marked = [shape for shape in histogram.layout.shapes if shape.line.dash != "dash"]
    assert len(marked) == 3  # best, median, worst
    best = max(values(histogram.data[0].x))
    assert max(shape.x0 for shape in marked) == best

    recovery = figures["Recovery while fine-tuning"]
    assert {trace.name: values(trace.x) for trace in recovery.data} == {"best": [0, 1], "median": [0, 1]}
    conv2 = figures["conv2: 60% of its weights removed"]
    assert len(values(conv2.data[0].z)) == 100  # 20 inputs x 5 rows of every kernel
    assert "conv1: 60% of its weights removed" in figures
    assert at.query_params["n_masks"] == "4"


def test_feature_maps_are_cut_out_for_real_and_a_setting_seen_comes_back_from_the_store():
    at = open_page("pages/masks.py", granularity="feature-map", mask_ratio="40", n_masks="3", finetune_epochs="1")
    run_until_done(at, "masks_job")
    assert not at.exception
    assert any("cut out for real" in caption.value for caption in at.caption)
    assert "conv1: 40% of its weights removed" in charts(at)
    first = metrics(at)["Best, retrained"]

    at.selectbox(key="granularity").set_value("intra-kernel").run()  # a new setting starts a job...
    assert at.session_state["masks_job"][1] is not None
    at.selectbox(key="granularity").set_value("feature-map").run()  # ...and one already seen comes back at once
    assert not at.get("progress")
    assert metrics(at)["Best, retrained"] == first
