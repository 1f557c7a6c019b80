"""Background jobs: work in a worker thread that reports into a shared, locked object.

A UI starts a job and re-reads `job.snapshot()` on a timer; the worker never touches the UI,
so the page stays responsive and every user's job is their own object. Work is generic: any set of
named runs (`runs_work`, through the `RunConfig` protocol of `plasticity.runs`) or any study
(`study_work`, through `plasticity.studies.core.Study`); nothing here knows a run kind by name.

Jobs compute in the turns of `plasticity.scheduler`: the quick part of a view at once, long work in
turns per session. A run asked for by two jobs at once (same key) is computed by the first; the second
follows its progress (`_Flight`). A job whose session has left stops at its next step.
"""

from __future__ import annotations

import atexit
import itertools
import sys
import threading
import time
import traceback
import weakref
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Protocol

import torch

from plasticity.errors import PlasticityError
from plasticity.executors import RayExecutor, SweepStatus, stored_or_run
from plasticity.runs import Base, RunConfig, Started, TrainConfig, get_base
from plasticity.scheduler import SCHEDULER
from plasticity.store import RunStore
from plasticity.studies.core import Study
from plasticity.train import Callback, Trainer

_STARTED: weakref.WeakSet = weakref.WeakSet()
_SESSIONS = itertools.count()

# one job computes per core, each with one thread: torch's own default count, read before any worker lowers it
SCHEDULER.slots = torch.get_num_threads()
ALIVE_CHECK_SECONDS = 0.5  # how often a job asks whether its session is still there


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
    waiting: str | None = None  # what the job waits for ("2 runs ahead of yours, about 20 s"), while it waits

    @property
    def running(self) -> bool:
        return not self.done


class Job:
    def __init__(self, label: str, session: str | None = None, alive: Callable[[], bool] | None = None):
        """`session`: the jobs of one session share its turns (default: a session of its own); `alive`
        says whether the session is still there (the job stops when it is not)."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified on every report and at the end
        self._state = JobState(label)
        self._stop = threading.Event()
        self._finished = threading.Event()
        self.session = session or f"job-{next(_SESSIONS)}"
        self._alive = alive
        self._next_alive_check = 0.0
        self.runs_left = 1  # runs still to compute, for the waiting line of other jobs
        self._worker: threading.Thread | None = None  # the thread running it (start_job)

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

    def waiting(self, text: str | None) -> None:
        with self._lock:
            self._state = replace(self._state, waiting=text)
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
        """Whether the user asked the job to stop, or its session has left."""
        if not self._stop.is_set() and self._alive is not None and time.monotonic() > self._next_alive_check:
            self._next_alive_check = time.monotonic() + ALIVE_CHECK_SECONDS
            if not self._alive():
                self._stop.set()
        return self._stop.is_set()

    def check(self) -> None:
        """Stop the work here if the user asked for it."""
        if self.stop_requested:
            raise JobCancelled(self._state.label)

    def _finish(self, error: str | None = None, cancelled: bool = False) -> None:
        with self._lock:
            self._state = replace(self._state, done=True, error=error, cancelled=cancelled, waiting=None)
            self._changed.notify_all()
        self._finished.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (or `timeout` seconds pass); True when it has ended."""
        return self._finished.wait(timeout)

    def run(self, work: Callable[[Job], None]) -> None:
        try:
            # One OpenMP thread for this worker: its team and the UI threads' teams otherwise fight over
            # the cores (LeNet-5 fine-tuning on 2 cores: 20 s an epoch instead of 1 s).
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


def start_job(
    label: str, work: Callable[[Job], None], *, session: str | None = None, alive: Callable[[], bool] | None = None
) -> Job:
    """Run `work(job)` in a daemon thread and return the job at once (`session`, `alive`: see `Job`)."""
    job = Job(label, session, alive)
    _STARTED.add(job)
    job._worker = threading.Thread(target=job.run, args=(work,), name=f"plasticity-job: {label}", daemon=True)
    job._worker.start()
    return job


@atexit.register
def stop_jobs(timeout: float = 30.0) -> None:
    """Stop every running job and wait for its worker: a process that exits while a worker is inside
    torch aborts ("terminate called without an active exception")."""
    for job in running_jobs():
        job.cancel()
    deadline = time.monotonic() + timeout
    for job in list(_STARTED):
        if job._worker is not None:  # ended, or out of torch at its next step: the thread itself ends then
            job._worker.join(max(0.0, deadline - time.monotonic()))


