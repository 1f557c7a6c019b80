"""Sweeps on Ray (`plasticity.executors`): the same results as in this process, the driver alone writes the
store, a killed worker's run is retried and written once, a killed driver's sweep resumes, and without Ray
`--executor ray` is one line. Ray itself runs here: one local instance with 2 CPUs for the module."""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from plasticity.checkpoint import load_checkpoint
from plasticity.errors import InvalidConfigError
from plasticity.executors import RAY_MISSING, RayExecutor, SweepError
from plasticity.runs import TrainConfig
from plasticity.store import RunStore
from plasticity.studies import Comparison

TINY_BASE = TrainConfig(dataset="digits", epochs=1)
TIMINGS = ("seconds", "train_seconds")  # and every latency field: measured, so never the same twice


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs, started once for the module (its start-up takes seconds)."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def _without_timings(result: dict) -> dict:
    return {name: value for name, value in result.items() if name not in TIMINGS and not name.startswith("latency")}


def _one_thread(function):
    """`function()` with torch on one thread, as a one-CPU Ray task runs (CPU training is bit-for-bit
    repeatable at a fixed thread count; a different count sums in another order)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return function()
    finally:
        torch.set_num_threads(threads)


def test_ray_gives_the_results_of_the_in_process_sweep(ray_cluster, tmp_path):
    study = Comparison(TINY_BASE, ("random", "l1"), (0.5,), (0,), finetune_epochs=1)
    here, there = RunStore(tmp_path / "here"), RunStore(tmp_path / "there")
    expected = _one_thread(lambda: study.run(here))
    statuses = []
    rows = study.run(there, executor=RayExecutor(cpus_per_run=1), on_status=statuses.append)

    assert [_without_timings(row) for row in rows] == [_without_timings(row) for row in expected]
    for key in (TINY_BASE.key, *study.keys()):  # the base and every run, stored by the driver with their files
        stored, reference = there.done(key), here.done(key)
        assert _without_timings(stored.result) == _without_timings(reference.result)
        weights, expected_weights = (
            load_checkpoint(stored.checkpoint).state_dict,
            load_checkpoint(reference.checkpoint).state_dict,
        )
        assert all(torch.equal(weights[name], tensor) for name, tensor in expected_weights.items())
        for layer, norms in here.history(key).state_dict()["l1"].items():
            assert torch.allclose(there.history(key).state_dict()["l1"][layer], norms, rtol=0, atol=0, equal_nan=True)
    assert statuses[-1].done == 2 and statuses[-1].failed == 0 and statuses[-1].running == 0
    assert not list(there.checkpoints.glob(".*.tmp"))


def test_a_run_that_fails_for_its_own_reason_is_reported_after_the_others(ray_cluster, tmp_path):
    store = RunStore(tmp_path / "home")
    study = Comparison(TINY_BASE, ("random",), (0.5,), (0, 1), finetune_epochs=1, lr=1e12)  # diverges
    good = Comparison(TINY_BASE, ("random",), (0.5,), (0,), finetune_epochs=1)
    good.run(store, executor=RayExecutor())
    with pytest.raises(SweepError, match=r"2 of 2 runs failed.*DivergedError: the loss became"):
        study.run(store, executor=RayExecutor())
    for key in study.keys():
        run = store.get(key)
        assert run.status == "failed" and run.error.startswith("DivergedError") and run.result is None
    assert store.done(good.keys()[0])  # the good run, and both bases, are untouched
    assert store.done(TINY_BASE.key) and store.done(study.plan()[1].config.base.key)


def _ray_task_pids(name: str) -> list[int]:
    """Processes whose title says they compute a Ray task `name` now (Ray retitles a worker per task)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.strip() == f"ray::{name}".encode():
            pids.append(int(cmdline.parent.name))
    return pids


def test_a_killed_worker_s_run_is_retried_and_written_once(ray_cluster, tmp_path):
    store = RunStore(tmp_path / "home")
    study = Comparison(TINY_BASE, ("l1",), (0.5,), (0,), finetune_epochs=4)
    sweep = threading.Thread(target=study.run, args=(store,), kwargs={"executor": RayExecutor(max_retries=2)})
    sweep.start()
    killed, deadline = [], time.monotonic() + 120
    while not killed and sweep.is_alive() and time.monotonic() < deadline:
        for pid in _ray_task_pids("run_task"):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        time.sleep(0.01)
    sweep.join(timeout=180)
    assert killed, "the run ended before its worker could be killed"
    assert not sweep.is_alive()

    (key,) = study.keys()
    assert [run.key for run in store.runs(kind="prune")] == [key]  # one row, done by the retry
    run = store.done(key)
    assert run and len(run.result["curve"]) == 4 and run.checkpoint.exists()
    assert not list(store.checkpoints.glob(".*.tmp"))
    reference = _one_thread(lambda: study.run(RunStore(tmp_path / "reference")))[0]
    assert _without_timings(run.result) == _without_timings(reference)


def test_a_killed_driver_s_sweep_resumes_with_the_unfinished_runs(ray_cluster, tmp_path, capsys):
    from plasticity.cli import main

    home = tmp_path / "home"
    args = [
        "compare", "--home", str(home), "--dataset", "digits", "--epochs", "1", "--criteria", "random,l1",
        "--ratios", "0.25,0.5,0.75", "--seeds", "0", "--finetune-epochs", "3", "--executor", "ray",
    ]  # fmt: skip
    address = ray_cluster.get_runtime_context().gcs_address
    driver = subprocess.Popen(
        [sys.executable, "-m", "plasticity.cli", *args, "--ray-address", address], stderr=subprocess.DEVNULL
    )
    store, deadline = RunStore(home), time.monotonic() + 240
    while not store.runs(kind="prune", status="done") and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = {run.key: run.finished for run in store.runs(status="done")}
    assert 0 < len(before) - 1 < 6, "the driver was to be killed halfway"

    assert main(args) == 0  # the same command again, driven from here
    after = {run.key: run.finished for run in store.runs(status="done")}
    assert len(after) == 7  # the base and 6 runs
    assert all(after[key] == finished for key, finished in before.items())  # what had arrived is not redone
    err = capsys.readouterr().err
    assert f"[{len(before) - 1}/6]" in err and "6/6 done, 0 running, 0 failed" in err


