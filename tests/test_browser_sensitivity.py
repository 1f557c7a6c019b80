"""The Layer sensitivity page in headless Chromium: one ratio in the URL, the missing cells run from the
button, both heatmaps and the per-layer lines appear. The screenshot lands in tests/artifacts/sensitivity.png."""

import pytest
from browser_support import app_url, page, shoot, wait_quiet

pytestmark = pytest.mark.browser

DONE = "() => document.querySelector('[data-testid=\"stButton\"] button')?.innerText.includes('Every run is done')"


def test_layer_sensitivity(page, app_url):
    # A fresh server first asked for a sub-page serves pages/ without app.py's router: open the app once.
    page.goto(app_url)
    page.wait_for_selector('[data-testid="stSidebarNav"] >> text=Layer sensitivity')

    page.goto(f"{app_url}/sensitivity?sensitivity_ratios=75")
    page.get_by_role("button", name="Run the 4 missing runs").click()
    page.wait_for_function(DONE, timeout=300_000)  # the machine may be busy
    wait_quiet(page)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length == 2")
    text = page.inner_text("main")
    assert "Accuracy right after pruning, one layer pruned at a time" in text
    assert "conv1, random" in text and "conv2, l1" in text  # the lines' legend
    assert page.locator(".js-plotly-plot .heatmaplayer .hm").count() == 2  # the criterion beside random
    shoot(page, "sensitivity")
