"""A class on one server: N students move the Prune & recover slider while two sessions run comparisons.

One real `streamlit run app.py` on loopback, a fresh run store for each N. The server is first warmed up
as a class's server is before the students arrive: one visit to Home, then a wait until the server's CPU
is quiet (it imports the library and loads the default in the background after its first page). Two
sessions then start a
comparison each (different ratios, so both compute); once both are fine-tuning, N students open Prune &
recover at a starting ratio of their own with one fine-tuning epoch, wait for its pruned accuracies, and
move the ratio slider one 5% step to a ratio no other student asked for, one student every `--stagger`
seconds. Per student: slider released -> both pruned accuracies (criterion and random) of the new ratio
shown.

Two clients (`--client`):
- `sessions` (the default): each session is a websocket speaking Streamlit's own protocol
  (benchmarks/streamlit_session.py), as a browser tab does, without drawing anything. The students'
  browsers are on their own machines in a classroom; here they would share the server's 2 cores, so the
  server is measured alone. The time is from the rerun with the new slider value sent to both figures
  received.
- `chromium`: headless Chromium through Playwright, one browser context per session, on the same
  machine as the server. The time is from the key press (ArrowRight or ArrowLeft on the focused slider)
  to the first frame that shows both figures, measured inside the page.

Also counted: wrong results (a student shown a pruned accuracy that is neither its old ratio's nor its
new one's, or not the new one's at the end; the right figures are computed beforehand with the
library), errors shown on any page, whether both comparisons were still running when the last student
had its numbers, and, after the server has stopped, runs left half-written in the store (a row still
`running`, a done row without its checkpoint file, a temporary checkpoint file).

`--think S` lets the students look at their first figures for S seconds before they move (0 by default: they
move the moment both are shown); a view prepares the runs one slider step away meanwhile.

The server's CPU time (user + system, read from /proc) from the first student's move to the last student's
figures is reported as `server_cpu_s`. With `--comparisons 0` it is the students' work alone (reruns, pruning,
evaluation, delivery), and `server_cpu_s / students` is what one slider move costs the server: with C cores,
N students moving at once cannot all have their figures sooner than N times that over C.

Run: .venv/bin/python benchmarks/bench_classroom.py [--students 1,5,10] [--client sessions|chromium] [--out FILE]
`--app DIR` serves another checkout's app.py (a worktree of an older commit) with this benchmark.
"""

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from streamlit_session import Session

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CRITERION = "l1"  # the Prune & recover page's default criterion, beside random
TARGET_P95_S = 1.5
CLIENTS = {
    "sessions": "Streamlit's websocket protocol, one connection per session, nothing drawn (streamlit_session.py)",
    "chromium": "Playwright: headless Chromium, one browser context per session",
}
COMPARISONS = [  # two sessions' comparisons: 3 criteria x 4 ratios x 1 seed x 3 epochs each
    "criteria=random&criteria=l1&criteria=l2&ratios=20&ratios=40&ratios=60&ratios=80&seeds=1&finetune_epochs=3",
    "criteria=random&criteria=l1&criteria=l2&ratios=30&ratios=50&ratios=70&ratios=90&seeds=1&finetune_epochs=3",
]

# The pruned accuracies the page shows for each ratio (its own formatting), from the repository's library.
EXPECTED = """
import json
from plasticity.runs import PruneConfig, TrainConfig, get_base, prune_run
from plasticity.store import RunStore
store = RunStore({home!r})
base = get_base(TrainConfig(), store)
shown = {{}}
for percent in range(0, 100, 5):
    shown[percent] = [
        f"{{prune_run(PruneConfig(base.config, name, percent / 100, 0, 1), store, base).result['acc_pruned']:.1%}}"
        for name in ({criterion!r}, "random")
    ]
print(json.dumps(shown))
"""

# On a student's page: when the key goes down, and the first frame in which both pruned accuracies are
# the new ratio's; any other figure seen in between (neither the old ratio's nor the new one's) is wrong.
ARM = """([before, after]) => {
  const now = () => performance.timeOrigin + performance.now();
  const metric = n => ([...document.querySelectorAll('[data-testid="stMetric"]')]
      .find(m => m.textContent.startsWith(n + ': just pruned')) || {textContent: ''}).textContent;
  const value = n => metric(n).replace(n + ': just pruned', '').trim();
  const names = ['__CRITERION__', 'random'];
  const state = {pressed: null, shown: null, wrong: []};
  window.__student = state;
  document.addEventListener('keydown', () => { state.pressed = now(); }, {capture: true, once: true});
  new MutationObserver(() => {
    if (state.pressed === null || state.shown !== null) return;
    const values = names.map(value);
    values.forEach((v, i) => {
      if (v.includes('%') && v !== before[i] && v !== after[i]) state.wrong.push(v);
    });
    if (values.every((v, i) => v === after[i])) {
      state.shown = -1;
      requestAnimationFrame(() => { state.shown = now(); });
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}""".replace("__CRITERION__", CRITERION)

