"""The Random masks page in headless Chromium: N masks scored, the best retrained beside a median one.

The screenshot lands in tests/artifacts/masks.png (git-ignored); docs/dashboard.md shows
scripts/screenshots.py's masks-1280.png.
"""

import pytest
from browser_support import app_url, page, shoot, wait_quiet

pytestmark = pytest.mark.browser


def test_random_masks(page, app_url):
    # A fresh server that is first asked for a sub-page serves pages/ on its own, without app.py's router:
    # open the app once so the router has run, as a user who starts at the home page does.
    page.set_viewport_size({"width": 1400, "height": 1700})  # the whole page in one picture
    page.goto(app_url)
    page.wait_for_selector('[data-testid="stSidebarNav"] >> text=Random masks')
    page.goto(f"{app_url}/masks?granularity=kernel&mask_ratio=60&n_masks=8&finetune_epochs=1")
    page.get_by_role("button", name="Score 8 masks and retrain two").click()  # a link alone starts nothing
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
        ".filter(m => m.innerText.includes('retrained')).every(m => m.innerText.includes('%'))"
        " && document.querySelectorAll('[data-testid=\"stMetric\"]').length >= 6"
        " && !document.querySelector('[data-testid=\"stProgress\"]')",
        timeout=300_000,  # the machine may be busy
    )
    page.wait_for_selector("text=conv2: 60% of its weights removed")
    wait_quiet(page)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .heatmaplayer').length == 2")
    text = page.inner_text("main")
    assert "Validation accuracy of the 8 random masks, before retraining" in text
    assert "Recovery while fine-tuning" in text and "Best, retrained" in text
    assert "Prune & recover" in page.inner_text('[data-testid="stSidebarNav"]')  # the app's router, not pages/
    assert "conv1: 60% of its weights removed" in text  # one image per conv layer
    assert page.locator(".js-plotly-plot .barlayer .point").count() >= 2  # the histogram's bars
    shoot(page, "masks")