def test_without_ray_the_ray_executor_is_one_line_saying_how_to_install_it(tmp_path, monkeypatch, capsys):
    from plasticity.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where it is not installed
    assert main(["compare", "--executor", "ray", "--home", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {RAY_MISSING}\n"
    assert "pip install 'plasticity[ray]'" in RAY_MISSING
    assert not RunStore(tmp_path).runs()  # nothing was trained or started


@pytest.mark.parametrize(
    "args,message",
    [
        (["--cpus-per-run", "2"], "are for --executor ray"),
        (["--executor", "ray", "--device", "cpu"], "--device is for --executor inprocess"),
        (["--executor", "ray", "--cpus-per-run", "0"], "CPUs per run must be a positive number"),
    ],
)
def test_executor_options_that_do_not_fit_are_one_line(args, message, tmp_path, capsys):
    from plasticity.cli import main

    assert main(["compare", "--home", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_run_no_node_can_hold_is_refused_at_once(ray_cluster, tmp_path):
    study = Comparison(TINY_BASE, ("random",), (0.5,), (0,), finetune_epochs=1)
    with pytest.raises(InvalidConfigError, match="no node of the Ray cluster has 1 CPUs and 64 GPUs"):
        study.run(RunStore(tmp_path), executor=RayExecutor(gpus_per_run=64))
    assert not RunStore(tmp_path).runs()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_run_asks_for_cuda_and_ray_picks_the_gpu(ray_cluster, tmp_path):
    study = Comparison(TINY_BASE, ("random",), (0.5,), (0,), finetune_epochs=1)
    (row,) = study.run(RunStore(tmp_path), executor=RayExecutor(gpus_per_run=0.5))
    assert row["device"].startswith("cuda")


def test_a_dashboard_job_sends_a_study_to_ray_and_shows_the_sweep_s_counts(ray_cluster, tmp_path):
    from plasticity.jobs import ClusterExecutor, start_job, study_work

    store = RunStore(tmp_path / "home")
    study = Comparison(TINY_BASE, ("random", "l1"), (0.5,), (0,), finetune_epochs=1)
    job = start_job("compare", study_work(study, store, "cpu", ClusterExecutor(RayExecutor())))
    assert job.wait(timeout=300)
    state = job.snapshot()
    assert state.error is None and state.progress == 1.0
    assert state.message == "2 of 2 runs done, 0 running, 0 failed"
    assert set(state.results) == set(study.keys()) and all(store.done(key) for key in study.keys())


def test_the_host_s_ray_address_sends_the_pages_long_work_to_ray(monkeypatch):
    from plasticity.jobs import LOCAL, ClusterExecutor
    from ui import jobs

    assert jobs.long_work() is LOCAL
    pytest.importorskip("ray")
    monkeypatch.setenv("PLASTICITY_RAY_ADDRESS", "ray://head:10001")
    assert jobs.long_work() == ClusterExecutor(RayExecutor("ray://head:10001"))
    monkeypatch.setenv("PLASTICITY_RAY_ADDRESS", "local")
    assert jobs.long_work() == ClusterExecutor(RayExecutor(None))


@pytest.mark.parametrize(
    "command",
    [
        ["sensitivity", "--criterion", "l1", "--no-random", "--ratios", "0.5"],
        ["budget", "--criterion", "l1", "--ratios", "0.5", "--targets", "0.5", "--finetune-epochs", "1"],
    ],
    ids=["sensitivity", "budget"],
)
def test_the_sensitivity_and_budget_studies_give_the_in_process_results_on_ray(command, ray_cluster, tmp_path, capsys):
    from plasticity.cli import main

    args = [*command, "--dataset", "digits", "--epochs", "1", "--json"]
    assert _one_thread(lambda: main([*args, "--home", str(tmp_path / "here")])) == 0
    expected = json.loads(capsys.readouterr().out)
    assert main([*args, "--home", str(tmp_path / "there"), "--executor", "ray"]) == 0
    out, err = capsys.readouterr()
    assert [_without_timings(row) for row in json.loads(out)] == [_without_timings(row) for row in expected]
    assert f"{len(expected)}/{len(expected)} done, 0 running, 0 failed" in err  # the sweep's bar


def test_the_sensitivity_page_sends_its_missing_runs_to_the_host_s_ray(ray_cluster, tmp_path, monkeypatch):
    from test_app import job_of, open_page, run_until_done

    monkeypatch.setenv("PLASTICITY_HOME", str(tmp_path))
    monkeypatch.setenv("PLASTICITY_RAY_ADDRESS", "local")  # the Ray this process started
    at = open_page("pages/sensitivity.py", sensitivity_ratios=["50"])
    at.button(key="run_missing").click().run()
    run_until_done(at, "sensitivity_job", timeout=300)
    assert not at.exception and not at.error
    assert (at.dataframe[0].value["status"] == "done").all()
    assert job_of(at, "sensitivity_job").snapshot().message == "4 of 4 runs done, 0 running, 0 failed"  # Ray's counts
