"""Pruning runs: prune a base, evaluate at once, fine-tune while recording the recovery curve.

A run has two phases: `prune_run` prunes a copy of the base and reports its accuracy (a tenth of a
second on LeNet-5), `recover` fine-tunes it and stores it. `run_prune` is both, through the store.
A schedule other than one-shot (`plasticity.pruning.schedule`) makes the first phase its first cut
and the second phase the rest: fine-tune, cut, ..., the last cut, fine-tune, each step in `steps`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar

import torch
from torch import nn

from plasticity.checkpoint import Checkpoint
from plasticity.data import Dataset
from plasticity.errors import InvalidConfigError
from plasticity.limits import check_epochs, check_lr, check_seed
from plasticity.pruning.cost import interleaved_latency, measure
from plasticity.pruning.criteria import create_criterion
from plasticity.pruning.groups import check_ratio, count_to_prune, dependency_graph, prunable_groups
from plasticity.pruning.prune import MODES, PruneResult, prune_model
from plasticity.pruning.schedule import ONE_SHOT, Schedule
from plasticity.runs.base import Base, TrainConfig, get_base
from plasticity.runs.lifecycle import RunConfig, Started, failing, save, start
from plasticity.store import RunStore
from plasticity.train import (
    Callback,
    EpochEnd,
    FilterNormHistory,
    ProgressBar,
    Trainer,
    accuracy,
    conv_layers,
    recalibrate_batchnorm,
    seed_everything,
)

PREPARE_MAX_PARAMS = 5_000_000  # larger bases are not pruned ahead: each copy costs memory and seconds


@dataclass(frozen=True)
class PruneConfig(RunConfig):
    """A base, and how it is pruned and fine-tuned."""

    kind: ClassVar[str] = "prune"

    base: TrainConfig = field(default_factory=TrainConfig)
    criterion: str = "random"
    ratio: float = 0.5
    seed: int = 0
    finetune_epochs: int = 3
    mode: str = "remove"
    lr: float = 0.01
    layer_ratios: tuple[tuple[str, float], ...] = ()
    classes: tuple[int, ...] = ()  # prune for these classes: criteria, fine-tuning and accuracy on them only
    recalibrate_bn: int = 0  # training batches that re-estimate BatchNorm statistics after each cut (0: none)
    schedule: str = ONE_SHOT  # one-shot, iterative:K or agp:K (`plasticity.pruning.schedule`)

    def __post_init__(self):
        check_ratio(self.ratio)
        if self.recalibrate_bn < 0:
            raise InvalidConfigError(f"recalibrate_bn must be >= 0 batches; got {self.recalibrate_bn}")
        schedule = Schedule.parse(self.schedule)
        object.__setattr__(self, "schedule", str(schedule))
        object.__setattr__(self, "classes", tuple(sorted({int(c) for c in self.classes})))
        if self.base.classes and not set(self.classes) <= set(self.base.classes):
            raise InvalidConfigError(
                f"the base knows only classes {list(self.base.classes)}; cannot prune for {list(self.classes)}"
            )
        MODES.get(self.mode)
        check_epochs(self.finetune_epochs, "finetune epochs")
        check_seed(self.seed)
        check_lr(self.lr)
        criterion = create_criterion(self.criterion)  # an unknown name fails here, before any work
        if schedule.steps > 1:
            schedule.epochs_per_step(self.finetune_epochs)
            if self.mode != "remove" or criterion.needs_history:
                raise InvalidConfigError(
                    f"a {schedule} schedule removes filters for real and scores each cut afresh: use mode remove "
                    "and a criterion that needs no training history"
                )

    def to_dict(self) -> dict:
        config = {**asdict(self), "base": self.base.to_dict(), "layer_ratios": [list(p) for p in self.layer_ratios]}
        if self.classes:
            config["classes"] = list(self.classes)
        else:
            del config["classes"]  # as before the field existed: earlier runs keep their keys
        for name, default in (("recalibrate_bn", 0), ("schedule", ONE_SHOT)):
            if config[name] == default:
                del config[name]
        return config

    def begin(self, store: RunStore, base: Base, on_progress=None, *, prepared: PrunedRun | None = None) -> PrunedRun:
        return prune_run(self, store, base, on_progress, prepared=prepared)

    def progress(self, result: dict) -> float:
        return len(result["curve"]) / self.finetune_epochs if self.finetune_epochs else 0.0

    def stage(self, result: dict) -> str:
        return f"epoch {len(result['curve'])}"

    def prepare(self, base: Base) -> PrunedRun:
        return prepare_run(self, base)

    def preparable(self, base: Base) -> bool:
        """A small base, and a criterion that needs neither data nor the training history (those take
        seconds, which would slow down what the user does next)."""
        criterion = create_criterion(self.criterion, self.seed)
        return base.result["params"] <= PREPARE_MAX_PARAMS and not (criterion.needs_data or criterion.needs_history)


@dataclass
class PrunedRun(Started):
    """A run between its two phases: pruned and evaluated (`prune_run`), not yet fine-tuned (`recover`)."""

    config: PruneConfig
    base: Base
    data: Dataset  # the base's data, or only the config's classes
    pruned: PruneResult
    result: dict
    on_progress: Callable[[dict], None] | None
    started: float
    store: RunStore | None = None

    def report(self) -> None:
        if self.on_progress:
            self.on_progress({**self.result, "curve": list(self.result["curve"])})

    def settle(self) -> None:
        # A report may stop the job: the claimed row is marked failed (a run prepared ahead has no row).
        with failing(self.config, self.store) if self.store is not None else nullcontext():
            measure_cost(self)

    def complete(self, callbacks: list[Callback]) -> dict:
        return recover(self, self.store, callbacks=callbacks)


def run_prune(
    config: PruneConfig,
    store: RunStore,
    device: torch.device | str = "cpu",
    *,
    base: Base | None = None,
    on_progress: Callable[[dict], None] | None = None,
    progress: bool = False,
    callbacks: Iterable[Callback] = (),
) -> dict:
    """Prune the base, evaluate, fine-tune `finetune_epochs`, recording the recovery curve.

    `on_progress` gets the partial result as soon as the pruned accuracy is known, again with the
    cost, and after every epoch; `callbacks` join the fine-tuning loop. A run already in the store
    is returned as it is.
    """
    if done := store.done(config.key):
        return done.result
    base = base or get_base(config.base, store, device, progress=progress)
    prepared = prepare_run(config, base)  # out of the store: a config that does not fit its base fails before a row
    if not start(config, store):  # another process computed it while this one waited
        return store.get(config.key).result
    run = prune_run(config, store, base, on_progress, prepared=prepared)
    return recover(run, store, progress=progress, callbacks=callbacks)


def prune_run(
    config: PruneConfig,
    store: RunStore,
    base: Base,
    on_progress: Callable[[dict], None] | None = None,
    *,
    prepared: PrunedRun | None = None,
) -> PrunedRun:
    """Phase one: prune a copy of the base and report its accuracy.

    The model is pruned before the run's row is written, so a config that does not fit its base leaves
    no row; then the run is claimed in the store (a claim this thread holds already is kept) and
    `recover` finishes it. Should another process finish it first, it is computed all the same and the
    other's stored result is kept. `prepared` is the same config already pruned by `prepare_run`: it is
    taken over, not pruned again.
    """
    if prepared is not None and prepared.config == config and prepared.base is base:
        run = replace(prepared, started=time.perf_counter())
    else:
        run = _prune(config, base, None)  # before the row: layers, classes or a ratio that do not fit fail here
    start(config, store)
    run = replace(run, on_progress=on_progress, store=store)
    with failing(config, store):  # a report may stop the job (it was cancelled): the claimed row is marked failed
        run.report()
    return run


def prepare_run(config: PruneConfig, base: Base) -> PrunedRun:
    """Phase one ahead of time, kept out of the store: pruned and evaluated, for a `prune_run` to take
    over if the user asks for it (the dashboard prepares the slider's neighbouring positions)."""
    return _prune(config, base, None)


def _prune(config: PruneConfig, base: Base, on_progress) -> PrunedRun:
    data, began = base.data.subset(config.classes), time.perf_counter()
    seed_everything(config.seed)
    schedule = Schedule.parse(config.schedule)
    pruned = _cut(config, base, base.model, data, schedule.fractions()[0])
    result = {
        "key": config.key,
        "model": config.base.model,
        "dataset": config.base.dataset,
        "criterion": config.criterion,
        "ratio": config.ratio,
        "seed": config.seed,
        "base_seed": config.base.seed,
        "mode": config.mode,
        "finetune_epochs": config.finetune_epochs,
        "acc_base": accuracy(base.model, data, data.test) if config.classes else base.result["acc"],
        "acc_pruned": None,
        "curve": [],
        "acc_final": None,
        "macs_base": base.result["macs"],
        "macs_pruned": None,
        "params_base": base.result["params"],
        "params_pruned": None,
        "nonzero_params_pruned": None,
        "latency_ms_base": base.result["latency_ms"],
        "latency_ms_pruned": None,
        "channels": pruned.channels,
        "device": str(data.device),
    }
    if config.classes:
        result["classes"] = list(config.classes)
    if schedule.steps > 1:
        result.update(schedule=config.schedule, steps=[])
    run = PrunedRun(config, base, data, pruned, result, on_progress, began)
    _after_cut(run, 0)
    run.report()  # the accuracy right after pruning; MACs and parameters come in `measure_cost`
    return run


def _cut(config: PruneConfig, base: Base, model: torch.nn.Module, data: Dataset, fraction: float) -> PruneResult:
    """Prune a copy of `model` so that every group has lost `fraction` of the filters the final ratio
    removes from the base (one-shot: all of them, in one go)."""
    criterion = create_criterion(config.criterion, config.seed)
    if config.schedule == ONE_SHOT:
        layer_ratios = dict(config.layer_ratios)
        return prune_model(
            model, criterion, config.ratio, data, mode=config.mode, layer_ratios=layer_ratios, history=base.history
        )
    return prune_model(model, criterion, 0.0, data, layer_ratios=_cut_ratios(config, base, model, data, fraction))


def _cut_ratios(config: PruneConfig, base: Base, model: torch.nn.Module, data: Dataset, fraction: float) -> dict:
    """The ratio of each group's remaining filters that this cut removes: counted on the base's filters, so
    the last cut leaves exactly what a one-shot cut would."""
    original = {name: conv.out_channels for name, conv in conv_layers(base.model).items()}
    final = dict(config.layer_ratios)
    ratios = {}
    for group in prunable_groups(model, dependency_graph(model, data.example_input())):
        target = count_to_prune(original[group.root], final.get(group.root, config.ratio) * fraction, group.root)
        gone = original[group.root] - group.size
        ratios[group.root] = max(0, target - gone) / group.size
    return ratios


def _after_cut(run: PrunedRun, step: int) -> None:
    """Measure a cut: recalibrate BatchNorm if asked (recording the accuracy with the stale statistics
    too), the accuracy right after it, its channels, and for a schedule its entry in `steps`."""
    config, model, data, result = run.config, run.pruned.model, run.data, run.result
    if config.recalibrate_bn:
        result["acc_pruned_stale_bn"] = accuracy(model, data, data.test)
        recalibrate_batchnorm(model, data, config.recalibrate_bn, config.base.batch_size, config.seed + step)
    original = {name: conv.out_channels for name, conv in conv_layers(run.base.model).items()}
    channels = {name: [kept, original[name]] for name, (kept, _) in run.pruned.channels.items()}  # of the base's
    result.update(acc_pruned=accuracy(model, data, data.test), channels=channels)
    if "steps" not in result:
        return
    schedule = Schedule.parse(config.schedule)
    entry = {
        "step": step + 1,
        "ratio": config.ratio * schedule.fractions()[step],
        "epoch": step * schedule.epochs_per_step(config.finetune_epochs),
        "acc_pruned": result["acc_pruned"],
        "channels": result["channels"],
    }
    if config.recalibrate_bn:
        entry["acc_pruned_stale_bn"] = result["acc_pruned_stale_bn"]
    result["steps"].append(entry)


def measure_cost(run: PrunedRun) -> None:
    """MACs and parameters of the pruned model (once; `recover` calls it if nobody did). Its latency is
    measured when fine-tuning is over, beside the base's (`_recover`)."""
    if run.result["macs_pruned"] is None:
        _measure_cost(run)
        run.report()


def _measure_cost(run: PrunedRun) -> None:
    cost = measure(run.pruned.model, run.data, latency=False)
    run.result.update(macs_pruned=cost.macs, params_pruned=cost.params, nonzero_params_pruned=cost.nonzero_params)


def latency_fields(
    base: nn.Module, pruned: nn.Module, inputs: torch.Tensor, between: Callable[[], None] = lambda: None
) -> dict:
    """The base's and the pruned model's latency from one interleaved measurement, as a run stores them:
    medians, interquartile ranges, threads, and whether the repeats spread as they do under load."""
    measured = interleaved_latency({"base": base, "pruned": pruned}, inputs, between=between)
    fields = {"latency_threads": measured.threads, "latency_under_load": measured.under_load}
    for name, latency in measured.models.items():
        fields[f"latency_ms_{name}"] = round(latency.median, 3)
        fields[f"latency_range_ms_{name}"] = [round(latency.low, 3), round(latency.high, 3)]
    return fields


def recover(run: PrunedRun, store: RunStore, *, progress: bool = False, callbacks: Iterable[Callback] = ()) -> dict:
    """Phase two: fine-tune a pruned run, recording the recovery curve, and store it as done."""
    with failing(run.config, store):
        measure_cost(run)
        return _recover(run, store, progress, callbacks)


def _recover(run: PrunedRun, store: RunStore, progress: bool, extra: Iterable[Callback]) -> dict:
    config, result, data, extra = run.config, run.result, run.data, list(extra)
    history = FilterNormHistory.from_state_dict(run.base.history.state_dict())
    schedule = Schedule.parse(config.schedule)
    epochs = schedule.epochs_per_step(config.finetune_epochs)
    for step, fraction in enumerate(schedule.fractions()):
        if step:  # the next cut, on the model fine-tuned so far
            run.pruned = _cut(config, run.base, run.pruned.model, data, fraction)
            _after_cut(run, step)
            _measure_cost(run)
            run.report()
        if config.mode == "remove":
            history.on_prune(run.pruned.kept)
        history.continue_from()
        _fine_tune(run, history, epochs, step * epochs, progress, extra)
    pruned = run.pruned
    result["acc_final"] = result["curve"][-1]["acc"] if result["curve"] else result["acc_pruned"]
    result["seconds"] = round(time.perf_counter() - run.started, 3)
    # Fine-tuning changes weights, not shapes: the latency is measured now, not before the first epoch
    # (where it delayed the first point of the curve), the base's and the pruned model's in one interleaved
    # measurement (the base's own figure was measured once, whenever it was imported, under another load).

    def between() -> None:  # the measurement's rounds are points where a job may stop or give the cores up
        for callback in extra:
            callback.on_pause_point()

    result.update(latency_fields(run.base.model, pruned.model, data.example_input(256), between))
    run.report()

    structure = {}
    if config.mode == "remove":
        structure = {name: history.original_index[name] for name in pruned.kept}
    checkpoint = Checkpoint(config.base.spec(data), config.to_dict(), pruned.model.state_dict(), structure, history)
    return save(config, store, result, checkpoint, history)


def _fine_tune(
    run: PrunedRun, history: FilterNormHistory, epochs: int, offset: int, progress: bool, extra: Iterable[Callback]
) -> None:
    """Fine-tune the pruned model `epochs` epochs, adding the recovery curve's points from epoch `offset` on."""
    config, result = run.config, run.result

    def add_point(epoch: int, acc: float) -> None:
        result["curve"].append({"epoch": offset + epoch, "acc": acc})
        run.report()

    callbacks = [history, EpochEnd(add_point), *extra]
    if run.pruned.mask is not None:
        callbacks.insert(0, run.pruned.mask)
    if progress:
        callbacks.append(ProgressBar(f"fine-tuning {config.criterion} at {config.ratio:g}", epochs))
    Trainer(
        run.pruned.model,
        run.data,
        lr=config.lr,
        batch_size=config.base.batch_size,
        seed=config.seed + offset,
        callbacks=callbacks,
    ).fit(epochs)