def running_jobs() -> list[Job]:
    """Every job of this process that has not ended yet, whoever started it."""
    return [job for job in list(_STARTED) if not job._finished.is_set()]


Work = Callable[["Job"], None]


class _Flight:
    """A run being computed by one job of this process; every job that asked for it (its key) follows
    its progress, and it stops only when none of them wants it any more."""

    def __init__(self, key: str):
        self.key = key
        self.followers: dict[Job, Callable[[dict], None] | None] = {}
        self.latest: dict | None = None
        self.result: dict | None = None  # once ended: the finished result, or None when it did not finish
        self.ended = threading.Event()
        self._pause: Callable[[], None] = lambda: None

    def report(self, result: dict) -> None:
        self.latest = result
        for on_progress in list(self.followers.values()):
            if on_progress is not None:
                on_progress(result)
        self._pause()

    def long(self, job: Job) -> AbstractContextManager[None]:
        """`job`'s long turn for this run: each report of the run (pruned, costed, every epoch, latency) is also
        a point where the turn is given up to work with priority, besides every training step."""
        check = self.check(job)
        self._pause = lambda: SCHEDULER.pause(job, check)
        return SCHEDULER.long(job, check)

    def check(self, job: Job) -> Callable[[], None]:
        """A stop check for the job computing the run: it stops when no follower wants the run any more."""

        def check() -> None:
            if job.stop_requested and all(follower.stop_requested for follower in list(self.followers)):
                raise JobCancelled(job.snapshot().label)

        return check

    def wait(self, job: Job) -> dict | None:
        """Follow the run to its end (stopping if `job` is stopped); its result, or None if it did not finish."""
        while not self.ended.wait(0.25):
            job.check()
        return self.result


_FLIGHTS: dict[str, _Flight] = {}
_FLIGHTS_LOCK = threading.Lock()


def _in_flight(key: str) -> bool:
    with _FLIGHTS_LOCK:
        return key in _FLIGHTS


def _join(key: str, job: Job, on_progress: Callable[[dict], None] | None) -> tuple[_Flight, bool]:
    """The flight of run `key` with `job` among its followers, and whether `job` is the one to compute it."""
    with _FLIGHTS_LOCK:
        flight = _FLIGHTS.get(key)
        computes = flight is None
        if computes:
            flight = _FLIGHTS[key] = _Flight(key)
        flight.followers[job] = on_progress
        latest = flight.latest
    if latest is not None and on_progress is not None:
        on_progress(latest)  # the other session's pruned accuracy, at once
    return flight, computes


def _land(flight: _Flight, result: dict | None) -> None:
    with _FLIGHTS_LOCK:
        _FLIGHTS.pop(flight.key, None)
    flight.result = result
    flight.ended.set()


def _shared(
    job: Job,
    config: RunConfig,
    store: RunStore,
    on_progress: Callable[[dict], None] | None,
    compute: Callable[[_Flight], dict],
) -> dict:
    """The result of `config`: stored, or followed while another job computes it, or `compute(flight)` now."""
    while True:
        job.check()
        if stored := store.done(config.key):
            return stored.result
        flight, computes = _join(config.key, job, on_progress)
        if computes:
            try:
                result = compute(flight)
            except BaseException:
                _land(flight, None)
                raise
            _land(flight, result)
            return result
        job.report(message="following the same run, computed for another session")
        if (result := flight.wait(job)) is not None:
            return result


