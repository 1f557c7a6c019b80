"""Background jobs as the dashboard runs them: the pruned accuracies first, stops within a step, one import."""

import threading
import time

import pytest

from plasticity import jobs
from plasticity.jobs import Job, JobCancelled, StopCheck, prepare_work, runs_work, start_job
from plasticity.runs import PruneConfig, TrainConfig, get_base, prune_run
from plasticity.runs import prune as prune_runs
from plasticity.store import RunStore
from plasticity.train import Trainer


class RecordingJob(Job):
    """A real job that also keeps every report, in order."""

    def __init__(self, label: str, stop_when=None):
        super().__init__(label)
        self.reports: list[dict] = []
        self.stop_when = stop_when

    def report(self, progress=None, message=None, **results) -> None:
        super().report(progress, message, **results)
        self.reports.append(results)
        if self.stop_when and self.stop_when(self.snapshot()):
            self.cancel()


def configs(base, ratio: float, epochs: int = 1) -> dict[str, PruneConfig]:
    return {name: PruneConfig(base.config, name, ratio, 0, epochs) for name in ("l1", "random")}


def test_every_pruned_accuracy_is_reported_before_any_fine_tuning(store, default_base):
    runs = configs(default_base, 0.4)
    job = RecordingJob("prune")
    runs_work(runs, store, "cpu", default_base)(job)

    first_point = next(i for i, r in enumerate(job.reports) if any(res["curve"] for res in r.values()))
    pruned = [i for i, r in enumerate(job.reports) for name in r if name in runs]
    assert {name for r in job.reports[:first_point] for name in r} == set(runs)  # both, before any epoch
    assert min(pruned) < first_point
    final = job.snapshot().results
    assert all(final[name]["macs_pruned"] < final[name]["macs_base"] for name in runs)
    # latency is measured when fine-tuning is over (not before the first point), the base's beside it
    assert all(r[name]["latency_ms_pruned"] is None for r in job.reports[:first_point] for name in r)
    assert all(final[name]["latency_ms_pruned"] > 0 and final[name]["latency_ms_base"] > 0 for name in runs)
    assert all(store.get(config.key).status == "done" for config in runs.values())


def test_a_job_stopped_before_fine_tuning_keeps_no_half_run(store, default_base):
    runs = configs(default_base, 0.45)
    job = RecordingJob("prune", stop_when=lambda state: set(state.results) == set(runs))
    with pytest.raises(JobCancelled):
        runs_work(runs, store, "cpu", default_base)(job)
    statuses = {store.get(config.key).status for config in runs.values()}
    assert statuses == {"failed"}  # retried next time, never shown as a result
    assert all(result["curve"] == [] for result in job.snapshot().results.values())


def test_a_stop_ends_training_within_one_step(default_base):
    from plasticity.pruning.criteria import create_criterion
    from plasticity.pruning.prune import prune_model

    model = prune_model(default_base.model, create_criterion("l1"), 0.5, default_base.data).model
    job = Job("train")
    job.cancel()
    trainer = Trainer(model, default_base.data, callbacks=[StopCheck(job)])
    with pytest.raises(JobCancelled):
        trainer.fit(3)
    assert trainer.step == 1


def test_wait_for_returns_as_soon_as_the_result_is_in(store, default_base):
    runs = configs(default_base, 0.35, epochs=2)
    job = start_job("prune", runs_work(runs, store, "cpu", default_base))
    state = job.wait_for(lambda s: set(s.results) == set(runs), timeout=30)
    assert set(state.results) == set(runs) and all(0 <= r["acc_pruned"] <= 1 for r in state.results.values())
    job.cancel()
    assert job.wait(30)


def test_two_sessions_asking_for_the_default_at_once_import_it_once(tmp_path):
    store = RunStore(tmp_path / "home")
    bases, errors = [], []

    def ask() -> None:
        try:
            bases.append(get_base(TrainConfig(), store))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert [run.key for run in store.runs()] == [TrainConfig().key]
    assert bases[0].result == bases[1].result
    assert bases[0].model is not bases[1].model


