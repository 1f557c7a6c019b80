"""Background jobs: long work in a worker thread that reports into a shared, locked object.

A UI starts a job and re-reads `job.snapshot()` on a timer; the worker never touches the UI,
so the page stays responsive and every user's job is their own object.
"""

from __future__ import annotations

import sys
import threading
import traceback
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch

from plasticity.criteria import create_criterion
from plasticity.errors import PlasticityError
from plasticity.experiment import (
    Base,
    PruneConfig,
    PrunedRun,
    TrainConfig,
    compare,
    get_base,
    measure_cost,
    prepare_run,
    prune_run,
    recover,
)
from plasticity.masks import MaskConfig, run_masks
from plasticity.store import RunStore
from plasticity.studies import Task, pretraining_study
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


def running_jobs() -> list[Job]:
    """Every job of this process that has not ended yet, whoever started it."""
    return [job for job in list(_STARTED) if not job._finished.is_set()]


def prune_work(configs: dict[str, PruneConfig], store: RunStore, device: torch.device | str, base: Base):
    """Work that prunes every named config first (each pruned accuracy shows at once), then fine-tunes
    them in turn, reporting every partial result under its name."""

    def work(job: Job) -> None:
        total = sum(config.finetune_epochs for config in configs.values()) or 1
        finished, pending = {}, {}
        for name, config in configs.items():
            stored = store.get(config.key)
            if stored and stored.status == "done":
                finished[name] = stored.result
                job.report(**{name: stored.result})
                continue

            def on_progress(result: dict, name=name) -> None:
                epochs_done = sum(len(r["curve"]) for r in {**finished, name: result}.values())
                job.report(epochs_done / total, f"{name}: epoch {len(result['curve'])}", **{name: result})

            job.report(message=f"pruning with {name}")
            with _all_cores():  # the page waits for these accuracies: a UI thread is idle meanwhile
                pending[name] = prune_run(config, store, base, on_progress, prepared=_take_prepared(config.key))
        try:
            for run in pending.values():
                job.check()
                measure_cost(run)
            for name, run in list(pending.items()):
                job.check()
                finished[name] = recover(run, store, callbacks=[_StopCheck(job)])
                del pending[name]
        finally:
            for run in pending.values():  # stopped before its turn: not a result, so not kept as one
                store.fail(run.config.key, "stopped before fine-tuning")

    return work


# Runs pruned ahead of time by `prepare_work`, by config key: the newest few, in memory only.
_PREPARED: OrderedDict[str, PrunedRun] = OrderedDict()
_PREPARED_LOCK = threading.Lock()
PREPARED_RUNS = 8
PREPARE_MAX_PARAMS = 5_000_000  # larger bases are not prepared ahead: each copy costs memory and seconds


def preparable(config: PruneConfig, base: Base) -> bool:
    """Whether `prepare_work` would prune `config` ahead: a small base, a criterion that needs neither
    data nor the training history (those take seconds, which would slow down what the user does next)."""
    criterion = create_criterion(config.criterion, config.seed)
    return base.result["params"] <= PREPARE_MAX_PARAMS and not (criterion.needs_data or criterion.needs_history)


def prepare_work(configs: list[PruneConfig], store: RunStore, base: Base):
    """Work that prunes and evaluates `configs` ahead of time, kept in memory, not in the store: a later
    `prune_work` for one of them takes it over at once. The dashboard prepares the ratios one slider
    step either side of the view, so stepping the slider shows the pruned accuracy without waiting."""

    def work(job: Job) -> None:
        for config in configs:
            job.check()
            stored = store.get(config.key)
            with _PREPARED_LOCK:
                ready = config.key in _PREPARED
            if ready or (stored and stored.status == "done") or not preparable(config, base):
                continue
            run = prepare_run(config, base)
            with _PREPARED_LOCK:
                _PREPARED[config.key] = run
                while len(_PREPARED) > PREPARED_RUNS:
                    _PREPARED.popitem(last=False)

    return work


def _take_prepared(key: str) -> PrunedRun | None:
    with _PREPARED_LOCK:
        return _PREPARED.pop(key, None)


class _StopCheck(Callback):
    """Stops the training loop within one step when the user asked the job to stop."""

    def __init__(self, job: Job):
        self.job = job

    def on_train_batch_end(self, trainer: Trainer, loss: float) -> None:
        self.job.check()


class _EpochReport(_StopCheck):
    def __init__(self, job: Job, epochs: int):
        super().__init__(job)
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        self.job.report(trainer.epoch / max(1, self.epochs), f"epoch {trainer.epoch}/{self.epochs}")
        self.job.check()


