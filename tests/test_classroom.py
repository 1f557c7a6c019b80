"""One server, many sessions: the slider's work goes before long work, the same run is computed once, a
session that leaves stops its work, and a waiting job says what it waits for."""

import threading
import time
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from plasticity.errors import InvalidConfigError
from plasticity.jobs import running_jobs, runs_work, start_job, study_work
from plasticity.runs import PruneConfig
from plasticity.scheduler import SCHEDULER, Scheduler
from plasticity.store import RunStore
from plasticity.studies import Comparison
from ui.limits import Limits

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture(scope="module", autouse=True)
def optimiser_imported():
    """As the app's warm-up does: the first optimiser imports torch._dynamo (seconds on a loaded machine),
    which would otherwise fall in the first fine-tuning step of a test and hold every other job up."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)


@pytest.fixture(autouse=True)
def stop_jobs():
    yield
    for job in running_jobs():
        job.cancel()
        job.wait(60)


class CountingStore(RunStore):
    """The real store, counting how often each run is started."""

    def __init__(self, home):
        super().__init__(home)
        self.started: list[str] = []

    def start(self, key, kind, config):
        self.started.append(key)
        return super().start(key, kind, config)


def wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def open_page(page: str, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.run()
    return at.switch_page(page).run()


def test_a_comparison_running_in_one_session_does_not_hold_up_another_sessions_pruned_accuracy():
    comparing = open_page("pages/compare.py", criteria=["random", "l1"], ratios=["20", "45", "70"], seeds="1")
    comparing.button(key="run_missing").click().run()
    comparison = comparing.session_state["compare_job"][1]
    wait_until(lambda: comparison in SCHEDULER.computing())  # fine-tuning its first run

    student = open_page("pages/prune.py", ratio="35", finetune_epochs="1")
    pruning = student.session_state["prune_job"][1]
    assert pruning.session != comparison.session
    state = pruning.wait_for(lambda s: {"l1", "random"} <= set(s.results), timeout=60)
    assert {"l1", "random"} <= set(state.results)
    assert comparison.snapshot().running  # arrived while the comparison still runs
    shown = {metric.label: metric.value for metric in student.run().metric}
    assert shown["l1: just pruned"].endswith("%") and shown["random: just pruned"].endswith("%")


def test_the_same_run_asked_by_two_sessions_is_computed_once(tmp_path, default_base):
    store = CountingStore(tmp_path / "home")
    runs = {name: PruneConfig(default_base.config, name, 0.3, 0, 1) for name in ("l1", "random")}
    study = Comparison(default_base.config, ["l1", "random"], [0.3, 0.6], [0], 1)
    first = start_job("slider", runs_work(runs, store, "cpu", default_base), session="a")
    second = start_job("slider", runs_work(runs, store, "cpu", default_base), session="b")
    comparisons = [start_job("compare", study_work(study, store, "cpu"), session=s) for s in ("c", "d")]
    for job in (first, second, *comparisons):
        assert job.wait(300) and job.snapshot().error is None

    assert sorted(store.started) == sorted(set(store.started))  # each run started once
    pruned = {key for key in store.started if key.startswith("prune-")}
    assert pruned == set(study.keys())  # the slider's two runs are the comparison's at 30%
    for name in runs:
        assert first.snapshot().results[name]["acc_final"] == second.snapshot().results[name]["acc_final"]
        assert len(second.snapshot().results[name]["curve"]) == 1


def test_a_session_that_leaves_stops_its_long_work_and_leaves_nothing_half_written(tmp_path, default_base):
    store = RunStore(tmp_path / "home")
    study = Comparison(default_base.config, ["l1", "random"], [0.25, 0.5], [0], 3)
    connected = threading.Event()
    connected.set()
    job = start_job("compare", study_work(study, store, "cpu"), session="gone", alive=connected.is_set)
    wait_until(lambda: job in SCHEDULER.computing())
    connected.clear()  # the tab is closed
    assert job.wait(60)
    assert job.snapshot().cancelled
    runs = store.runs()
    assert runs and {run.status for run in runs} <= {"done", "failed"}
    assert all(run.result is None and run.checkpoint is None for run in runs if run.status == "failed")
    written = {path.name for path in store.checkpoints.iterdir()}
    assert written == {f"{run.key}.pt" for run in runs if run.status == "done"}  # no partial or temporary file


class Waiter:
    """A job as the scheduler sees it, driven by hand."""

    def __init__(self, session: str, runs_left: int = 1):
        self.session, self.runs_left, self.lines = session, runs_left, []

    def waiting(self, text):
        self.lines.append(text)


def no_stop() -> None:
    pass


def fine_tuning(scheduler: Scheduler, job: Waiter, steps: list, count: int) -> threading.Thread:
    """Long work of `count` steps in a thread, each a point where it gives the turn up, once it has begun."""

    def fine_tune():
        with scheduler.long(job, no_stop):
            for step in range(count):
                steps.append(step)
                scheduler.pause(job, no_stop)
                time.sleep(0.005)

    worker = threading.Thread(target=fine_tune)
    worker.start()
    wait_until(lambda: len(steps) > 3)
    return worker


def test_sessions_take_turns_and_a_waiting_job_sees_what_is_ahead_of_it():
    scheduler = Scheduler(quantum=0.0)
    first, second, third = Waiter("a", runs_left=3), Waiter("b"), Waiter("a")
    order = []

    def long_work(job, steps):
        with scheduler.long(job, no_stop):
            for _ in range(steps):
                order.append(job.session)
                scheduler.pause(job, no_stop)

    with scheduler.long(first, no_stop):  # session a computes; b, then a's second job, come to wait
        threads = [threading.Thread(target=long_work, args=(job, 2)) for job in (second, third)]
        threads[0].start()
        wait_until(lambda: second.lines)
        threads[1].start()
        wait_until(lambda: third.lines)
        assert second.lines[0] == "1 run ahead of yours"  # a's job has 3 left; b's one run goes after one of them
        assert third.lines[0] == "4 runs ahead of yours"  # all 3 of its session's first job, and b's one
    for thread in threads:
        thread.join(10)
    assert order[:2] == ["b", "a"]  # b's turn first: a had the cores
    assert second.lines[-1] is None and third.lines[-1] is None


def test_with_two_slots_two_sessions_compute_side_by_side_and_a_student_takes_one_slot_from_them():
    scheduler = Scheduler(quantum=60, slots=2)
    first, second, student = Waiter("a"), Waiter("b"), Waiter("student")
    first_steps, second_steps = [], []
    workers = [fine_tuning(scheduler, first, first_steps, 400), fine_tuning(scheduler, second, second_steps, 400)]
    assert set(scheduler.computing()) == {first, second}  # both began: neither waited for the other
    with scheduler.interactive(student):
        computing = scheduler.computing()
        assert student in computing and len(computing) == 2  # one long job gave its slot up, the other goes on
        (going_on,) = {first, second} & set(computing)
        steps = first_steps if going_on is first else second_steps
        before = len(steps)
        wait_until(lambda: len(steps) > before + 3)
    for worker in workers:
        worker.join(20)
    assert len(first_steps) == len(second_steps) == 400


def test_interactive_work_takes_the_turn_at_the_next_step_of_long_work():
    scheduler = Scheduler(quantum=60)
    long_job, student = Waiter("class"), Waiter("student")
    steps, paused_at = [], []
    worker = fine_tuning(scheduler, long_job, steps, 200)
    with scheduler.interactive(student):
        paused_at.append(len(steps))
        time.sleep(0.1)
        assert len(steps) == paused_at[0]  # long work waits while the slider's work computes
    worker.join(10)
    assert len(steps) == 200 and paused_at[0] < 200


def test_work_done_ahead_goes_before_long_work_and_after_interactive_work():
    scheduler = Scheduler(quantum=60)
    long_job, ahead, student = Waiter("class"), Waiter("ahead"), Waiter("student")
    steps, order = [], []

    def prepare():
        with scheduler.soon(ahead, no_stop):
            order.append(("ahead", len(steps)))

    worker = fine_tuning(scheduler, long_job, steps, 400)
    with scheduler.interactive(student):  # the slider's own work holds the turn while the next steps wait
        preparing = threading.Thread(target=prepare)
        preparing.start()
        wait_until(lambda: scheduler.others_waiting(student))
        time.sleep(0.1)
        order.append(("student", len(steps)))
    preparing.join(10)
    worker.join(20)
    assert [name for name, _ in order] == ["student", "ahead"]  # interactive work first...
    assert order[1][1] < 400  # ...then the work done ahead, before the long work it came after had ended


def test_a_run_stopped_at_its_first_report_is_marked_failed_not_left_running(tmp_path, default_base):
    store = RunStore(tmp_path / "home")
    config = PruneConfig(default_base.config, "l1", 0.5, 0, 1)

    def stopped(result: dict) -> None:
        raise InterruptedError("the job was cancelled")  # what a cancelled job's pause raises

    with pytest.raises(InterruptedError):
        config.begin(store, default_base, stopped)
    assert store.get(config.key).status == "failed"


def test_a_latency_measurement_gives_its_job_a_pause_point_every_round():
    from plasticity.pruning.cost import interleaved_latency

    rounds = []
    model = torch.nn.Linear(4, 2)
    interleaved_latency({"a": model, "b": model}, torch.zeros(8, 4), repeats=5, between=lambda: rounds.append(1))
    assert len(rounds) == 5


def test_with_many_running_jobs_the_live_views_redraw_less_often(monkeypatch):
    import ui.jobs

    monkeypatch.setattr(ui.jobs, "running_jobs", lambda: [object()] * 2)
    assert ui.jobs.refresh_seconds() == ui.jobs.REFRESH_SECONDS
    monkeypatch.setattr(ui.jobs, "running_jobs", lambda: [object()] * 12)
    assert ui.jobs.refresh_seconds() == pytest.approx(ui.jobs.REFRESH_SECONDS * 12 / ui.jobs.FULL_RATE_JOBS)
    monkeypatch.setattr(ui.jobs, "running_jobs", lambda: [object()] * 500)
    assert ui.jobs.refresh_seconds() == ui.jobs.MAX_REFRESH_SECONDS


def test_interactive_work_waiting_for_its_turn_stops_when_its_job_is_stopped():
    scheduler = Scheduler()
    holder, student = Waiter("class"), Waiter("student")
    stopped = threading.Event()

    def check() -> None:
        if stopped.is_set():
            raise InterruptedError("stopped")

    outcome = []

    def wait_for_turn() -> None:
        try:
            with scheduler.interactive(student, check):
                outcome.append("computed")
        except InterruptedError:
            outcome.append("stopped")

    with scheduler.interactive(holder):  # the turn stays taken, as by a step that never ends
        waiter = threading.Thread(target=wait_for_turn)
        waiter.start()
        stopped.set()
        waiter.join(10)
        assert outcome == ["stopped"]  # it did not wait for the turn to be given up
    assert not scheduler.others_waiting(holder)


def test_the_hosts_limits_bound_what_a_session_may_ask(monkeypatch):
    monkeypatch.setenv("PLASTICITY_MAX_EPOCHS", "4")
    monkeypatch.setenv("PLASTICITY_MAX_SWEEP", "6")
    monkeypatch.setenv("PLASTICITY_ALLOW_TRAINING", "0")
    compare = open_page("pages/compare.py", criteria=["random", "l1"], ratios=["20", "40", "60", "80"], seeds="1")
    assert compare.slider(key="finetune_epochs").max == 4
    assert "allows at most 6" in compare.error[0].value and not compare.button  # 8 runs planned: no Run button
    home = open_page("pages/home.py")
    assert not [button for button in home.button if button.key == "train"]
    assert "turned off on this server" in home.info[0].value

    monkeypatch.setenv("PLASTICITY_MAX_EPOCHS", "lots")
    with pytest.raises(InvalidConfigError, match="PLASTICITY_MAX_EPOCHS must be a whole number"):
        Limits.from_environment()