def test_the_app_warm_up_imports_the_default_into_the_run_store(tmp_path, monkeypatch):
    from ui.startup import warm_up

    monkeypatch.setenv("PLASTICITY_HOME", str(tmp_path))
    warm_up()
    run = RunStore(tmp_path).get(TrainConfig().key)
    assert run is not None and run.status == "done" and run.result["acc"] > 0.9


def test_a_run_prepared_ahead_is_taken_over_with_the_result_of_pruning_now(store, default_base, tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "BUSY_JOBS", 10_000)  # other tests' jobs may still run in this process
    runs = configs(default_base, 0.65)
    prepare_work(list(runs.values()), store, default_base)(Job("prepare"))
    assert all(config.key in jobs._PREPARED for config in runs.values())
    assert all(store.get(config.key) is None for config in runs.values())  # kept out of the store

    job = RecordingJob("prune")
    runs_work(runs, store, "cpu", default_base)(job)
    assert not any(config.key in jobs._PREPARED for config in runs.values())  # taken, not copied
    fresh = RunStore(tmp_path / "fresh")
    for name, config in runs.items():
        pruned_now = prune_run(config, fresh, default_base).result
        result = job.snapshot().results[name]
        assert result["acc_pruned"] == pruned_now["acc_pruned"]
        assert result["channels"] == pruned_now["channels"]
        assert store.get(config.key).status == "done" and len(result["curve"]) == 1


def test_a_view_asking_for_a_run_while_it_is_prepared_waits_for_it_and_does_not_prune_it_again(
    store, default_base, monkeypatch
):
    monkeypatch.setattr(jobs, "BUSY_JOBS", 10_000)  # other tests' jobs may still run in this process
    config = configs(default_base, 0.55)["l1"]
    jobs._PREPARED.pop(config.key, None)  # a page of another test may have prepared it
    pruned, preparing, go_on = [], threading.Event(), threading.Event()
    real = prune_runs._prune

    def counted(*args, **kwargs):
        pruned.append(args[0].key)
        if not preparing.is_set():  # the preparation: held until the view has asked for the run
            preparing.set()
            go_on.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(prune_runs, "_prune", counted)
    ahead = threading.Thread(target=prepare_work([config], store, default_base), args=(Job("prepare"),))
    ahead.start()
    assert preparing.wait(10)
    job = RecordingJob("prune")
    view = threading.Thread(target=runs_work({"l1": config}, store, "cpu", default_base), args=(job,))
    view.start()
    time.sleep(0.2)  # the view now waits for the preparation
    go_on.set()
    ahead.join(10)
    view.join(60)
    assert pruned == [config.key]  # pruned once, ahead; the view took it over
    assert store.get(config.key).status == "done"
    assert config.key not in jobs._PREPARED


def test_nothing_is_prepared_ahead_while_the_server_is_busy(store, default_base, monkeypatch):
    runs = configs(default_base, 0.6)
    for config in runs.values():
        jobs._PREPARED.pop(config.key, None)  # a page of another test may have prepared them
    monkeypatch.setattr(jobs, "running_jobs", lambda: [object()] * (jobs.BUSY_JOBS + 1))
    prepare_work(list(runs.values()), store, default_base)(Job("prepare"))
    assert not any(config.key in jobs._PREPARED for config in runs.values())
    monkeypatch.setattr(jobs, "running_jobs", lambda: [])
    prepare_work(list(runs.values()), store, default_base)(Job("prepare"))
    assert all(config.key in jobs._PREPARED for config in runs.values())


def test_only_quick_criteria_on_small_bases_are_prepared(store, default_base, monkeypatch):
    monkeypatch.setattr(jobs, "BUSY_JOBS", 10_000)  # other tests' jobs may still run in this process
    weights, data = (PruneConfig(default_base.config, name, 0.3, 0, 1) for name in ("l1", "taylor"))
    assert weights.preparable(default_base) and not data.preparable(default_base)
    prepare_work([data], store, default_base)(Job("prepare"))
    assert data.key not in jobs._PREPARED
    monkeypatch.setattr(prune_runs, "PREPARE_MAX_PARAMS", default_base.result["params"] - 1)
    assert not weights.preparable(default_base)
