"""Screenshots of every page of the dashboard at 1280x800 and 1920x1080, for docs/dashboard.md.

    python scripts/screenshots.py [--out assets/screenshots] [--presenter] [--pages prune lesson ...]

Starts `streamlit run app.py` on a free port with a fresh run store, opens each page in headless Chromium
(/usr/bin/chromium), presses the buttons that start its work where a page waits for one, and saves
`<page>-1280.png` and `<page>-1920.png` of the first screen, reduced to 64 colours to keep them small.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
SIZES = {1280: 800, 1920: 1080}
DONE = '() => !document.querySelector(\'[data-testid="stStatusWidget"], [data-testid="stProgress"]\')'

# page name -> (link, the button that starts its work or None, text that shows the work is done)
PAGES = {
    "home": ("/", None, "Base model:"),
    "lesson": ("/lesson?lesson_step=6", None, "What to notice"),
    "prune": ("/prune?ratio=50&criterion=l1&finetune_epochs=3", None, "Cost before and after"),
    "norms": ("/norms?layer=conv2&ratio=50", None, "heatmap"),
    "compare": (
        "/compare?criteria=random&criteria=l1&ratios=25&ratios=50&ratios=75&seeds=2&finetune_epochs=1",
        "Run the 12 missing runs",
        "Every run is done",
    ),
    "studies": ("/studies", None, "Class subset"),
    "hbfp": (
        "/hbfp?round_ratio=25&optimise_epochs=1&retrain_epochs=1&max_rounds=1&layer=conv2",
        "Run the rounds (hbfp)",
        "Every round is done",
    ),
    "masks": (
        "/masks?granularity=kernel&mask_ratio=60&n_masks=10&finetune_epochs=1",
        "Score 10 masks and retrain two",
        "Every run is done",
    ),
    "sensitivity": (
        "/sensitivity?sensitivity_ratios=50&sensitivity_ratios=75",
        "Run the 8 missing runs",
        "Every run is done",
    ),
    "attribution": ("/attribution?layer=conv1&ratio=50", None, "Similarity is the cosine"),
    "scenes": (
        "/scenes?task=segmentation&scene_epochs=3&ratio=50&finetune_epochs=1",
        "Train the base (3 epochs), then prune",
        "What each network finds",
    ),
}


def serve(home: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PLASTICITY_HOME": home})
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            return server, url
        except OSError:
            time.sleep(0.2)
    raise SystemExit("streamlit did not start")


def settle(page: Page, done_text: str) -> None:
    page.wait_for_selector('[data-testid="stSidebar"] [data-testid="stSelectbox"]', timeout=600_000)  # whole page
    page.wait_for_selector(f"text={done_text}", timeout=600_000)
    page.wait_for_function(DONE, timeout=600_000)
    page.wait_for_timeout(1500)  # plotly's transitions


def save(page: Page, path: Path) -> None:
    page.screenshot(path=str(path))
    Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots")
    parser.add_argument("--presenter", action="store_true", help="in presenter mode (large fonts, thick lines)")
    parser.add_argument("--home", help="the run store to use (default: a fresh one); its stored runs are reused")
    parser.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES), help="only these pages")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    server, url = serve(args.home or tempfile.mkdtemp(prefix="plasticity-shots-"))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(url)  # the router runs once, as for a user who starts at Home
            settle(page, "Base model:")
            for name in args.pages:
                link, button, done_text = PAGES[name]
                presenter = ("&" if "?" in link else "?") + "presenter=true" if args.presenter else ""
                page.goto(url + link + presenter)
                if button:  # absent when a reused run store (--home) has the page's work done already
                    start = page.get_by_role("button", name=button)
                    start.or_(page.get_by_text(done_text)).first.wait_for(timeout=600_000)
                    if start.count():
                        start.click()
                settle(page, done_text)
                for width, height in sorted(SIZES.items(), reverse=True):
                    page.set_viewport_size({"width": width, "height": height})
                    page.wait_for_timeout(1500)
                    save(page, args.out / f"{name}-{width}{'-presenter' if args.presenter else ''}.png")
                    print(name, width, flush=True)
                page.set_viewport_size({"width": 1920, "height": 1080})
            browser.close()
    finally:
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    main()