def train_work(config: TrainConfig, store: RunStore, device: torch.device | str):
    """Work that trains (or finds) the base for `config`, reporting each epoch."""

    def work(job: Job) -> None:
        base = get_base(config, store, device, callbacks=[_EpochReport(job, config.epochs)])
        job.report(1.0, "done", base={"key": config.key, **base.result})

    return work


def compare_work(base: TrainConfig, criteria, ratios, seeds, store: RunStore, device, *, finetune_epochs: int):
    """Work that fills the missing cells of a comparison, each seed pruning the same base."""

    def work(job: Job) -> None:
        def on_result(done: int, total: int, result: dict) -> None:
            job.report(done / total, f"{done} of {total} runs", **{result["key"]: result})

        compare(
            base,
            criteria,
            ratios,
            seeds,
            store,
            device,
            finetune_epochs=finetune_epochs,
            base_seed=base.seed,
            on_result=on_result,
            should_stop=lambda: job.stop_requested,
        )

    return work


def masks_work(configs: dict[str, MaskConfig], store: RunStore, device: torch.device | str, base: Base):
    """Work that runs each named mask search in turn, reporting every partial result under its name
    (the validation accuracies as the masks are scored, then the retraining curve)."""

    def work(job: Job) -> None:
        for i, (name, config) in enumerate(configs.items()):

            def on_progress(result: dict, name=name, i=i, config=config) -> None:
                job.check()
                scored, epochs = len(result["val_accs"]) / config.n_masks, len(result["curve"])
                share = 0.3 * scored + 0.7 * epochs / max(1, config.finetune_epochs)
                stage = f"epoch {epochs}" if result.get("acc_pruned") is not None else f"mask {len(result['val_accs'])}"
                job.report((i + share) / len(configs), f"{name}: {stage}", **{name: result})

            job.report(message=f"{name}: scoring {config.n_masks} masks")
            result = run_masks(config, store, device, base=base, on_progress=on_progress)
            job.report((i + 1) / len(configs), **{name: result})

    return work


def class_subset_work(
    base: TrainConfig,
    criteria: list[str],
    ratios: list[float],
    seeds: list[int],
    classes: tuple[int, ...],
    store: RunStore,
    device: torch.device | str,
    *,
    finetune_epochs: int,
    subset_finetune_epochs: int | None = None,
):
    """Work that fills the missing runs of a class-specific comparison: every criterion pruned for `classes`
    (fine-tuned `subset_finetune_epochs`, by default `finetune_epochs`), then the same pruned for every class,
    all on the one base."""
    subset_epochs = finetune_epochs if subset_finetune_epochs is None else subset_finetune_epochs

    def work(job: Job) -> None:
        per_scope = len(criteria) * len(ratios) * len(seeds)
        for offset, scope, epochs in ((0, tuple(classes), subset_epochs), (per_scope, (), finetune_epochs)):
            if job.stop_requested:
                return

            def on_result(done: int, total: int, result: dict, offset=offset) -> None:
                runs = f"{offset + done} of {2 * total} runs"
                job.report((offset + done) / (2 * total), runs, **{result["key"]: result})

            compare(
                base,
                criteria,
                ratios,
                seeds,
                store,
                device,
                finetune_epochs=epochs,
                classes=scope,
                base_seed=base.seed,
                on_result=on_result,
                should_stop=lambda: job.stop_requested,
            )

    return work


def pretraining_work(
    model: str,
    target: Task,
    source: Task | str,
    criterion: str,
    ratios: list[float],
    seeds: list[int],
    store: RunStore,
    device: torch.device | str,
    *,
    epochs: int,
    source_epochs: int,
    finetune_epochs: int,
):
    """Work that runs the pre-training study's missing runs (training its bases first where needed)."""

    def work(job: Job) -> None:
        job.report(message="training the bases that are not in the store, then pruning")

        def on_result(done: int, total: int, row: dict) -> None:
            label = f"{done} of {total} runs (last: {row['modality']}, seed {row['seed']}, ratio {row['ratio']:.0%})"
            job.report(done / total, label, **{row["key"]: row})

        pretraining_study(
            model,
            target,
            source,
            criterion,
            ratios,
            seeds,
            store,
            device,
            epochs=epochs,
            source_epochs=source_epochs,
            finetune_epochs=finetune_epochs,
            on_result=on_result,
            should_stop=lambda: job.stop_requested,
        )

    return work