def runs_work(configs: dict[str, RunConfig], store: RunStore, device: torch.device | str, base: Base) -> Work:
    """Work that begins every named run first (a pruned run's accuracy shows at once: interactive work),
    settles them (MACs), then completes them in turn (long work), reporting every partial result under its
    name. A run another job computes already is followed, not computed again."""

    def work(job: Job) -> None:
        latest: dict[str, dict] = {}
        began: dict[str, tuple[Started, _Flight]] = {}
        followed: set[str] = set()

        def reporter(name: str, config: RunConfig) -> Callable[[dict], None]:
            def on_progress(result: dict) -> None:
                latest[name] = result
                ongoing = began.keys() | followed
                shares = [configs[n].progress(r) if n in ongoing else 1.0 for n, r in latest.items()]
                job.report(sum(shares) / len(configs), f"{name}: {config.stage(result)}", **{name: result})

            return on_progress

        for name, config in configs.items():
            if stored := store.done(config.key):
                reporter(name, config)(stored.result)
                continue
            flight, computes = _join(config.key, job, reporter(name, config))
            if not computes:
                followed.add(name)
                continue
            job.report(message=f"starting {name}")
            try:
                prepared = _take_prepared(config.key)
                with SCHEDULER.interactive(job, job.check):  # the page waits for these first numbers
                    began[name] = config.begin(store, base, flight.report, prepared=prepared), flight
            except BaseException:
                _land(flight, None)
                raise
        job.runs_left = len(began) + len(followed)
        try:
            if began:
                with SCHEDULER.interactive(job, job.check):
                    for run, _ in began.values():
                        job.check()
                        run.settle()
            for name, config in configs.items():
                if name in began:
                    run, flight = began[name]
                    job.check()
                    with flight.long(job):
                        result = run.complete([StopCheck(job, flight)])
                    SCHEDULER.finished_run(job)
                    del began[name]
                    _land(flight, result)
                elif name in followed:
                    on_progress = reporter(name, config)
                    on_progress(_shared(job, config, store, on_progress, partial(_complete, job, config, store, base)))
                    followed.discard(name)
                job.runs_left = len(began) + len(followed)
        finally:
            for run, flight in began.values():  # stopped before its turn: not a result, so not kept as one
                store.fail(run.config.key, "stopped before fine-tuning")
                _land(flight, None)

    return work


def _complete(job: Job, config: RunConfig, store: RunStore, base: Base, flight: _Flight) -> dict:
    """A whole run in one long turn (a followed run whose job stopped before it finished)."""
    with flight.long(job):
        run = config.begin(store, base, flight.report)
        run.settle()
        result = run.complete([StopCheck(job, flight)])
    SCHEDULER.finished_run(job)
    return result


class Executor(Protocol):
    """Where a study's runs are computed. `LocalExecutor` computes them in this process in the scheduler's
    turns; an executor for a cluster takes them elsewhere, while a view's interactive work stays here."""

    def run_study(self, study: Study, store: RunStore, device: torch.device | str, job: Job) -> None:
        """Compute the study's missing runs, reporting each finished run to `job` under its key."""


class LocalExecutor:
    def run_study(self, study: Study, store: RunStore, device: torch.device | str, job: Job) -> None:
        plan, bases = study.plan(), {}
        job.runs_left = study.missing(store)
        for done, planned in enumerate(plan, start=1):
            config = planned.config

            def compute(flight: _Flight, config=config) -> dict:
                with flight.long(job):
                    result = stored_or_run(
                        config, store, device, bases, on_progress=flight.report, callbacks=[StopCheck(job, flight)]
                    )
                SCHEDULER.finished_run(job)
                return result

            computed = not store.done(config.key)
            row = study.row(planned, _shared(job, config, store, None, compute))
            job.runs_left -= computed
            job.report(done / len(plan), f"{done} of {len(plan)} runs", **{row["key"]: row})


LOCAL = LocalExecutor()


@dataclass(frozen=True)
class ClusterExecutor:
    """A study's runs as Ray tasks (`executors.RayExecutor`: on this machine's cores or on a cluster), for a
    host that sets a Ray address. They take no turn here, so the turns stay with the views' own work."""

    ray: RayExecutor

    def run_study(self, study: Study, store: RunStore, device: torch.device | str, job: Job) -> None:
        job.runs_left = 0  # none of it waits for a turn in this process

        def on_status(status: SweepStatus) -> None:
            job.report(
                status.done / max(1, status.total),
                f"{status.done} of {status.total} runs done, {status.running} running, {status.failed} failed",
            )

        study.run(
            store,
            device,
            executor=self.ray,
            on_result=lambda done, total, row: job.report(**{row["key"]: row}),
            on_status=on_status,
            should_stop=lambda: job.stop_requested,
        )


def study_work(study: Study, store: RunStore, device: torch.device | str, executor: Executor = LOCAL) -> Work:
    """Work that runs a study's missing runs, reporting each finished run under its key."""

    def work(job: Job) -> None:
        executor.run_study(study, store, device, job)

    return work


def chained_work(
    first: Study,
    then: Callable[[], Study],
    store: RunStore,
    device: torch.device | str,
    executor: Executor = LOCAL,
) -> Work:
    """Work that runs `first`'s missing runs, then `then()` (a study planned from their results, like a
    MACs budget from its sensitivity analysis, in this session's turn) and that study's missing runs."""

    def work(job: Job) -> None:
        executor.run_study(first, store, device, job)
        job.report(1.0, "planning from its results")
        with SCHEDULER.long(job, job.check):
            second = then()
        job.report(0.0, "")
        executor.run_study(second, store, device, job)

    return work


