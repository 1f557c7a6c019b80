"""The History-based pruning page in headless Chromium: two rounds run, then one is stepped through.

The screenshot lands in tests/artifacts/hbfp.png (git-ignored); docs/dashboard.md shows it as
assets/screenshots/hbfp.png.
"""

import pytest
from browser_support import app_url, cut_texts, page, shoot, wait_quiet

pytestmark = pytest.mark.browser


def test_hbfp_rounds_and_a_step(page, app_url):
    page.goto(f"{app_url}/hbfp?round_ratio=25&optimise_epochs=1&retrain_epochs=1&max_rounds=2&layer=conv2")
    page.wait_for_selector(".js-plotly-plot .heatmaplayer")  # the first round's pairs, before any run
    wait_quiet(page)
    assert "Filters 20 and 28 over training" in page.inner_text("main")  # conv2's closest pair in the history
    page.get_by_role("button", name="Run the rounds (hbfp)").click()
    page.wait_for_selector("text=Every round is done", timeout=400_000)  # two rounds: about 10 s when quiet
    page.wait_for_selector("text=Rounds: accuracy against the MACs removed")
    wait_quiet(page)
    page.locator('[data-testid="stButtonGroup"] button', has_text="after retraining").click()
    page.wait_for_url("**step=after*retraining**")
    wait_quiet(page)
    page.wait_for_selector("text=pruned here")
    text = page.inner_text("main")
    assert "hbfp kept round 2" in text and "▶ after retraining" in text
    assert "Pair distances in conv2" in text and "Filters 20 and 28 over training" in text
    assert page.locator(".js-plotly-plot .heatmaplayer").count() == 1
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_timeout(500)  # the layout follows the new width
    assert cut_texts(page) == []  # the round's metrics and steps ("after retraining") in full at 1280
    page.set_viewport_size({"width": 1400, "height": 1580})  # the stepper in one picture
    page.get_by_text("Step through a round").evaluate("heading => heading.scrollIntoView({block: 'start'})")
    shoot(page, "hbfp")
