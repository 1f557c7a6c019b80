"""Shared by the browser tests: a real `streamlit run app.py` on a loopback port, and headless Chromium.

Every browser test module uses the `app_url` and `page` fixtures (one server and one browser per module)
and saves screenshots with `shoot` into tests/artifacts/ (git-ignored) for a person to look at.
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


def start_server(home: Path) -> tuple[subprocess.Popen, str]:
    """A real `streamlit run app.py` with its run store in `home`, serving: the process and its URL."""
    port = free_port()
    env = {**os.environ, "PLASTICITY_HOME": str(home)}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            return server, url
        except OSError:
            assert server.poll() is None, server.stdout.read().decode()
            assert time.monotonic() < deadline, "streamlit did not start within 60 s"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    server, url = start_server(tmp_path_factory.mktemp("browser-home"))
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


# The texts the page cuts short: a label or value ended with an ellipsis, a multiselect's chip run under the
# box's clear and open buttons.
CUT_TEXTS = """() => {
  const cut = [...document.querySelectorAll('main *, [data-testid="stSidebar"] *')].filter(e =>
    e.innerText && getComputedStyle(e).textOverflow === 'ellipsis' && e.scrollWidth > e.clientWidth + 1
  ).map(e => e.innerText);
  for (const box of document.querySelectorAll('[data-testid="stMultiSelect"] [data-baseweb="select"]')) {
    const right = box.getBoundingClientRect().right - 40;
    for (const chip of box.querySelectorAll('[data-baseweb="tag"]')) {
      if (chip.getBoundingClientRect().right > right) cut.push(chip.innerText);
    }
  }
  return cut;
}"""


def cut_texts(page) -> list[str]:
    return page.evaluate(CUT_TEXTS)
