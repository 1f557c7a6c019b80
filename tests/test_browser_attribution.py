"""The attribution page in headless Chromium: click a thumbnail, see every filter's maps and where the
base, pruned and fine-tuned networks look. The screenshot lands in tests/artifacts/attribution.png."""

import pytest
from browser_support import app_url, page, shoot, wait_quiet

pytestmark = pytest.mark.browser


def test_what_filters_look_at(page, app_url):
    page.set_viewport_size({"width": 1400, "height": 2500})  # the whole page in one screenshot
    page.goto(app_url)
    page.get_by_role("link", name="What filters look at").click()
    page.wait_for_selector(".js-plotly-plot .heatmaplayer")
    page.get_by_role("button", name="76", exact=True).click()  # a thumbnail of the grid: a 1
    page.wait_for_url("**image=76**")
    page.wait_for_function(
        "() => document.body.innerText.includes('fine-tuned 3 epochs')"
        " && !document.querySelector('[data-testid=\"stProgress\"]')",
        timeout=120_000,
    )
    wait_quiet(page)
    page.wait_for_timeout(1000)  # the job's end reruns the whole page once more: let that start, then finish
    wait_quiet(page)
    page.mouse.move(5, 5)  # no tooltip over the thumbnails in the screenshot
    text = page.inner_text("main")
    assert page.locator('[data-testid="stNumberInput"] input').input_value() == "76"
    assert "prunes 10 of 20 filters" in text and "Every filter of conv1" in text
    assert "similarity to base" in text
    assert page.locator(".js-plotly-plot").count() == 2  # the filter grid and where the networks look
    shoot(page, "attribution")