def train_work(config: TrainConfig, store: RunStore, device: torch.device | str) -> Work:
    """Work that trains (or finds) the base for `config`, reporting each epoch."""

    def work(job: Job) -> None:
        def on_epoch(reported: dict) -> None:
            job.report(reported["epoch"] / max(1, config.epochs), f"epoch {reported['epoch']}/{config.epochs}")

        def compute(flight: _Flight) -> dict:
            with flight.long(job):
                return get_base(config, store, device, callbacks=[_EpochReport(job, flight)]).result

        result = _shared(job, config, store, on_epoch, compute)
        job.report(1.0, "done", base={"key": config.key, **result})

    return work


# Runs begun ahead of time by `prepare_work`, by config key: the newest few, in memory only; and the
# ones being begun now, each with the event set when it is done.
_PREPARED: OrderedDict[str, Started] = OrderedDict()
_PREPARING: dict[str, threading.Event] = {}
_PREPARED_LOCK = threading.Lock()
PREPARED_RUNS = 48  # a class of a dozen students, each with the four runs one slider step either side
BUSY_JOBS = 4  # with more jobs running in the server, nothing is prepared ahead
PREPARING_WAIT_SECONDS = 5.0  # the most a view waits for a run being prepared (a piece takes a fraction of a second)


def prepare_work(configs: list[RunConfig], store: RunStore, base: Base) -> Work:
    """Work that does the quick part of `configs` ahead of time, kept in memory, not in the store: a
    later `runs_work` for one of them takes it over at once. The dashboard prepares the ratios one slider
    step either side of the view, so stepping the slider shows the pruned accuracy without waiting.
    Each run is a short piece of work (a fraction of a second) computed in the scheduler's `soon` turn: after
    interactive work, before long work, so that a class's fine-tuning queued before it does not keep a
    student's next step from being ready."""

    def work(job: Job) -> None:
        for config in configs:
            job.check()
            if len(running_jobs()) > BUSY_JOBS:
                return  # a busy server: what a class's views ask for now goes first, not what they may ask next
            if store.done(config.key) or not config.preparable(base):
                continue
            with SCHEDULER.soon(job, job.check):
                # claimed only once computing: a view waits for a run being prepared, not for one still queued;
                # and not one a view computes already (it asked before this piece's turn came)
                with _PREPARED_LOCK:
                    if config.key in _PREPARED or config.key in _PREPARING or _in_flight(config.key):
                        continue
                    preparing = _PREPARING[config.key] = threading.Event()
                try:
                    run = config.prepare(base)
                    with _PREPARED_LOCK:
                        _PREPARED[config.key] = run
                        while len(_PREPARED) > PREPARED_RUNS:
                            _PREPARED.popitem(last=False)
                finally:
                    with _PREPARED_LOCK:
                        del _PREPARING[config.key]
                    preparing.set()

    return work


def _take_prepared(key: str) -> Started | None:
    """Run `key` begun ahead, if it was. One being begun right now is waited for: a view that began it again
    beside it took twice the CPU and showed its accuracy later (a student stepping the slider the moment the
    view was drawn steps to the run being prepared)."""
    with _PREPARED_LOCK:
        preparing = _PREPARING.get(key)
    if preparing is not None:
        preparing.wait(PREPARING_WAIT_SECONDS)
    with _PREPARED_LOCK:
        return _PREPARED.pop(key, None)


class StopCheck(Callback):
    """At every training step: stops the loop when the user asked the job to stop (or, for a run other
    jobs follow, when none of them wants it any more), and gives the compute turn up when other work
    has priority."""

    def __init__(self, job: Job, flight: _Flight | None = None):
        self.job = job
        self.check = flight.check(job) if flight is not None else job.check

    def on_train_batch_end(self, trainer: Trainer, loss: float) -> None:
        self.on_pause_point()

    def on_pause_point(self) -> None:
        self.check()
        SCHEDULER.pause(self.job, self.check)


class _EpochReport(StopCheck):
    def __init__(self, job: Job, flight: _Flight):
        super().__init__(job, flight)
        self.flight = flight

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        self.flight.report({"epoch": trainer.epoch})
        self.check()
