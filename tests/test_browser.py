"""The real dashboard in headless Chromium: every page renders, the slider streams a recovery curve.

Screenshots of every page land in tests/artifacts/ (git-ignored) for a person to look at.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium() -> str:
    if not Path(CHROMIUM).exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)  # a new machine has no lists
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=False, capture_output=True)
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}; install the Debian package `chromium` to run the browser tests")
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = free_port()
    home = tmp_path_factory.mktemp("browser-home")
    env = {**os.environ, "PLASTICITY_HOME": str(home)}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            break
        except OSError:
            assert server.poll() is None, server.stdout.read().decode()
            assert time.monotonic() < deadline, "streamlit did not start within 60 s"
            time.sleep(0.2)
    yield url
    server.terminate()
    server.wait(20)


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        tab.set_default_timeout(60_000)
        yield tab
        browser.close()


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(800)  # let plotly finish its transitions
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def wait_quiet(page) -> None:
    """Until the app has stopped running the script and no progress bar is left."""
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")
    page.wait_for_selector('[data-testid="stProgress"]', state="detached")


def test_home(page, app_url):
    page.goto(app_url)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg')
    wait_quiet(page)
    assert "Plasticity: how a CNN recovers after pruning" in page.inner_text("h1")
    assert "%" in page.locator('[data-testid="stMetricValue"]').first.inner_text()
    shoot(page, "home")


def test_prune_slider_streams_the_recovery_curve(page, app_url):
    page.goto(f"{app_url}/prune?finetune_epochs=2&ratio=50")
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg')
    wait_quiet(page)
    thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
    thumb.focus()
    thumb.press("ArrowRight")  # 50% -> 55%, released at once
    page.wait_for_url("**ratio=55**")
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
    page.goto(f"{app_url}/compare?criteria=random&criteria=l1&ratios=25&ratios=50&ratios=75&seeds=2&finetune_epochs=1")
    page.get_by_role("button", name="Run the 12 missing runs").click()
    page.wait_for_selector("text=Every run is done", timeout=120_000)
    page.wait_for_selector(".js-plotly-plot .scatterlayer")
    wait_quiet(page)
    text = page.inner_text("main")
    assert "Random pruning vs criteria" in text and "Download the table as CSV" in text
    shoot(page, "compare")
