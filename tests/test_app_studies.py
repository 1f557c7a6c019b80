"""The class-subset and pre-training page through Streamlit's AppTest, on the shipped default (real runs, no mocks)."""

from test_app import charts, metrics, open_page, run_until_done, stop_jobs, values  # noqa: F401 (a fixture)

PAGE = "pages/studies.py"
PRETRAINING = "Pre-trained vs scratch"
ONE_SMALL_SUBSET_RUN = {
    "classes": ["3", "5", "8"],
    "subset_criteria": ["apoz"],
    "subset_ratios": ["50"],
    "subset_seeds": "1",
    "subset_finetune_epochs": "1",
}
TINY_STUDY = {
    "study": PRETRAINING,
    "pretraining_ratios": ["50"],
    "pretraining_seeds": "1",
    "target_epochs": "1",
    "source_epochs": "1",
    "pretraining_finetune_epochs": "1",
}


def test_both_tabs_render_on_the_default_with_every_run_missing(tmp_path, monkeypatch):
    # its own run store: other tests' runs (random on all classes, say) would not be missing here
    monkeypatch.setenv("PLASTICITY_HOME", str(tmp_path))
    at = open_page(PAGE)
    assert not at.exception and not at.error
    assert at.title[0].value == "Class subsets & pre-training"
    assert at.multiselect(key="classes").value == [3, 5, 8]
    assert at.button(key="subset_job_run").label == "Run the 16 missing runs"  # 2 criteria x 4 ratios x 2 scopes
    table = at.dataframe[0].value
    assert (table["status"] == "missing").all()
    assert set(table["pruned for"]) == {"3,5,8", "all classes"}

    at = open_page(PAGE, study=PRETRAINING)
    assert not at.exception and not at.error
    assert at.selectbox(key="target").value == "mnist-5k:5-9" and at.selectbox(key="source").value == "mnist-5k:0-4"
    assert at.button(key="pretraining_job_run").label == "Run the 16 missing runs"  # 2 modalities x 4 ratios x 2 seeds
    assert any("bases are not in the run store" in caption.value for caption in at.caption)


def test_the_class_subset_tab_runs_its_missing_runs():
    at = open_page(PAGE, **ONE_SMALL_SUBSET_RUN)
    assert at.button(key="subset_job_run").label == "Run the 2 missing runs"
    at.button(key="subset_job_run").click().run()
    run_until_done(at, "subset_job")
    assert not at.exception and not at.error

    table = at.dataframe[0].value
    assert (table["status"] == "done").all()
    assert list(zip(table["pruned for"], table["criterion"])) == [("3,5,8", "apoz"), ("all classes", "apoz")]
    assert list(table["epochs"]) == [3, 1]  # 1,200 of the 4,000 training images: 3 epochs for about the same steps
    unpruned = table.groupby("pruned for")["acc_base"].first()
    assert unpruned["3,5,8"] != unpruned["all classes"]  # each tested on its own classes
    assert table["acc_final"].between(0, 1).all()

    figure = charts(at)["Pruned for a few classes (solid) vs for all classes (dashed)"]
    lines = {trace.name: trace for trace in figure.data if trace.showlegend is not False}
    assert set(lines) == {"apoz, for 3,5,8", "apoz, for all classes"}
    assert lines["apoz, for all classes"].line.dash == "dash" and lines["apoz, for 3,5,8"].line.dash == "solid"
    assert values(lines["apoz, for 3,5,8"].x) == [0, 50]  # the unpruned base, then the ratio run
    assert all(value.endswith("%") for value in metrics(at).values()) and len(metrics(at)) == 2
    assert at.button(key="subset_job_run").label == "Every run is done"
    assert at.get("download_button")


def test_the_pretraining_tab_runs_a_tiny_study():
    at = open_page(PAGE, **TINY_STUDY)
    at.button(key="pretraining_job_run").click().run()
    run_until_done(at, "pretraining_job")
    assert not at.exception and not at.error

    table = at.dataframe[0].value
    assert list(table["modality"]) == ["scratch", "pretrained"] and (table["status"] == "done").all()
    assert table["params_removed"].between(0.4, 0.6).all()
    figure = charts(at)["Pre-trained vs from scratch: accuracy against parameters removed (band: ± one std over seeds)"]
    lines = [trace for trace in figure.data if trace.mode == "lines+markers"]
    assert [trace.name for trace in lines] == ["scratch", "pretrained"] * 2  # right after pruning, after fine-tuning
    removed = values(lines[0].x)
    assert removed[0] == 0 and 40 < removed[1] < 60  # the unpruned base, then half the filters
    shown = metrics(at)
    assert shown["scratch: parameters removable"].startswith("up to ")
    assert shown["pretrained: unpruned"].endswith("%")


def test_wrong_inputs_show_a_message_not_a_traceback():
    at = open_page(PAGE)
    at.multiselect(key="classes").set_value([]).run()
    assert not at.exception
    assert "Pick the classes that matter" in at.info[0].value
    assert not at.get("plotly_chart") and not at.dataframe

    at = open_page(PAGE, study=PRETRAINING)
    at.selectbox(key="source").set_value("mnist-5k:5-9").run()
    assert not at.exception
    assert "nothing is transferred" in at.error[0].value
