"""History-Based Filter Pruning (HBFP, Basha et al. 2024) as rounds, and the same rounds for any criterion.

A round: the closest disjoint pairs of filters from the filter-norm history; training with the pair
regulariser, which draws each pair's l1-norms together; one filter of each pair pruned for real
(through `prune_model`, as every criterion); retraining. Rounds repeat, a share of every layer's
original filters each, until the validation accuracy falls more than `threshold` below the best seen;
the model kept is the last one within it. The history records through every optimisation and
retraining, so each round's pairs come from the continued history.

Any other criterion goes through the same rounds on the same budget: its optimisation epochs are
plain training (no pairs), then it prunes as many filters per layer as HBFP would.

Every round is its own row in the run store (kind `hbfp-round`, with its checkpoint and history), and
the whole run one more (kind `hbfp`); an interrupted run resumes after its last stored round.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import torch
import torch_pruning as tp
from torch import nn

from plasticity.checkpoint import Checkpoint, load_checkpoint
from plasticity.data import Dataset
from plasticity.errors import InvalidConfigError
from plasticity.limits import check_count, check_epochs, check_lr, check_number, check_seed
from plasticity.pruning.criteria import CRITERIA, HBFP, Criterion, create_criterion
from plasticity.pruning.groups import PrunableGroup, dependency_graph, prunable_groups
from plasticity.pruning.pairs import DEFAULT_OPTIMISE_EPOCHS, DEFAULT_STRENGTH, DROP_RULES
from plasticity.pruning.prune import prune_model
from plasticity.runs.base import Base, TrainConfig, get_base
from plasticity.runs.lifecycle import RunConfig, run_once, save, start
from plasticity.store import RunStore
from plasticity.train import Callback, FilterNormHistory, Trainer, accuracy, seed_everything

STEPS = ("before optimisation", "after optimisation", "after pruning", "after retraining")


@dataclass(frozen=True)
class HbfpConfig(RunConfig):
    """A base, and the rounds that prune it."""

    kind: ClassVar[str] = "hbfp"

    base: TrainConfig = field(default_factory=TrainConfig)
    criterion: str = "hbfp"  # or any criterion, through the same rounds (its optimisation epochs: plain training)
    round_ratio: float = 0.1  # filters pruned per round, as a share of each layer's original filters
    optimise_epochs: int = DEFAULT_OPTIMISE_EPOCHS
    retrain_epochs: int = 2
    strength: float = DEFAULT_STRENGTH  # lambda of the pair regulariser
    drop: str = "lower-importance"  # which filter of a pair goes: see plasticity.pairs.drop_one_of_each
    threshold: float = 0.01  # stop once validation accuracy is more than this below the best
    max_rounds: int = 30
    seed: int = 0
    lr: float = 0.01

    def __post_init__(self):
        if not 0.0 < self.round_ratio <= 0.5:
            raise InvalidConfigError(
                f"the ratio per round must be in (0, 0.5] (one filter of each pair goes); got {self.round_ratio}"
            )
        check_epochs(self.optimise_epochs, "optimise epochs")
        check_epochs(self.retrain_epochs, "retrain epochs")
        check_number("strength", self.strength, 0.0, 1e6)
        check_number("threshold", self.threshold, 0.0, 1.0)
        check_count("max rounds", self.max_rounds, 1, 1000)
        check_seed(self.seed)
        check_lr(self.lr)
        DROP_RULES.get(self.drop)
        create_criterion(self.criterion)  # an unknown name fails here, before any work

    def to_dict(self) -> dict:
        return {**asdict(self), "base": self.base.to_dict()}

    def round_key(self, round_index: int) -> str:
        return HbfpRound(self, round_index).key

    def execute(self, store: RunStore, base: Base, on_progress, callbacks: list[Callback]) -> dict:
        return run_hbfp(self, store, base=base, on_progress=on_progress, callbacks=callbacks)

    def progress(self, result: dict) -> float:
        return result["rounds"][-1]["ratio"] if result.get("rounds") else 0.0

    def stage(self, result: dict) -> str:
        rounds = result.get("rounds") or []
        return f"round {len(rounds)}: {rounds[-1]['ratio']:.0%} of the filters pruned" if rounds else "round 1"


def filters_per_round(original: int, alive: int, round_ratio: float) -> int:
    """round(round_ratio x original) filters, at least one, at most half of those left (a pair needs two)."""
    return min(max(1, int(round_ratio * original + 0.5)), alive // 2)


def round_counts(groups: list[PrunableGroup], history: FilterNormHistory, round_ratio: float) -> dict[str, int]:
    """Filters each group loses in a round, from its original width and the filters it has left."""
    return {
        g.root: filters_per_round(history.width[g.root], len(history.original_index[g.root]), round_ratio)
        for g in groups
    }


def within_threshold(acc_val: float, best_val: float, threshold: float) -> bool:
    """The stop rule: a round is kept while its validation accuracy is at most `threshold` below the best."""
    return acc_val >= best_val - threshold - 1e-9


def stored_rounds(config: HbfpConfig, store: RunStore) -> list[dict]:
    """The finished rounds of `config`, in order (a run in progress has some)."""
    rows = []
    while run := store.done(config.round_key(len(rows) + 1)):
        rows.append(run.result)
    return rows


def run_hbfp(
    config: HbfpConfig,
    store: RunStore,
    device: torch.device | str = "cpu",
    *,
    base: Base | None = None,
    on_round: Callable[[dict], None] | None = None,
    on_progress: Callable[[dict], None] | None = None,
    callbacks: Iterable[Callback] = (),
    progress: bool = False,
) -> dict:
    """Prune `config.base` round after round until the stop rule; returns the run with every round.

    `on_round` gets each round's row as it is done, `on_progress` the rounds so far (`{"rounds": [...]}`);
    `callbacks` join every training (optimisation and retraining). A run already in the store is
    returned as it is.
    """
    if done := store.done(config.key):
        return done.result
    base = base or get_base(config.base, store, device, progress=progress)
    rows: list[dict] = []

    def each_round(row: dict) -> None:
        rows.append(row)
        if on_round:
            on_round(row)
        if on_progress:
            on_progress({"key": config.key, "rounds": list(rows)})

    return run_once(config, store, lambda: _rounds(config, base, store, each_round, list(callbacks)))


def _rounds(config: HbfpConfig, base: Base, store: RunStore, on_round, callbacks: list[Callback]) -> dict:
    data, began = base.data, time.perf_counter()
    model = copy.deepcopy(base.model)
    history = FilterNormHistory.from_state_dict(base.history.state_dict())
    best_val = base.result["acc_val"]
    final = {"round": 0, "history": history, "row": None, "checkpoint": None}
    rows: list[dict] = []
    stop_reason = f"the last round allowed ({config.max_rounds}) is done"
    for round_index in range(1, config.max_rounds + 1):
        stored = store.done(config.round_key(round_index))
        if stored and stored.checkpoint and stored.checkpoint.exists():
            row, checkpoint = stored.result, load_checkpoint(stored.checkpoint)
            model, history = checkpoint.build_model(data.device), checkpoint.history
        else:
            outcome = _round(config, round_index, model, history, data, callbacks)
            if outcome is None:
                stop_reason = "no layer has two filters left to pair"
                break
            row, model = outcome
            row["best_val_before"] = best_val
            row["within_threshold"] = within_threshold(row["acc_val_final"], best_val, config.threshold)
            _store_round(config, round_index, row, model, history, data, store)
        rows.append(row)
        on_round(row)
        if not row["within_threshold"]:
            stop_reason = (
                f"round {round_index}: validation accuracy {row['acc_val_final']:.1%} is more than "
                f"{config.threshold:.1%} below the best {best_val:.1%}"
            )
            break
        best_val = max(best_val, row["acc_val_final"])
        checkpoint_path = store.done(config.round_key(round_index)).checkpoint
        final = {"round": round_index, "history": history, "row": row, "checkpoint": checkpoint_path}
        history = FilterNormHistory.from_state_dict(history.state_dict())  # the kept round's stays as it is
    result = _run_result(config, base, rows, final, stop_reason, time.perf_counter() - began)
    return save(config, store, result, final["checkpoint"], final["history"])


def _run_result(config: HbfpConfig, base: Base, rows: list[dict], final: dict, stop_reason: str, seconds: float):
    last = final["row"]
    result = {
        "key": config.key,
        "model": config.base.model,
        "dataset": config.base.dataset,
        "criterion": config.criterion,
        **{k: v for k, v in config.to_dict().items() if k not in ("base", "criterion")},
        "rounds": rows,
        "final_round": final["round"],
        "stop_reason": stop_reason,
        "acc_base": base.result["acc"],
        "acc_val_base": base.result["acc_val"],
        "acc_final": last["acc_final"] if last else base.result["acc"],
        "acc_val_final": last["acc_val_final"] if last else base.result["acc_val"],
        "macs_base": base.result["macs"],
        "macs_pruned": last["macs"] if last else base.result["macs"],
        "params_base": base.result["params"],
        "params_pruned": last["params"] if last else base.result["params"],
        "ratio": last["ratio"] if last else 0.0,
        "channels": last["channels"] if last else _channels(final["history"], list(final["history"].width)),
        "device": str(base.data.device),
        "seconds": round(seconds, 3),
    }
    result["macs_reduction"] = 1 - result["macs_pruned"] / result["macs_base"]
    return result


def _round(
    config: HbfpConfig,
    round_index: int,
    model: nn.Module,
    history: FilterNormHistory,
    data: Dataset,
    callbacks: list[Callback],
) -> tuple[dict, nn.Module] | None:
    """One round on `model` (left as it is) and `history` (recording on): its row and the retrained model."""
    began, seed = time.perf_counter(), config.seed + round_index
    groups = prunable_groups(model, dependency_graph(model, data.example_input()))
    counts = round_counts(groups, history, config.round_ratio)
    if not any(counts.values()):
        return None
    before_index = {g.root: list(history.original_index[g.root]) for g in groups}
    seed_everything(seed)
    steps = [_snapshot(STEPS[0], model, data, history)]
    optimised = _AfterTraining(STEPS[1], data, history)
    history.continue_from()
    to_prune, criterion = _optimised(config, seed, model, data, [history, optimised, *callbacks])
    pruned = prune_model(
        to_prune,
        criterion,
        0.0,
        data,
        layer_ratios={g.root: counts[g.root] / g.size for g in groups},
        history=history,
    )
    steps.append(optimised.snapshot or {**steps[0], "step": STEPS[1]})
    history.on_prune(pruned.kept)
    # the norms right after pruning, between epochs: a layer reading pruned filters loses those inputs' weights
    history.record(pruned.model, *history.points[-1], at_epoch_end=False)
    steps.append(_snapshot(STEPS[2], pruned.model, data, history))
    history.continue_from()
    _train(pruned.model, data, config, seed, config.retrain_epochs, [history, *callbacks])
    steps.append(_snapshot(STEPS[3], pruned.model, data, history))
    row = _round_row(config, round_index, history, before_index, criterion, steps)
    row["seconds"] = round(time.perf_counter() - began, 3)
    return row, pruned.model


def _optimised(
    config: HbfpConfig, seed: int, model: nn.Module, data: Dataset, callbacks: list[Callback]
) -> tuple[nn.Module, Criterion]:
    """The round's optimisation epochs and its criterion. A criterion that optimises (hbfp: the pair
    regulariser) does it inside `prune_model`, on its copy of the model; for any other, they are plain
    training of a copy here."""
    if CRITERIA.get(config.criterion).optimises:
        options = {"strength": config.strength, "optimise_epochs": config.optimise_epochs, "drop": config.drop}
        options |= {"lr": config.lr, "batch_size": config.base.batch_size, "callbacks": callbacks}
        return model, create_criterion(config.criterion, seed, **options)
    to_prune = copy.deepcopy(model)
    _train(to_prune, data, config, seed, config.optimise_epochs, callbacks)
    return to_prune, create_criterion(config.criterion, seed)


def _round_row(
    config: HbfpConfig,
    round_index: int,
    history: FilterNormHistory,
    before_index: dict[str, list[int]],
    criterion: Criterion,
    steps: list[dict],
) -> dict:
    dropped = {root: sorted(set(before_index[root]) - set(history.original_index[root])) for root in before_index}
    original = sum(history.width[root] for root in before_index)
    return {
        "round": round_index,
        "criterion": config.criterion,
        "ratio": round(1 - sum(len(history.original_index[root]) for root in before_index) / original, 6),
        "channels": _channels(history, list(before_index)),
        "pruned": dropped,
        "pairs": _pair_rows(criterion) if isinstance(criterion, HBFP) else [],
        "gap_curve": [sum(gaps) for gaps in criterion.gaps] if isinstance(criterion, HBFP) else [],
        "steps": steps,
        "acc_before": steps[0]["acc"],
        "acc_optimised": steps[1]["acc"],
        "acc_pruned": steps[2]["acc"],
        "acc_final": steps[3]["acc"],
        "acc_val_final": steps[3]["acc_val"],
        "macs": steps[3]["macs"],
        "params": steps[3]["params"],
    }


def _pair_rows(criterion: HBFP) -> list[dict]:
    first, last = (criterion.gaps[0], criterion.gaps[-1]) if criterion.gaps else ([], [])
    return [
        {**pair.to_dict(), "dropped": dropped, "gap_before": before, "gap_after": after}
        for pair, dropped, before, after in zip(criterion.pairs, criterion.dropped, first, last)
    ]


def _channels(history: FilterNormHistory, layers: list[str]) -> dict[str, list[int]]:
    return {layer: [len(history.original_index[layer]), history.width[layer]] for layer in layers}


def _train(model: nn.Module, data: Dataset, config: HbfpConfig, seed: int, epochs: int, callbacks: list) -> None:
    Trainer(model, data, lr=config.lr, batch_size=config.base.batch_size, seed=seed, callbacks=callbacks).fit(epochs)


def _snapshot(step: str, model: nn.Module, data: Dataset, history: FilterNormHistory) -> dict:
    """Accuracy and cost of `model` now, and where the history stands: its epoch and how many points it holds."""
    macs, params = tp.utils.count_ops_and_params(model, data.example_input(1))
    return {
        "step": step,
        "epoch": history.points[-1][0] if history.points else 0,
        "point": len(history.points),
        "acc": accuracy(model, data, data.test),
        "acc_val": accuracy(model, data, data.val),
        "macs": int(macs),
        "params": int(params),
    }


class _AfterTraining(Callback):
    """A snapshot of the trained model when its training ends (the optimised copy inside prune_model)."""

    def __init__(self, step: str, data: Dataset, history: FilterNormHistory):
        self.step, self.data, self.history = step, data, history
        self.snapshot: dict | None = None

    def on_train_end(self, trainer: Trainer) -> None:
        self.snapshot = _snapshot(self.step, trainer.model, self.data, self.history)


def _store_round(
    config: HbfpConfig,
    round_index: int,
    row: dict,
    model: nn.Module,
    history: FilterNormHistory,
    data: Dataset,
    store: RunStore,
) -> None:
    round_config = HbfpRound(config, round_index)
    if not start(round_config, store):
        return  # stored already (the whole run is claimed, so only by an earlier attempt of this run)
    structure = {layer: list(index) for layer, index in history.original_index.items()}
    checkpoint = Checkpoint(config.base.spec(data), round_config.to_dict(), model.state_dict(), structure, history)
    save(round_config, store, {"key": round_config.key, **row}, checkpoint, history)


@dataclass(frozen=True)
class HbfpRound(RunConfig):
    """One round of an HBFP run, stored as its own run (with its checkpoint and history)."""

    kind: ClassVar[str] = "hbfp-round"

    run: HbfpConfig
    round: int

    def to_dict(self) -> dict:
        return {**self.run.to_dict(), "round": self.round}
