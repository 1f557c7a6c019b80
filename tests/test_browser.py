"""The real dashboard in headless Chromium: every page renders, the slider streams a recovery curve.

Screenshots of every page land in tests/artifacts/ (git-ignored) for a person to look at.
"""

import pytest
from browser_support import app_url, page, shoot, wait_quiet

pytestmark = pytest.mark.browser


def test_a_shared_link_opens_its_page_through_the_router_on_a_fresh_server(page, app_url):
    page.goto(f"{app_url}/norms?layer=conv2")  # the server's first request
    page.wait_for_selector(".js-plotly-plot .heatmaplayer")
    wait_quiet(page)
    navigation = page.inner_text('[data-testid="stSidebarNav"]')
    assert "Prune & recover" in navigation and "Random vs criterion" in navigation  # app.py's page list
    assert "Filter-norm histories" in page.inner_text("h1")


def test_home(page, app_url):
    page.goto(app_url)
    page.wait_for_selector('[data-testid="stSidebar"] [data-testid="stSelectbox"]')  # the whole page, pickers too
    wait_quiet(page)
    assert "Plasticity: how a CNN recovers after pruning" in page.inner_text("h1")
    assert "%" in page.locator('[data-testid="stMetricValue"]').first.inner_text()
    picture = page.locator('[data-testid="stImage"] img')
    assert picture.get_attribute("src").startswith("data:image/svg+xml")
    assert picture.evaluate("img => img.complete && img.naturalWidth > 0")  # drawn, not a broken image
    shoot(page, "home")


def test_prune_slider_streams_the_recovery_curve(page, app_url):
    page.goto(f"{app_url}/prune?finetune_epochs=2&ratio=50")
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg')
    wait_quiet(page)
    thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
    thumb.focus()
    thumb.press("ArrowRight")  # 50% -> 55%, released at once
    page.wait_for_url("**ratio=55**")
    page.wait_for_selector('[data-testid="stProgress"]')  # the new view's job (the old view looks finished)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
        ".filter(m => m.innerText.includes('after 2 epochs')).every(m => m.innerText.includes('%'))"
        " && document.querySelectorAll('[data-testid=\"stMetric\"]').length >= 5"
        " && !document.querySelector('[data-testid=\"stProgress\"]')"
    )
    text = page.inner_text("main")
    assert "Recovery while fine-tuning" in text and "Filters kept per layer" in text
    assert "l1: just pruned" in text and "random: after 2 epochs" in text
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 2
    shoot(page, "prune")


def test_filter_norm_histories(page, app_url):
    page.goto(f"{app_url}/norms?layer=conv2")
    page.wait_for_selector(".js-plotly-plot .heatmaplayer")
    wait_quiet(page)
    assert "prunes 25 of 50 filters" in page.inner_text("main")
    shoot(page, "norms")


def test_random_vs_criterion(page, app_url):
    page.goto(f"{app_url}/compare?criteria=random&criteria=l1&ratios=25&ratios=50&ratios=75&seeds=1&finetune_epochs=1")
    page.get_by_role("button", name="Run the 6 missing runs").click()
    page.wait_for_selector("text=Every run is done", timeout=120_000)
    page.wait_for_selector(".js-plotly-plot .scatterlayer")
    wait_quiet(page)
    text = page.inner_text("main")
    assert "Random pruning vs criteria" in text and "Download the table as CSV" in text
    shoot(page, "compare")


def test_weights_uploaded_on_home_start_a_base_and_a_file_naming_code_is_refused(page, app_url, tmp_path):
    import shutil

    import torch

    from plasticity.models import ModelSpec, create_model

    crafted, weights = tmp_path / "crafted.pt", tmp_path / "lenet5-start.pt"
    torch.save({"model": shutil.rmtree}, crafted)  # a reference to code: weights_only=True refuses it
    torch.save(create_model(ModelSpec("lenet5", 1, 10, 28)).state_dict(), weights)
    page.goto(app_url)
    page.wait_for_selector('[data-testid="stFileUploader"]')
    wait_quiet(page)
    upload = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    train = page.get_by_role("button", name="Train", exact=True)

    upload.set_input_files(str(crafted))
    page.wait_for_selector("text=These choices cannot be used")
    refusal = page.locator('main [data-testid="stCode"]').first.inner_text()
    assert "crafted.pt is not a readable weights file" in refusal and "Traceback" not in page.inner_text("main")
    assert train.is_disabled()

    upload.set_input_files(str(weights))
    page.wait_for_selector("text=These choices cannot be used", state="detached")
    page.locator('[data-testid="stNumberInput"] input').nth(0).fill("1")  # one epoch
    page.keyboard.press("Enter")
    wait_quiet(page)
    train.click()
    page.wait_for_selector("text=It is now the selected base model", timeout=120_000)
    shoot(page, "home-weights-upload")
    assert "Training lenet5 on mnist-5k, 1 epoch, seed 0, from the weights " in page.inner_text("main")
