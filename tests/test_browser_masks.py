"""The Random masks page in headless Chromium: N masks scored, the best retrained beside a median one.

The screenshot lands in tests/artifacts/masks.png (git-ignored); README's copy is assets/screenshots/masks.png.
"""

import pytest
from browser_support import app_url, page, shoot, wait_quiet

pytestmark = pytest.mark.browser


def test_random_masks(page, app_url):
    page.goto(f"{app_url}/masks?granularity=kernel&mask_ratio=60&n_masks=20&finetune_epochs=2")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
        ".filter(m => m.innerText.includes('retrained')).every(m => m.innerText.includes('%'))"
        " && document.querySelectorAll('[data-testid=\"stMetric\"]').length >= 6"
        " && !document.querySelector('[data-testid=\"stProgress\"]')",
        timeout=180_000,
    )
    page.wait_for_selector("text=conv2: 60% of its weights removed")
    wait_quiet(page)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .heatmaplayer').length == 2")
    text = page.inner_text("main")
    assert "Validation accuracy of the 20 random masks, before retraining" in text
    assert "Recovery while fine-tuning" in text and "Best, retrained" in text
    assert "conv1: 60% of its weights removed" in text  # one image per conv layer
    assert page.locator(".js-plotly-plot .barlayer .point").count() >= 2  # the histogram's bars
    page.set_viewport_size({"width": 1400, "height": 1700})  # the whole page in one picture
    shoot(page, "masks")
