"""Background jobs: long work in a worker thread that reports into a shared, locked object.

A UI starts a job and re-reads `job.snapshot()` on a timer; the worker never touches the UI,
so the page stays responsive and every user's job is their own object. Work is generic: any set of
named runs (`runs_work`, through the `RunConfig` protocol of `plasticity.runs`) or any study
(`study_work`, through `plasticity.studies.core.Study`); nothing here knows a run kind by name.
"""

from __future__ import annotations

import atexit
import sys
import threading
import traceback
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch

from plasticity.errors import PlasticityError
from plasticity.runs import Base, RunConfig, Started, TrainConfig, get_base
from plasticity.store import RunStore
from plasticity.studies.core import Study
from plasticity.train import Callback, Trainer

# One job computes at a time in this process: two threads each driving torch's OpenMP team
# oversubscribe the cores and both run many times slower than one after the other.
_COMPUTE = threading.Lock()


_STARTED: weakref.WeakSet = weakref.WeakSet()


_CORES = torch.get_num_threads()  # torch's own default, read before any worker lowers its count


@contextmanager
def _all_cores() -> Iterator[None]:
    """Let this worker's short burst use every core, then go back to one thread."""
    torch.set_num_threads(_CORES)
    try:
        yield
    finally:
        torch.set_num_threads(1)


class JobCancelled(Exception):
    """Raised inside the worker when the user asked the job to stop."""


@dataclass(frozen=True)
class JobState:
    """What a job has reported so far (a copy: safe to read while the worker goes on)."""

    label: str
    progress: float = 0.0  # 0..1
    message: str = ""
    results: dict = field(default_factory=dict)  # name -> latest (partial) result
    error: str | None = None
    done: bool = False
    cancelled: bool = False

    @property
    def running(self) -> bool:
        return not self.done


