"""Where a study's runs are computed: in this process (`InProcess`, the default), or as Ray tasks
(`RayExecutor`: on this machine's cores, or on a cluster).

Whichever the executor, the process that runs the study (the driver) is the only writer of the run store:
SQLite in WAL mode must not be shared over a network file system. A Ray task computes its run in a scratch
store of its own and returns it as `Record`s (the result, the filter-norm history, the checkpoint's bytes);
the driver writes each record in one transaction as it arrives, so a sweep that stops, or whose driver is
killed, resumes with the runs that had not arrived. A base is read from the store or trained by one task per
key, and handed to its runs as one object reference. Data sets are not shipped: each node reads its own
(the offline sets from their packages, the torchvision sets from `$PLASTICITY_DATA`).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch

from plasticity.checkpoint import write_atomically
from plasticity.errors import InvalidConfigError, PlasticityError
from plasticity.runs.base import Base, TrainConfig, get_base
from plasticity.runs.lifecycle import RunConfig, describe, start
from plasticity.store import RunStore
from plasticity.train import Callback, FilterNormHistory

EXECUTORS = ("inprocess", "ray")
CLIENT_ATTEMPTS = 3  # connections to a Ray client address (ray://HOST:10001) before giving up
CLIENT_RETRY_SECONDS = 2.0
RAY_MISSING = "the Ray executor (--executor ray) needs Ray, an optional extra: pip install 'plasticity[ray]'"


class SweepError(PlasticityError):
    """Runs of a sweep that failed for a reason of their own (kept in the store as failed)."""


@dataclass(frozen=True)
class SweepStatus:
    """How far a sweep is: runs done (stored ones included), running now, failed, of `total`."""

    total: int
    done: int = 0
    running: int = 0
    failed: int = 0


OnResult = Callable[[int, dict], None]  # (the run's position in the configs, its result)
OnStatus = Callable[[SweepStatus], None]


class Executor(Protocol):
    """Computes the runs of `configs` the store does not hold, and reports every run's result as it arrives.

    A config is any `RunConfig` with a `base` (a `TrainConfig`); its result is what the store keeps."""

    def run(
        self,
        configs: Sequence[RunConfig],
        store: RunStore,
        device: torch.device | str,
        *,
        on_result: OnResult,
        on_status: OnStatus | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        progress: bool = False,
    ) -> None: ...


@dataclass(frozen=True)
class InProcess:
    """Every run in turn in this process, one base loaded at a time and shared by the runs that need it.
    A failing run stops the sweep with its error (the runs before it are kept)."""

    def run(
        self,
        configs: Sequence[RunConfig],
        store: RunStore,
        device: torch.device | str = "cpu",
        *,
        on_result: OnResult,
        on_status: OnStatus | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        progress: bool = False,
    ) -> None:
        bases: dict[str, Base] = {}
        status = SweepStatus(len(configs))
        for index, config in enumerate(configs):
            if should_stop():
                break
            if on_status and not store.done(config.key):
                on_status(replace(status, running=1))
            result = stored_or_run(config, store, device, bases, progress)
            status = replace(status, done=status.done + 1)
            on_result(index, result)
            if on_status:
                on_status(status)


def stored_or_run(
    config: RunConfig,
    store: RunStore,
    device: torch.device | str,
    bases: dict[str, Base],
    progress: bool = False,
    *,
    on_progress: Callable[[dict], None] | None = None,
    callbacks: Iterable[Callback] = (),
) -> dict:
    """The stored result of `config`, or the run made now in this process; `bases` keeps the last base
    loaded for the next. `on_progress` hears of the partial result, `callbacks` join the training loops."""
    if done := store.done(config.key):
        return done.result
    if config.base.key not in bases:
        bases.clear()
        bases[config.base.key] = get_base(config.base, store, device, progress=progress, callbacks=callbacks)
    started = config.begin(store, bases[config.base.key], on_progress)
    started.settle()
    return started.complete(list(callbacks))


@dataclass(frozen=True)
class Record:
    """A finished run as a worker returns it and the driver writes it: its row, history and checkpoint."""

    key: str
    kind: str
    config: dict
    result: dict
    history: dict | None  # FilterNormHistory.state_dict()
    checkpoint: bytes | None  # the checkpoint file's bytes

    @classmethod
    def read(cls, store: RunStore, key: str) -> Record:
        """The done run `key` of `store`."""
        run = store.done(key)
        if run is None:
            raise PlasticityError(f"run {key} is not done in {store.home}")
        history = store.history(key)
        checkpoint = run.checkpoint.read_bytes() if run.checkpoint and run.checkpoint.exists() else None
        return cls(key, run.kind, run.config, run.result, history.state_dict() if history else None, checkpoint)

    def write(self, store: RunStore) -> None:
        """Store the run as done, as a run computed here is (`lifecycle.save`): its checkpoint file first
        (atomically), then its result and history in one transaction."""
        store.start(self.key, self.kind, self.config)
        path = None
        if self.checkpoint is not None:
            path = store.checkpoint_path(self.key)
            write_atomically(path, self.checkpoint)
        history = FilterNormHistory.from_state_dict(self.history) if self.history is not None else None
        store.finish(self.key, self.result, history, path)


def import_ray():
    """The `ray` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise PlasticityError(RAY_MISSING) from None
    return ray


