"""Dashboard speed on the shipped default, in a real browser: medians over several runs.

1. `streamlit run app.py` start -> the first page's chart drawn;
2. slider released -> the pruned accuracies (criterion and random) on screen;
3. each recovery-curve point (fine-tuning epoch) -> on screen.

Run: .venv/bin/python benchmarks/bench_app.py [--runs 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
METRICS = "[...document.querySelectorAll('[data-testid=\"stMetric\"]')]"


def metric_text(page, label: str) -> str:
    return page.evaluate(f"() => ({METRICS}.find(m => m.innerText.startsWith({label!r})) || {{}}).innerText || ''")


def wait_for_new_value(page, label: str, stale: str) -> None:
    """Until the metric starting with `label` shows a percentage other than the stale text."""
    page.wait_for_function(
        f"(stale) => {METRICS}.some(m => m.innerText.startsWith({label!r})"
        " && m.innerText.includes('%') && m.innerText !== stale)",
        arg=stale,
        polling=20,
        timeout=60_000,
    )


def one_run(port: int, epochs: int) -> dict[str, list[float]]:
    env = {**os.environ, "PLASTICITY_HOME": tempfile.mkdtemp(prefix="plasticity-bench-")}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    start = time.perf_counter()
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(120_000)
            while True:
                try:  # as soon as the server answers (a browser opened too early sees an error page)
                    response = page.goto(f"http://127.0.0.1:{port}/")
                    if response is not None and response.ok:
                        break
                except Exception:
                    pass
                time.sleep(0.1)
            page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg')
            first_page = time.perf_counter() - start

            page.goto(f"http://127.0.0.1:{port}/prune?finetune_epochs={epochs}&ratio=50")
            page.wait_for_function(
                f"() => {METRICS}.filter(m => m.innerText.includes('after')).length == 2"
                f" && {METRICS}.every(m => m.innerText.includes('%'))"
            )
            thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
            stale = {name: metric_text(page, f"{name}: just pruned") for name in ("l1", "random")}
            thumb.focus()
            released = time.perf_counter()
            thumb.press("ArrowRight")
            # the page still shows ratio 50's numbers until the new ones arrive: wait for changed values
            for name, text in stale.items():
                wait_for_new_value(page, f"{name}: just pruned", text)
            pruned = time.perf_counter() - released
            points, last = [], time.perf_counter()
            for epoch in range(1, epochs + 1):
                # l1 fine-tunes first, then random: random's first epoch means l1's last point is in
                page.wait_for_function(
                    "(n) => [...document.querySelectorAll('[data-testid=\"stProgress\"]')].some(p => {"
                    " const m = p.innerText.match(/(l1|random): epoch (\\d+)/);"
                    " return m && ((m[1] === 'l1' && +m[2] >= n) || (m[1] === 'random' && +m[2] >= 1)); })",
                    arg=epoch,
                    polling=20,
                )
                now = time.perf_counter()
                points.append(now - last)
                last = now
            browser.close()
    finally:
        server.terminate()
        server.wait(20)
    return {"first_page": [first_page], "pruned": [pruned], "epoch": points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    totals: dict[str, list[float]] = {"first_page": [], "pruned": [], "epoch": []}
    for _ in range(args.runs):
        for name, values in one_run(args.port, args.epochs).items():
            totals[name] += values
    targets = {"first_page": 5.0, "pruned": 0.5, "epoch": 2.0}
    if args.out:
        figures = {
            name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "n": len(v), "values": v}
            for name, v in totals.items()
        }
        Path(args.out).write_text(
            json.dumps({"runs": args.runs, "epochs": args.epochs, "targets_s": targets, **figures}, indent=2) + "\n"
        )
    for name, values in totals.items():
        print(
            f"{name:>10}: median {statistics.median(values):.2f} s over {len(values)} "
            f"(min {min(values):.2f}, max {max(values):.2f}; target < {targets[name]} s)"
        )


if __name__ == "__main__":
    main()
