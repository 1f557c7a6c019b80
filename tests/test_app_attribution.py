"""The attribution page through Streamlit's AppTest, on the shipped default (real captum, real fine-tuning)."""

from pathlib import Path

import plotly.io as pio
import pytest
from streamlit.testing.v1 import AppTest

from plasticity.jobs import running_jobs

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/attribution.py"


def open_page(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params.update(query)
    at.run()
    return at.switch_page(PAGE).run()


def finish_job(at: AppTest) -> AppTest:
    job = at.session_state["attribution_job"][1]
    if job is not None:
        assert job.wait(120), "the fine-tuning job did not end"
    return at.run()


def charts(at: AppTest) -> dict:
    figures = [pio.from_json(chart.proto.spec) for chart in at.get("plotly_chart")]
    return {fig.layout.title.text: fig for fig in figures}


@pytest.fixture(autouse=True)
def stop_jobs():
    yield
    for job in running_jobs():
        job.cancel()
        job.wait(60)


def test_the_page_renders_on_the_default_and_shows_every_filter_and_three_networks():
    at = finish_job(open_page(finetune_epochs="1"))
    assert not at.exception and not at.error
    assert at.title[0].value == "What filters look at"
    shown = charts(at)
    grid = shown["conv1: activation | attribution, per filter, for test image 0"]
    assert [trace.type for trace in grid.data] == ["heatmap", "heatmap"]
    assert len(grid.layout.annotations) == 20  # one label per filter of conv1
    assert len(grid.layout.shapes) == 10  # the half that l1 prunes at 50%, veiled
    looks = shown["Where each network looks (integrated gradients of the class 0)"]
    titles = " ".join(annotation.text for annotation in looks.layout.annotations)
    assert "<b>base</b>" in titles and "<b>pruned by l1</b>" in titles and "<b>fine-tuned 1 epoch</b>" in titles
    assert len(looks.data) == 4  # the image, then base, pruned and fine-tuned


def test_clicking_a_thumbnail_picks_the_image_and_a_criterion_reorders_the_filters():
    at = open_page(finetune_epochs="1", layer="conv2", ratio="25")  # its fine-tuning need not finish here
    at.button(key="pick_76").click().run()
    assert not at.exception
    assert at.number_input(key="image").value == 76 and at.query_params["image"] == "76"
    at.selectbox(key="criterion").set_value("attribution").run()
    assert not at.exception and not at.error
    grid = charts(at)["conv2: activation | attribution, per filter, for test image 76"]
    assert len(grid.layout.shapes) == 13  # 12.5 filters of 50, rounded up, pruned
    assert "Sorted by **attribution** importance" in at.markdown[0].value
