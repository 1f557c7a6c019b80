"""The dashboard, page by page, through Streamlit's AppTest on the shipped default (real runs, no mocks)."""

import base64
import time
from pathlib import Path

import numpy as np
import plotly.io as pio
import pytest
from streamlit.testing.v1 import AppTest

from plasticity import jobs
from plasticity.jobs import Job, running_jobs
from plasticity.runs import PruneConfig, TrainConfig

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["pages/home.py", "pages/prune.py", "pages/norms.py", "pages/compare.py"]


def open_page(page: str, **query: str | list[str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.run()
    return at.switch_page(page).run()


def job_of(at: AppTest, name: str) -> Job | None:
    entry = at.session_state[name] if name in at.session_state else None
    return entry[1] if isinstance(entry, tuple) else entry


def run_until_done(at: AppTest, name: str, timeout: float = 90) -> AppTest:
    """Rerun the page (as the fragment's timer would) until its worker thread has finished."""
    job = job_of(at, name)
    assert job is not None, f"the page started no {name}"
    deadline = time.monotonic() + timeout
    while not job.wait(1.0):
        at.run()
        assert not at.exception
        assert time.monotonic() < deadline, f"{name} still running after {timeout} s"
    return at.run()


@pytest.fixture(autouse=True)
def stop_jobs():
    """No worker thread outlives its test (a thread still in torch at exit aborts the interpreter)."""
    yield
    for job in running_jobs():
        job.cancel()
        job.wait(60)


def charts(at: AppTest) -> dict:
    figures = [pio.from_json(chart.proto.spec) for chart in at.get("plotly_chart")]
    return {fig.layout.title.text: fig for fig in figures}


def values(array) -> list:
    """A trace's x, y or z as a list (plotly sends numeric arrays as base64 `bdata`)."""
    if isinstance(array, dict) and "bdata" in array:
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
        shape = [int(n) for n in str(array.get("shape", len(flat))).split(",")]
        return flat.reshape(shape).tolist()
    return list(array)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_the_default(page):
    at = open_page(page)
    assert not at.exception
    assert not at.error
    assert at.title[0].value
    assert at.selectbox(key="base").value == "train-" + at.selectbox(key="base").value.removeprefix("train-")


def test_home_shows_the_default_base_and_a_filter_norm_picture():
    at = open_page("pages/home.py")
    assert metrics(at)["Test accuracy"].endswith("%")
    assert "lenet5 on mnist\\-5k" in at.subheader[0].value  # escaped: a base's name is never Markdown
    assert metrics(at)["Latency (256 images)"].endswith(" ms")
    svg = base64.b64decode(at.get("image")[0].proto.imgs[0].url.removeprefix("data:image/svg+xml;base64,")).decode()
    assert "l1-norm of every conv1 filter while the base trained" in svg
    assert svg.count("<polyline") == 20  # the shipped LeNet-5 has 20 conv1 filters


def test_moving_the_ratio_shows_pruned_accuracy_then_streams_the_recovery_curve():
    at = open_page("pages/prune.py", finetune_epochs="2")
    run_until_done(at, "prune_job")  # the default view's runs
    at.slider(key="ratio").set_value(35).run()
    assert not at.exception
    run_until_done(at, "prune_job")

    shown = metrics(at)
    assert shown["l1: just pruned"].endswith("%") and shown["random: just pruned"].endswith("%")
    assert shown["l1: after 2 epochs"].endswith("%") and shown["random: after 2 epochs"].endswith("%")
    recovery = charts(at)["Recovery while fine-tuning"]
    curves = {trace.name: values(trace.x) for trace in recovery.data if not trace.name.startswith("before")}
    assert curves == {"l1": [0, 1, 2], "random": [0, 1, 2]}  # just pruned, then one point per epoch
    kept = {trace.name: values(trace.y) for trace in charts(at)["Filters kept per layer"].data}
    assert kept["before pruning"] == [20, 50] and kept["kept by l1"] == kept["kept by random"] == [13, 32]

    at.slider(key="ratio").set_value(40).run()  # a new ratio starts a job...
    at.slider(key="ratio").set_value(35).run()  # ...and one already seen comes from the store at once
    assert not at.get("progress")
    assert metrics(at)["l1: after 2 epochs"] == shown["l1: after 2 epochs"]
    assert at.query_params["ratio"] == "35"


def test_a_finished_view_prunes_the_next_slider_steps_ahead_and_a_step_takes_them_over(monkeypatch):
    monkeypatch.setattr(jobs, "BUSY_JOBS", 10_000)  # other tests' jobs may still run in this process
    at = open_page("pages/prune.py", finetune_epochs="1", ratio="10")
    run_until_done(at, "prune_job")
    keys, preparing = at.session_state["prepare_job"]
    assert preparing.wait(60)
    step = {PruneConfig(TrainConfig(), name, 0.15, 0, 1).key for name in ("l1", "random")}
    back = {PruneConfig(TrainConfig(), name, 0.05, 0, 1).key for name in ("l1", "random")}
    assert set(keys) == step | back
    assert step <= set(jobs._PREPARED)

    at.slider(key="ratio").set_value(15).run()
    assert metrics(at)["l1: just pruned"].endswith("%") and metrics(at)["random: just pruned"].endswith("%")
    assert not step & set(jobs._PREPARED)  # taken over by this view's job
    run_until_done(at, "prune_job")
    assert metrics(at)["random: after 1 epochs"].endswith("%")


def test_mask_only_pruning_matches_removal_and_keeps_the_cost():
    at = open_page("pages/prune.py", finetune_epochs="1", ratio="60", mask="true")
    run_until_done(at, "prune_job")
    costs = at.dataframe[0].value
    assert list(costs.columns) == ["base", "l1", "random", "l1, masked"]
    assert costs.loc["accuracy just pruned", "l1"] == costs.loc["accuracy just pruned", "l1, masked"]
    assert costs.loc["MACs", "l1, masked"] == costs.loc["MACs", "base"] != costs.loc["MACs", "l1"]
    assert costs.loc["non-zero parameters", "base"].replace(",", "").isdigit()  # counted, not "–"


def test_settings_follow_the_user_across_pages():
    at = open_page("pages/prune.py")
    at.slider(key="ratio").set_value(70).run()
    at.selectbox(key="criterion").set_value("l2").run()
    at.switch_page("pages/norms.py").run()
    assert at.slider(key="ratio").value == 70
    assert at.selectbox(key="criterion").value == "l2"
    assert "**l2** prunes 14 of 20 filters" in at.markdown[-1].value


def test_a_link_keeps_settings_at_their_minimum_across_reruns_and_pages():
    # Streamlit leaves a setting out of the URL when it equals the widget's default; a kept value
    # restored without the real default once made 0% and one epoch vanish from the shared link.
    at = open_page("pages/prune.py", ratio="0", finetune_epochs="1")
    at.run()
    at.switch_page("pages/home.py").run()
    at.switch_page("pages/prune.py").run()
    assert at.slider(key="ratio").value == 0
    assert at.slider(key="finetune_epochs").value == 1
    assert at.query_params["ratio"] == "0"
    assert at.query_params["finetune_epochs"] == "1"


def test_norm_page_marks_the_filters_each_criterion_prunes():
    at = open_page("pages/norms.py", ratio="50", layer="conv2")
    assert not at.exception
    heatmap = charts(at)["l1-norm heatmap: filters x epochs"]
    assert np.shape(values(heatmap.data[0].z)) == (50, 13)  # filters x (initialisation + 12 epochs)
    marked = {trace.name: len(trace.y) for trace in heatmap.data[1:]}
    assert marked == {"pruned by l1": 25, "pruned by random": 25}
    assert heatmap.layout.yaxis.dtick == 1  # every filter labelled
    lines = charts(at)["l1-norm of every filter while the base trained"]
    legend = sorted((trace for trace in lines.data if trace.showlegend), key=lambda trace: trace.legendrank)
    assert [trace.name for trace in legend] == [
        "pruned by l1 only",
        "pruned by random only",
        "pruned by both",
        "kept by both",
    ]


def test_a_criterion_the_base_cannot_use_is_not_offered_and_says_why():
    at = open_page("pages/norms.py", criterion="bn-scale")
    assert not at.exception and not at.error
    assert "bn-scale" not in at.selectbox(key="criterion").options
    assert "bn-scale is not offered: it needs a BatchNorm" in at.selectbox(key="criterion").help
    assert at.text[0].value.startswith("criterion=bn-scale ignored: one of l1, l2")
    at.switch_page("pages/compare.py").run()
    assert (
        "bn-scale" not in at.multiselect(key="criteria").options and "random" in at.multiselect(key="criteria").options
    )


def test_comparison_runs_missing_cells_into_the_table():
    at = open_page("pages/compare.py", criteria=["random", "l1"], ratios=["30", "55"], seeds="1", finetune_epochs="1")
    assert at.multiselect(key="ratios").value == [30, 55]
    assert (at.dataframe[0].value["status"] == "missing").all()
    at.button(key="run_missing").click().run()
    run_until_done(at, "compare_job")
    table = at.dataframe[0].value
    assert len(table) == 4 and (table["status"] == "done").all()
    assert sorted(zip(table["criterion"], table["ratio"])) == [
        ("l1", 0.3),
        ("l1", 0.55),
        ("random", 0.3),
        ("random", 0.55),
    ]
    assert table["acc_final"].between(0, 1).all()
    assert table["latency_under_load"].isin([True, False]).all()  # each latency says whether it compares
    loaded = [c.value for c in at.caption if "measured under load" in c.value]
    assert bool(loaded) == table["latency_under_load"].any()
    figure = charts(at)["Random pruning vs criteria (band: min to max over seeds)"]
    assert {trace.name for trace in figure.data if trace.showlegend is not False} == {"random", "l1"}
    assert list(figure.layout.xaxis.tickvals) == list(figure.layout.xaxis2.tickvals) == [30, 55]  # the ratios run
    assert figure.layout.yaxis2.matches is None and figure.layout.yaxis2.range[0] > 50  # zoomed to its lines
    assert at.get("download_button")


def test_a_comparison_can_be_stopped():
    at = open_page(
        "pages/compare.py", criteria=["random", "l2"], ratios=["20", "40", "80"], seeds="2", finetune_epochs="1"
    )
    at.button(key="run_missing").click().run()
    at.button(key="stop").click().run()
    run_until_done(at, "compare_job")
    assert "was stopped" in at.warning[0].value
    assert (at.dataframe[0].value["status"] == "missing").any()


def test_a_base_trained_on_home_becomes_the_selected_base_on_every_page():
    at = open_page("pages/home.py", train_epochs="1", train_seed="7")
    at.button(key="train").click().run()
    run_until_done(at, "train_job")
    trained = TrainConfig(epochs=1, seed=7).key
    assert at.selectbox(key="base").value == trained
    assert "test accuracy" in at.success[0].value
    assert "1 epoch, seed 7" in at.subheader[0].value  # Home now shows the new base
    at.switch_page("pages/norms.py").run()
    assert not at.exception and at.selectbox(key="base").value == trained


def test_an_unreachable_data_set_shows_an_error_not_a_traceback():
    at = open_page("pages/home.py")
    at.selectbox(key="dataset").set_value("cifar10").run()
    assert not at.exception
    assert at.error[0].value == "These choices cannot be used:"
    assert "CIFAR10 is not on this machine" in at.code[0].value  # the reason as plain text, never Markdown
    assert at.button(key="train").disabled


def test_a_link_to_an_unknown_base_warns_and_falls_back_to_the_default():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["base"] = "train-0000000000000000"
    at.run()
    assert not at.exception
    assert "(shipped default)" in at.selectbox(key="base").format_func(at.selectbox(key="base").value)
    assert "base=train-0000000000000000 ignored: one of train-" in at.text[0].value
