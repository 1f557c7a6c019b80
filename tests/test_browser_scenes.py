"""The Detection & segmentation page in headless Chromium: a SegNet trained, pruned and fine-tuned on a mask
folder written by the test, with its recovery chart, speeds and the pictures of what each network finds.

The screenshot lands in tests/artifacts/scenes.png (git-ignored).
"""

import pytest
from browser_support import app_url, page, shoot, wait_quiet
from test_app_scenes import write_mask_folder

pytestmark = pytest.mark.browser


def test_detection_and_segmentation(page, app_url, tmp_path):
    folder = write_mask_folder(tmp_path / "cells")
    page.set_viewport_size({"width": 1400, "height": 1500})
    page.goto(app_url)
    page.wait_for_selector('[data-testid="stSidebarNav"] >> text=Detection & segmentation')
    page.goto(f"{app_url}/scenes?task=segmentation&scene_folder=masks:{folder}&scene_epochs=1&finetune_epochs=1")
    page.get_by_role("button", name="Train the base (1 epochs), then prune").click(timeout=300_000)  # a busy machine
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stImage\"] img').length >= 3"
        " && !document.querySelector('[data-testid=\"stProgress\"]')",
        timeout=300_000,  # the machine may be busy
    )
    wait_quiet(page)
    # The live view's charts and metrics are redrawn once more after the final run: wait for them to be back.
    page.wait_for_function(
        "() => ['mean IoU while fine-tuning', 'random: just pruned']"
        ".every(t => document.querySelector('main').innerText.includes(t))",
        timeout=30_000,
    )
    text = page.inner_text("main")
    assert "l1: images per second" in text and "What each network finds on the first test tiles" in text
    recovery = page.locator(".js-plotly-plot", has_text="while fine-tuning")
    # The live view's last charts are taken down a moment after the final run's: wait for the one left.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')]"
        ".filter(p => p.textContent.includes('while fine-tuning')).length === 1",
        timeout=30_000,
    )
    assert recovery.locator(".scatterlayer .trace").count() == 2  # random and the criterion
    shoot(page, "scenes")