class Job:
    def __init__(self, label: str):
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified on every report and at the end
        self._state = JobState(label)
        self._stop = threading.Event()
        self._finished = threading.Event()

    def snapshot(self) -> JobState:
        with self._lock:
            return replace(self._state, results=dict(self._state.results))

    def report(self, progress: float | None = None, message: str | None = None, **results: dict) -> None:
        with self._lock:
            state = self._state
            self._state = replace(
                state,
                progress=state.progress if progress is None else progress,
                message=state.message if message is None else message,
                results={**state.results, **results},
            )
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[JobState], bool], timeout: float) -> JobState:
        """Block until `predicate(state)` holds, the job ends, or `timeout` seconds pass; the state then."""
        with self._changed:
            self._changed.wait_for(lambda: self._state.done or predicate(self._state), timeout)
        return self.snapshot()

    def cancel(self) -> None:
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def check(self) -> None:
        """Stop the work here if the user asked for it."""
        if self._stop.is_set():
            raise JobCancelled(self._state.label)

    def _finish(self, error: str | None = None, cancelled: bool = False) -> None:
        with self._lock:
            self._state = replace(self._state, done=True, error=error, cancelled=cancelled)
            self._changed.notify_all()
        self._finished.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (or `timeout` seconds pass); True when it has ended."""
        return self._finished.wait(timeout)

    def run(self, work: Callable[[Job], None]) -> None:
        try:
            self.report(message="waiting for another job to finish")
            with _COMPUTE:
                # One OpenMP thread for this worker: its team and the UI threads' teams otherwise fight
                # over the cores (LeNet-5 fine-tuning on 2 cores: 20 s an epoch instead of 1 s).
                torch.set_num_threads(1)
                self.check()
                self.report(message="starting")
                work(self)
        except JobCancelled:
            self._finish(cancelled=True)
        except PlasticityError as exc:
            self._finish(error=str(exc))
        except Exception as exc:  # a bug, not a user error: keep the traceback for the log
            traceback.print_exc(file=sys.stderr)
            self._finish(error=f"{exc.__class__.__name__}: {exc}")
        else:
            self._finish(cancelled=self.stop_requested)


def start_job(label: str, work: Callable[[Job], None]) -> Job:
    """Run `work(job)` in a daemon thread and return the job at once."""
    job = Job(label)
    _STARTED.add(job)
    threading.Thread(target=job.run, args=(work,), name=f"plasticity-job: {label}", daemon=True).start()
    return job


@atexit.register
def stop_jobs(timeout: float = 30.0) -> None:
    """Stop every running job and wait for its worker: a process that exits while a worker is inside
    torch aborts ("terminate called without an active exception")."""
    for job in running_jobs():
        job.cancel()
    for job in running_jobs():
        job.wait(timeout)


def running_jobs() -> list[Job]:
    """Every job of this process that has not ended yet, whoever started it."""
    return [job for job in list(_STARTED) if not job._finished.is_set()]


Work = Callable[["Job"], None]


def runs_work(configs: dict[str, RunConfig], store: RunStore, device: torch.device | str, base: Base) -> Work:
    """Work that begins every named run first (a pruned run's accuracy shows at once), settles them
    (MACs), then completes them in turn, reporting every partial result under its name."""

    def work(job: Job) -> None:
        latest: dict[str, dict] = {}
        started: dict[str, Started] = {}
        completing: set[str] = set()  # a stop asked while these run ends them at their next report

        def reporter(name: str, config: RunConfig):
            def on_progress(result: dict) -> None:
                latest[name] = result
                shares = [configs[n].progress(r) if n in started else 1.0 for n, r in latest.items()]
                job.report(sum(shares) / len(configs), f"{name}: {config.stage(result)}", **{name: result})
                if name in completing:
                    job.check()

            return on_progress

        for name, config in configs.items():
            if stored := store.done(config.key):
                latest[name] = stored.result
                job.report(**{name: stored.result})
                continue
            job.report(message=f"starting {name}")
            with _all_cores():  # the page waits for these first numbers: a UI thread is idle meanwhile
                started[name] = config.begin(store, base, reporter(name, config), prepared=_take_prepared(config.key))
        try:
            for run in started.values():
                job.check()
                run.settle()
            for name, run in list(started.items()):
                job.check()
                completing.add(name)
                latest[name] = run.complete([StopCheck(job)])
                del started[name]
        finally:
            for run in started.values():  # stopped before its turn: not a result, so not kept as one
                store.fail(run.config.key, "stopped before fine-tuning")

    return work


def study_work(study: Study, store: RunStore, device: torch.device | str) -> Work:
    """Work that runs a study's missing runs, reporting each finished run under its key."""

    def work(job: Job) -> None:
        def on_result(done: int, total: int, row: dict) -> None:
            job.report(done / total, f"{done} of {total} runs", **{row["key"]: row})

        study.run(store, device, on_result=on_result, should_stop=lambda: job.stop_requested)

    return work


def train_work(config: TrainConfig, store: RunStore, device: torch.device | str) -> Work:
    """Work that trains (or finds) the base for `config`, reporting each epoch."""

    def work(job: Job) -> None:
        base = get_base(config, store, device, callbacks=[_EpochReport(job, config.epochs)])
        job.report(1.0, "done", base={"key": config.key, **base.result})

    return work


# Runs begun ahead of time by `prepare_work`, by config key: the newest few, in memory only.
_PREPARED: OrderedDict[str, Started] = OrderedDict()
_PREPARED_LOCK = threading.Lock()
PREPARED_RUNS = 8


def prepare_work(configs: list[RunConfig], store: RunStore, base: Base) -> Work:
    """Work that does the quick part of `configs` ahead of time, kept in memory, not in the store: a
    later `runs_work` for one of them takes it over at once. The dashboard prepares the ratios one slider
    step either side of the view, so stepping the slider shows the pruned accuracy without waiting."""

    def work(job: Job) -> None:
        for config in configs:
            job.check()
            with _PREPARED_LOCK:
                ready = config.key in _PREPARED
            if ready or store.done(config.key) or not config.preparable(base):
                continue
            run = config.prepare(base)
            with _PREPARED_LOCK:
                _PREPARED[config.key] = run
                while len(_PREPARED) > PREPARED_RUNS:
                    _PREPARED.popitem(last=False)

    return work


def _take_prepared(key: str) -> Started | None:
    with _PREPARED_LOCK:
        return _PREPARED.pop(key, None)


class StopCheck(Callback):
    """Stops the training loop within one step when the user asked the job to stop."""

    def __init__(self, job: Job):
        self.job = job

    def on_train_batch_end(self, trainer: Trainer, loss: float) -> None:
        self.job.check()


class _EpochReport(StopCheck):
    def __init__(self, job: Job, epochs: int):
        super().__init__(job)
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        self.job.report(trainer.epoch / max(1, self.epochs), f"epoch {trainer.epoch}/{self.epochs}")
        self.job.check()