ERRORS = """() => document.querySelectorAll('[data-testid="stException"]').length
    + [...document.querySelectorAll('[data-testid="stAlert"]')]
        .filter(a => /failed|error/i.test(a.textContent)).length"""
PRUNED_SHOWN = """() => [...document.querySelectorAll('[data-testid="stMetric"]')]
    .filter(m => m.textContent.includes('just pruned') && m.textContent.includes('%')).length == 2"""
RUNNING = """() => !!document.querySelector('[data-testid="stProgress"]')"""


def pruned_figures(saved: Path | None) -> dict[int, list[str]]:
    """The figures, from `saved` if it exists (they depend only on the shipped default), else computed now
    (and written to `saved`)."""
    if saved is not None and saved.exists():
        texts = json.loads(saved.read_text())
    else:
        home = tempfile.mkdtemp(prefix="plasticity-bench-expected-")
        code = EXPECTED.format(home=home, criterion=CRITERION)
        printed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
        texts = json.loads(printed.stdout)
        if saved is not None:
            saved.write_text(json.dumps(texts, indent=1) + "\n")
    return {int(percent): shown for percent, shown in texts.items()}


def moves(count: int, figures: dict[int, list[str]], jump: int = 5) -> list[tuple[int, int, str]]:
    """(start, target, key) for each student: one move of `jump` percent whose two figures both change,
    every ratio asked for by one student only."""
    taken, chosen = set(), []
    for start in range(0, 100, 10 if jump == 5 else 5):
        for target, key in ((start + jump, "ArrowRight"), (start - jump, "ArrowLeft")):
            if 0 <= target <= 95 and {start, target}.isdisjoint(taken):
                if all(a != b for a, b in zip(figures[start], figures[target])):
                    chosen.append((start, target, key))
                    taken |= {start, target}
                    break
    if len(chosen) < count:
        raise SystemExit(f"only {len(chosen)} students can have a step of their own whose figures both change")
    return chosen[:count]


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start") from None
            time.sleep(0.2)


def half_written(home: Path) -> int:
    """Rows still `running`, done rows without their checkpoint file, and temporary checkpoint files."""
    with sqlite3.connect(home / "runs.sqlite") as conn:
        rows = conn.execute("SELECT key, status, checkpoint FROM runs").fetchall()
    running = sum(1 for _, status, _ in rows if status == "running")
    missing = 0
    for key, status, checkpoint in rows:
        if status == "done" and key.startswith("prune-"):
            path = Path(checkpoint) if checkpoint else None
            if path is not None and not path.is_absolute():
                path = home / path
            missing += path is None or not path.exists()
    temporary = len(list(home.rglob("*.tmp*")))
    return running + missing + temporary