@dataclass(frozen=True)
class RayExecutor:
    """Every missing run as a Ray task of `cpus_per_run` CPUs and `gpus_per_run` GPUs (fractions share one).

    `address` None starts Ray on this machine with its cores (or uses the Ray this process already
    started); "auto" joins the cluster `ray start` set up on this node; "ray://host:10001" a remote head.
    A task whose worker dies (killed, out of memory, node lost) is retried up to `max_retries` times; a run
    that fails for a reason of its own (NaN, a config error) is not retried, and is reported once the other
    runs are done.
    """

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_retries: int = 3

    def __post_init__(self):
        if not (math.isfinite(self.cpus_per_run) and self.cpus_per_run > 0):
            raise InvalidConfigError(f"CPUs per run must be a positive number; got {self.cpus_per_run}")
        if not (math.isfinite(self.gpus_per_run) and self.gpus_per_run >= 0):
            raise InvalidConfigError(f"GPUs per run must be 0 or more; got {self.gpus_per_run}")
        if self.max_retries < 0:
            raise InvalidConfigError(f"retries must be 0 or more; got {self.max_retries}")
        import_ray()  # without the extra, fail before any work

    @property
    def device(self) -> str:
        """What a task computes on: `cuda` when it has a GPU share (Ray sets CUDA_VISIBLE_DEVICES to the GPUs
        it gave the task, so never `cuda:N`), else the CPU."""
        return "cuda" if self.gpus_per_run > 0 else "cpu"

    def connect(self):
        """Ray, started or joined at `address` unless this process already did. A Ray client (`ray://`) is
        tried `CLIENT_ATTEMPTS` times: the head starts a server process for each driver that connects, and
        that start can fail once ("Initialization failure from server") and succeed the next time."""
        ray = import_ray()
        if ray.is_initialized():
            return ray
        attempts = CLIENT_ATTEMPTS if (self.address or "").startswith("ray://") else 1
        for attempt in range(1, attempts + 1):
            try:
                ray.init(address=self.address or "local", log_to_driver=False, logging_level=logging.WARNING)
                return ray
            except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:  # Ray's own, for a bad address
                if attempt < attempts:
                    time.sleep(CLIENT_RETRY_SECONDS)
                    continue
                first_line = next(iter(str(exc).strip().splitlines()), exc.__class__.__name__)
                raise PlasticityError(
                    f"cannot reach Ray at {self.address!r} ({first_line}); start a cluster with `ray start --head`, "
                    "or give --ray-address auto on one of its nodes, or ray://HEAD:10001"
                ) from None

    def check_fits(self, ray) -> None:
        """A run that no node can hold would wait for ever: say so at once."""
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        if not any(r.get("CPU", 0) >= self.cpus_per_run and r.get("GPU", 0) >= self.gpus_per_run for r in nodes):
            largest = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
            raise InvalidConfigError(
                f"no node of the Ray cluster has {self.cpus_per_run:g} CPUs and {self.gpus_per_run:g} GPUs for a run "
                f"(the largest has {largest.get('CPU', 0):g} and {largest.get('GPU', 0):g}); "
                "lower --cpus-per-run or --gpus-per-run"
            )

    def run(
        self,
        configs: Sequence[RunConfig],
        store: RunStore,
        device: torch.device | str = "cpu",
        *,
        on_result: OnResult,
        on_status: OnStatus | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        progress: bool = False,
    ) -> None:
        """`device` is the driver's; every task uses `self.device`."""
        ray = self.connect()
        self.check_fits(ray)
        sweep = _Sweep(ray, self, store, on_result, on_status or (lambda status: None), len(configs))
        try:
            sweep.submit(configs)
            sweep.follow(should_stop)
        except BaseException:  # interrupted: what is in flight is not a result, so it is not kept as one
            sweep.cancel("interrupted")
            raise
        sweep.raise_failures()


