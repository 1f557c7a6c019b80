"""Dashboard speed on the shipped default, in a real browser: medians over several runs.

1. `streamlit run app.py` started -> the first page's first screen drawn (title, picture of the filters,
   the base's numbers), and -> the whole Home page (the sidebar's pickers, which need PyTorch);
2. slider key pressed -> the first frame drawn with both new pruned accuracies (criterion and random):
   one step (ArrowRight, 5%: the page has pruned the neighbouring steps ahead) and a jump (PageUp, 10%:
   pruned after the release);
3. each recovery-curve point (one fine-tuning epoch of either run) -> drawn, from the previous one.

The browser is running before the server starts, as a user's is, and the page is opened once the
server answers, as `streamlit run` opens it. Times are taken inside the page (a MutationObserver and
the next animation frame), so measuring does not load the machine the way polling the page would.

Run: .venv/bin/python benchmarks/bench_app.py [--runs 3 --presses 2 --epochs 3 --out FILE]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TARGETS = {"first_screen": 5.0, "whole_home": None, "pruned_step": 0.5, "pruned_jump": 0.5, "epoch": 2.0}

# In every document: the wall-clock time (ms) of the first frame showing the Home page's first screen,
# and of the first frame showing its sidebar pickers.
RECORD_HOME = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const seen = {};
  window.__home = seen;
  const check = () => {
    const image = document.querySelector('[data-testid="stImage"] img');
    const metrics = [...document.querySelectorAll('[data-testid="stMetric"]')].filter(m => /\\d/.test(m.textContent));
    if (!seen.first && document.querySelector('h1') && image && image.complete && metrics.length >= 3) {
      seen.first = -1;
      requestAnimationFrame(() => { seen.first = now(); });
    }
    if (!seen.whole && document.querySelector('[data-testid="stSidebar"] [data-testid="stSelectbox"]')) {
      seen.whole = -1;
      requestAnimationFrame(() => { seen.whole = now(); });
    }
  };
  const all = {subtree: true, childList: true, characterData: true, attributes: true};
  new MutationObserver(check).observe(document, all);
})();
"""

DONE = """[...document.querySelectorAll('[data-testid="stMetric"]')]
    .filter(m => m.textContent.includes('after') && m.textContent.includes('%')).length == 2
    && !document.querySelector('[data-testid="stProgress"]')"""  # both runs fine-tuned, their numbers drawn
BOTH_DONE = f"() => {DONE}"

# On the Prune & recover page: when the key goes down, the first frame with both new pruned accuracies,
# and every epoch point as it is drawn (the progress bar counts the epochs of both runs; the last one
# comes with the final numbers). Two points drawn at the same refresh count as one wait and a zero.
ARM_PRUNE = (
    """(epochs) => {
  const now = () => performance.timeOrigin + performance.now();
  const metric = n => ([...document.querySelectorAll('[data-testid="stMetric"]')]
      .find(m => m.textContent.startsWith(n + ': just pruned')) || {}).textContent || '';
  const stale = ['l1', 'random'].map(metric);
  const state = {pressed: null, shown: null, points: []};
  window.__prune = state;
  document.addEventListener('keydown', () => { state.pressed = now(); }, {capture: true, once: true});
  let counted = 0;
  const done = () => """
    + DONE
    + """;
  new MutationObserver(() => {
    if (state.shown === null && state.pressed !== null) {
      const fresh = ['l1', 'random'].map(metric);
      if (fresh.every((text, i) => text.includes('%') && text !== stale[i])) {
        state.shown = -1;
        requestAnimationFrame(() => { state.shown = now(); });
      }
    }
    if (state.shown === null) return;
    // epochs fine-tuned so far, over both runs: the progress bar's share, or all of them once done
    const bar = document.querySelector('[data-testid="stProgress"] [role="progressbar"]');
    const total = 2 * epochs;
    const drawn = done() ? total : bar ? Math.round(bar.getAttribute('aria-valuenow') * total / 100) : 0;
    while (counted < drawn) {
      counted += 1;
      requestAnimationFrame(() => { state.points.push(now()); });
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
}"""
)


def wait_until_serving(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def one_run(port: int, presses: int, epochs: int) -> dict[str, list[float]]:
    env = {**os.environ, "PLASTICITY_HOME": tempfile.mkdtemp(prefix="plasticity-bench-")}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    figures: dict[str, list[float]] = {name: [] for name in TARGETS}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(120_000)
        page.add_init_script(RECORD_HOME)
        page.goto("about:blank")
        started = time.time() * 1000
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_serving(port)
            page.goto(f"http://127.0.0.1:{port}/", wait_until="commit")
            page.wait_for_function("() => window.__home && window.__home.whole > 0", polling=250)
            home = page.evaluate("() => window.__home")
            figures["first_screen"].append((home["first"] - started) / 1000)
            figures["whole_home"].append((home["whole"] - started) / 1000)

            page.goto(f"http://127.0.0.1:{port}/prune?finetune_epochs={epochs}&ratio=50")
            page.wait_for_function(BOTH_DONE, polling=250)
            thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
            for key in ["PageUp"] + ["ArrowRight"] * presses:  # 50% -> 60%, then 65%, 70%...
                time.sleep(1.0)  # the page settled, as after a teacher's last look
                page.evaluate(ARM_PRUNE, epochs)
                thumb.focus()
                thumb.press(key)
                page.wait_for_function(f"() => window.__prune.points.length >= {2 * epochs}", polling=250)
                page.wait_for_function(BOTH_DONE, polling=250)
                state = page.evaluate("() => window.__prune")
                figures["pruned_jump" if key == "PageUp" else "pruned_step"].append(
                    (state["shown"] - state["pressed"]) / 1000
                )
                marks = [state["shown"], *state["points"]]
                figures["epoch"] += [(b - a) / 1000 for a, b in zip(marks, marks[1:])]
        finally:
            server.terminate()
            server.wait(20)
            browser.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="server starts")
    parser.add_argument("--presses", type=int, default=2, help="slider steps per server start, after one jump")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    totals: dict[str, list[float]] = {name: [] for name in TARGETS}
    for _ in range(args.runs):
        for name, values in one_run(args.port, args.presses, args.epochs).items():
            totals[name] += values
    summary = {
        name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "n": len(v), "values": v}
        for name, v in totals.items()
    }
    if args.out:
        settings = {"runs": args.runs, "presses": args.presses, "epochs": args.epochs}
        Path(args.out).write_text(json.dumps({**settings, "targets_s": TARGETS, **summary}, indent=2) + "\n")
    for name, figures in summary.items():
        target = f"target < {TARGETS[name]} s" if TARGETS[name] else "no target"
        print(
            f"{name:>12}: median {figures['median_s']:.2f} s over {figures['n']} "
            f"(min {figures['min_s']:.2f}, max {figures['max_s']:.2f}; {target})"
        )


if __name__ == "__main__":
    main()