def one_class(
    students: int,
    port: int,
    figures: dict[int, list[str]],
    stagger: float,
    timeout: float,
    client: str,
    app: Path,
    think: float = 0.0,
    comparisons: int = 2,
    jump: int = 5,
):
    home = Path(tempfile.mkdtemp(prefix="plasticity-bench-class-"))
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    env = {**os.environ, "PLASTICITY_HOME": str(home)}
    server = subprocess.Popen(command, cwd=app, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    plan = moves(students, figures, jump)
    try:
        wait_until_serving(url, server)
        clock = ServerClock(server.pid)
        warmed_s = warm_up(url, clock)
        if client == "sessions":
            result = drive_sessions(url, plan, figures, stagger, timeout, think, comparisons, clock)
        else:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                try:
                    result = drive(browser, url, plan, figures, stagger, timeout, think, comparisons, clock)
                finally:
                    browser.close()
    finally:
        server.terminate()  # the server stops its jobs at exit: what was not finished is marked failed
        server.wait(60)
    return {**result, "warm_up_s": warmed_s, "half_written": half_written(home), "moves": plan}


class ServerClock:
    """The server process's CPU seconds (user + system, its threads included), from /proc."""

    def __init__(self, pid: int):
        self.stat = Path(f"/proc/{pid}/stat")
        self.tick = os.sysconf("SC_CLK_TCK")

    def __call__(self) -> float:
        fields = self.stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime, stime: fields 14 and 15 of stat(5)


QUIET_CPU_SHARE = 0.05  # the server is quiet once it uses less than this share of a core...
QUIET_SECONDS = 2.0  # ...over this long


def warm_up(url: str, clock: ServerClock, timeout: float = 180) -> float:
    """Visit Home, then wait until the server has been quiet for `QUIET_SECONDS`: its warm-up is over.
    Returns the seconds it took."""
    start = time.monotonic()
    home = Session(url, "")
    home.wait(lambda s: bool(s.metrics), timeout)
    home.close()
    last = clock()
    while time.monotonic() - start < timeout:
        time.sleep(QUIET_SECONDS)
        now = clock()
        if now - last < QUIET_CPU_SHARE * QUIET_SECONDS:
            break
        last = now
    return time.monotonic() - start


class Student:
    """A student's session, watching the two pruned accuracies as they arrive."""

    def __init__(self, url: str, start: int):
        self.session = Session(url, "prune", f"ratio={start}&finetune_epochs=1")
        self.before = self.after = None
        self.released = self.shown = None
        self.wrong: list[str] = []
        self.session.on_metric = self.saw

    def pruned(self) -> list[str]:
        return [self.session.metrics.get(f"{name}: just pruned", "") for name in (CRITERION, "random")]

    def move(self, target: int, before: list[str], after: list[str]) -> None:
        self.before, self.after = before, after
        self.released = time.perf_counter()
        self.session.set_slider("ratio", target)

    def saw(self, label: str, value: str) -> None:
        if self.released is None or self.shown is not None or not label.endswith(": just pruned"):
            return
        if "%" in value and value not in self.before and value not in self.after:
            self.wrong.append(f"{label} {value}")
        if self.pruned() == self.after:
            self.shown = time.perf_counter()


def drive_sessions(
    url: str,
    plan: list,
    figures: dict,
    stagger: float,
    timeout: float,
    think: float,
    comparisons: int,
    clock: ServerClock,
) -> dict:
    teachers = [Session(url, "compare", query) for query in COMPARISONS[:comparisons]]
    for teacher in teachers:
        teacher.wait(lambda s: "run_missing" in s.widgets, 180)
        teacher.click("run_missing")
    for teacher in teachers:
        teacher.wait(lambda s: s.progressing(), 180)

    pupils = [Student(url, start) for start, _, _ in plan]
    deadline = time.monotonic() + timeout
    ready = [
        pupil.session.wait(lambda s, p=pupil: all("%" in v for v in p.pruned()), max(0.0, deadline - time.monotonic()))
        for pupil in pupils
    ]
    time.sleep(think)  # the students look at their first numbers before they move on
    cpu_at_start = clock()
    for pupil, (start, target, _), moves_now in zip(pupils, plan, ready):
        if moves_now:
            pupil.move(target, figures[start], figures[target])
            time.sleep(stagger)

    deadline = time.monotonic() + timeout
    moved = [pupil for pupil, moves_now in zip(pupils, ready) if moves_now]
    for pupil in moved:
        pupil.session.wait(lambda s, p=pupil: p.shown is not None, max(0.0, deadline - time.monotonic()))
    server_cpu = clock() - cpu_at_start
    times = [pupil.shown - pupil.released for pupil in moved if pupil.shown is not None]
    result = {
        "times_s": times,
        "server_cpu_s": server_cpu,
        "unanswered": ready.count(False) + sum(pupil.shown is None for pupil in moved),
        "first_view_not_shown": ready.count(False),
        "wrong": sum(bool(pupil.wrong) for pupil in moved),  # a figure neither of its old ratio nor of its new
        "errors": sum(len(session.errors) for session in [*teachers, *(pupil.session for pupil in pupils)]),
        "comparisons_running_at_end": bool(teachers) and all(teacher.progressing() for teacher in teachers),
    }
    for session in [*teachers, *(pupil.session for pupil in pupils)]:
        session.close()
    return result


def open_page(browser, url: str):
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(180_000)
    page.goto(url, wait_until="commit")
    return page


def drive(
    browser,
    url: str,
    plan: list,
    figures: dict,
    stagger: float,
    timeout: float,
    think: float,
    comparisons: int,
    clock: ServerClock,
) -> dict:
    teachers = [open_page(browser, f"{url}/compare?{query}") for query in COMPARISONS[:comparisons]]
    for page in teachers:
        page.get_by_role("button", name="Run the").click()
    for page in teachers:
        page.wait_for_function(RUNNING, polling=250)

    pupils = [open_page(browser, f"{url}/prune?ratio={start}&finetune_epochs=1") for start, _, _ in plan]
    deadline = time.monotonic() + timeout
    ready = []  # the students whose first view showed its pruned accuracies in time: only they move the slider
    for page in pupils:
        try:
            page.wait_for_function(PRUNED_SHOWN, polling=250, timeout=max(1.0, deadline - time.monotonic()) * 1000)
            ready.append(True)
        except Exception:
            ready.append(False)
    time.sleep(think)
    cpu_at_start = clock()
    for page, (start, target, key), moves_now in zip(pupils, plan, ready):
        if not moves_now:
            continue
        page.evaluate(ARM, [figures[start], figures[target]])
        thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
        thumb.focus()
        thumb.press(key)
        time.sleep(stagger)

    deadline = time.monotonic() + timeout
    times, unanswered = [], ready.count(False)
    pupils = [page for page, moves_now in zip(pupils, ready) if moves_now]
    for page in pupils:
        left = max(0.0, deadline - time.monotonic())
        try:
            page.wait_for_function("() => window.__student.shown > 0", polling=100, timeout=left * 1000)
        except Exception:  # no figures for the new ratio within the timeout
            unanswered += 1
            continue
        state = page.evaluate("() => window.__student")
        times.append((state["shown"] - state["pressed"]) / 1000)
    server_cpu = clock() - cpu_at_start
    comparisons_running = bool(teachers) and all(page.evaluate(RUNNING) for page in teachers)
    wrong = sum(bool(page.evaluate("() => window.__student.wrong.length")) for page in pupils)
    errors = sum(page.evaluate(ERRORS) for page in teachers + pupils)
    never_shown = ready.count(False)
    return {
        "times_s": times,
        "server_cpu_s": server_cpu,
        "unanswered": unanswered,  # no figures within the timeout, for the first view or after the key
        "first_view_not_shown": never_shown,
        "wrong": wrong,
        "errors": errors,
        "comparisons_running_at_end": comparisons_running,
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", default="1,5,10", help="class sizes, comma separated")
    parser.add_argument("--stagger", type=float, default=0.2, help="seconds between two students' key presses")
    parser.add_argument("--timeout", type=float, default=90, help="seconds to wait for a student's figures")
    parser.add_argument(
        "--think", type=float, default=0.0, help="seconds the students look at their first figures before moving"
    )
    parser.add_argument(
        "--comparisons", type=int, choices=range(len(COMPARISONS) + 1), default=2, help="sessions running a comparison"
    )
    parser.add_argument(
        "--jump",
        type=int,
        choices=(5, 10),
        default=5,
        help="percent a student moves: 5 is one slider step, to a ratio the view has prepared ahead; 10 is two, "
        "to one it has not (sessions client only)",
    )
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument(
        "--app", type=Path, default=ROOT, help="the checkout whose app.py the server runs (another commit's worktree)"
    )
    parser.add_argument("--client", choices=["sessions", "chromium"], default="sessions", help="see the docstring")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    parser.add_argument(
        "--figures", type=Path, default=None, help="a JSON file of the right pruned accuracies (made if missing)"
    )
    args = parser.parse_args()
    if args.client == "chromium" and args.jump != 5:
        parser.error("--jump 10 needs --client sessions (the browser client presses one arrow key)")

    figures = pruned_figures(args.figures)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.app, capture_output=True, text=True)
    report = {
        "commit": commit.stdout.strip(),
        "client": CLIENTS[args.client],
        "stagger_s": args.stagger,
        "think_s": args.think,
        "comparisons": args.comparisons,
        "jump_percent": args.jump,
        "timeout_s": args.timeout,
        "target_p95_s": TARGET_P95_S,
        "load_average_at_start": os.getloadavg(),
        "classes": {},
    }
    for students in (int(n) for n in args.students.split(",")):
        figures_n = one_class(
            students,
            args.port,
            figures,
            args.stagger,
            args.timeout,
            args.client,
            args.app,
            think=args.think,
            comparisons=args.comparisons,
            jump=args.jump,
        )
        times = figures_n["times_s"]
        summary = {
            "students": students,
            "median_s": statistics.median(times) if times else None,
            "p95_s": percentile(times, 0.95) if times else None,
            **figures_n,
            "load_average_after": os.getloadavg(),
        }
        report["classes"][str(students)] = summary
        median = f"{summary['median_s']:.2f} s" if times else "-"
        p95 = f"{summary['p95_s']:.2f} s" if times else "-"
        print(
            f"N={students:>2}: median {median}, p95 {p95} (target {TARGET_P95_S} s); "
            f"no answer {summary['unanswered']}, wrong {summary['wrong']}, errors {summary['errors']}, "
            f"half-written {summary['half_written']}, server CPU {summary['server_cpu_s']:.2f} s "
            f"(warmed up in {summary['warm_up_s']:.0f} s), "
            f"comparisons still running {summary['comparisons_running_at_end']}",
            flush=True,
        )
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