@dataclass
class _Pending:
    config: RunConfig  # a run, or a base (a TrainConfig) some runs wait for
    indices: list[int]  # its positions in the sweep's configs; none for a base


@dataclass
class _Sweep:
    """One sweep on Ray, driven from here: what is submitted, what has arrived, what failed."""

    ray: Any
    executor: RayExecutor
    store: RunStore
    on_result: OnResult
    on_status: OnStatus
    total: int
    pending: dict = field(default_factory=dict)  # ObjectRef -> _Pending
    bases: dict = field(default_factory=dict)  # base key -> ObjectRef of its records
    done: int = 0
    failures: list[str] = field(default_factory=list)
    failed_runs: int = 0

    def __post_init__(self):
        options = {
            "num_cpus": self.executor.cpus_per_run,
            "num_gpus": self.executor.gpus_per_run,
            "max_retries": self.executor.max_retries,
            "retry_exceptions": False,
        }
        self.train = self.ray.remote(train_task).options(**options)
        self.compute = self.ray.remote(run_task).options(**options)

    def submit(self, configs: Sequence[RunConfig]) -> None:
        """Every run the store does not hold, once per key; the stored ones are reported at once."""
        missing: dict[str, list[int]] = {}
        for index, config in enumerate(configs):
            if stored := self.store.done(config.key):
                self.arrived([index], stored.result)
            else:
                missing.setdefault(config.key, []).append(index)
        for indices in missing.values():
            config = configs[indices[0]]
            base = self.base(config.base)
            start(config, self.store)
            self.pending[self.compute.remote(config, self.executor.device, base)] = _Pending(config, indices)
        self.report()

    def base(self, config: TrainConfig):
        """The records of the base `config` as one object: read from the store, or trained by one task."""
        if config.key not in self.bases:
            stored = self.store.done(config.key)
            if stored and stored.checkpoint and stored.checkpoint.exists():
                self.bases[config.key] = self.ray.put([Record.read(self.store, config.key)])
            else:
                sources = [self.base(config.init_from)] if config.init_from is not None else []
                start(config, self.store)
                ref = self.train.remote(config, self.executor.device, *sources)
                self.pending[ref] = _Pending(config, [])
                self.bases[config.key] = ref
        return self.bases[config.key]

    def follow(self, should_stop: Callable[[], bool]) -> None:
        """Write each result as it arrives until none is pending (or the caller asks to stop)."""
        while self.pending:
            if should_stop():
                self.cancel("stopped")
                return
            ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=0.5)
            for ref in ready:
                self.arrive(ref, self.pending.pop(ref))
            self.report()

    def arrive(self, ref, pending: _Pending) -> None:
        try:
            records = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:  # the run's own error: not retried
            self.fail(pending, describe(exc.cause) if exc.cause is not None else str(exc).splitlines()[0])
            return
        except self.ray.exceptions.RayError as exc:  # its worker or node was lost on every try
            tries = self.executor.max_retries + 1
            self.fail(pending, f"its worker was lost on all {tries} tries ({exc.__class__.__name__})")
            return
        for record in records:
            record.write(self.store)
        if pending.indices:
            self.arrived(pending.indices, next(r.result for r in records if r.key == pending.config.key))

    def arrived(self, indices: list[int], result: dict) -> None:
        for index in indices:
            self.done += 1
            self.on_result(index, result)

    def fail(self, pending: _Pending, error: str) -> None:
        self.store.fail(pending.config.key, error)
        self.failures.append(f"{pending.config.key}: {error}")
        self.failed_runs += len(pending.indices)

    def cancel(self, reason: str) -> None:
        for ref, pending in self.pending.items():
            self.ray.cancel(ref)
            self.store.fail(pending.config.key, reason)
        self.pending.clear()

    def report(self) -> None:
        """The counts so far; "running" is the tasks (bases included) the cluster is computing now."""
        running = min(len(self.pending), self.busy_slots()) if self.pending else 0
        self.on_status(SweepStatus(self.total, self.done, running, self.failed_runs))

    def busy_slots(self) -> int:
        """How many tasks of this sweep's size the cluster's used CPUs (GPUs, for GPU runs) could hold."""
        if self.executor.gpus_per_run:
            resource, share = "GPU", self.executor.gpus_per_run
        else:
            resource, share = "CPU", self.executor.cpus_per_run
        used = self.ray.cluster_resources().get(resource, 0.0) - self.ray.available_resources().get(resource, 0.0)
        return round(used / share)

    def raise_failures(self) -> None:
        if self.failures:
            more = len(self.failures) - 3
            listed = "; ".join(self.failures[:3]) + (f"; and {more} more" if more > 0 else "")
            raise SweepError(
                f"{self.failed_runs} of {self.total} runs failed, kept in the store as failed (the others are done): "
                f"{listed}"
            )


