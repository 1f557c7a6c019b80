"""The class-subset and pre-training page in headless Chromium: tiny settings in the URL, the missing runs run
from the button, the chart and the numbers appear.

The screenshots land in tests/artifacts/studies.png and studies-pretraining.png (git-ignored); README's copy,
taken on the measured study, is assets/screenshots/studies.png.
"""

import pytest
from browser_support import app_url, page, shoot, wait_quiet

pytestmark = pytest.mark.browser

SUBSET = "classes=3&classes=5&classes=8&subset_criteria=random&subset_ratios=90&subset_seeds=1"
STUDY = "pretraining_ratios=50&pretraining_seeds=1&target_epochs=1&source_epochs=1&pretraining_finetune_epochs=1"
DONE = "() => document.querySelector('[data-testid=\"stButton\"] button')?.innerText.includes('Every run is done')"


def run_missing(page, label: str, metrics: int) -> list[str]:
    """Press the run button, wait for every run and for the final page (the job's last rerun replaces the
    live view: until it ends, the page may hold both), and return the metrics' values."""
    page.get_by_role("button", name=label).click()
    page.wait_for_function(DONE, timeout=300_000)  # the machine may be busy
    wait_quiet(page)
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=\"stMetricValue\"]').length == {metrics}"
        " && document.querySelectorAll('.js-plotly-plot').length == 1"
    )
    return page.locator('[data-testid="stMetricValue"]').all_inner_texts()


def test_class_subset_and_pretraining(page, app_url):
    # A fresh server first asked for a sub-page serves pages/ without app.py's router: open the app once.
    page.goto(app_url)
    page.wait_for_selector('[data-testid="stSidebarNav"] >> text=Class subsets & pre-training')

    page.goto(f"{app_url}/studies?study=Class+subset&{SUBSET}&subset_finetune_epochs=1")
    metrics = run_missing(page, "Run the 2 missing runs", metrics=2)
    assert all(value.endswith("%") for value in metrics)
    text = page.inner_text("main")
    assert "Pruned for a few classes (solid) vs for all classes (dashed)" in text
    assert "random, for 3,5,8" in text and "random, for all classes" in text  # the metrics and the legend
    assert "Fine-tuning: 3 epochs on the 1,200 training images of 3,5,8, 1 on all 4,000." in text
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 4  # two lines in each stage
    page.set_viewport_size({"width": 1400, "height": 1500})
    shoot(page, "studies")

    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{app_url}/studies?study=Pre-trained+vs+scratch&{STUDY}")
    metrics = run_missing(page, "Run the 2 missing runs", metrics=4)
    assert all(value.endswith("%") for value in metrics)
    text = page.inner_text("main")
    assert "Pre-trained vs from scratch: accuracy against parameters removed" in text
    assert "scratch: parameters removable" in text and "pretrained: unpruned" in text
    page.set_viewport_size({"width": 1400, "height": 1500})
    shoot(page, "studies-pretraining")