def train_task(config: TrainConfig, device: str, *sources: list[Record]) -> list[Record]:
    """A Ray task: the base `config` (trained, or imported from the shipped assets), given its source bases."""
    return _in_scratch_store(sources, lambda scratch: get_base(config, scratch, device))


def run_task(config: RunConfig, device: str, base: list[Record]) -> list[Record]:
    """A Ray task: the run `config` on its base (given as records)."""

    def body(scratch: RunStore) -> None:
        started = config.begin(scratch, get_base(config.base, scratch, device))
        started.settle()
        started.complete([])

    return _in_scratch_store([base], body)


def _in_scratch_store(given: Sequence[list[Record]], body: Callable[[RunStore], object]) -> list[Record]:
    """`body` in a store of this task's own, holding the `given` records; every run it finished, as records."""
    _use_assigned_cpus()
    with tempfile.TemporaryDirectory(prefix="plasticity-task-") as home:
        scratch = RunStore(home)
        keys = set()
        for records in given:
            for record in records:
                record.write(scratch)
                keys.add(record.key)
        body(scratch)
        return [Record.read(scratch, run.key) for run in scratch.runs(status="done") if run.key not in keys]


def _use_assigned_cpus() -> None:
    """As many torch threads as CPUs Ray gave this task (Ray sets OMP_NUM_THREADS, which torch may not
    follow once its pool exists: a worker process runs many tasks)."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))


def make_executor(
    name: str,
    *,
    address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
) -> Executor:
    """The executor called `name` (one of `EXECUTORS`), with Ray's settings for "ray"."""
    if name == "inprocess":
        if address is not None or cpus_per_run != 1.0 or gpus_per_run:
            raise InvalidConfigError("--ray-address, --cpus-per-run and --gpus-per-run are for --executor ray")
        return InProcess()
    if name == "ray":
        return RayExecutor(address, cpus_per_run, gpus_per_run)
    raise InvalidConfigError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
