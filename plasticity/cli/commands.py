"""What each `plasticity` command does, once `arguments` has read its options (torch loads here).

Results go to stdout (JSON with --json), progress to stderr. A bad input ends with one line
`error: ...` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from plasticity.cli.arguments import SCENE_BATCH_SIZE, SCENE_TASKS
from plasticity.data import parse_classes
from plasticity.errors import InvalidConfigError, PlasticityError
from plasticity.executors import Executor, SweepStatus, make_executor
from plasticity.runs.base import TrainConfig, base_from_file, get_base, train_base
from plasticity.runs.hbfp import STEPS, HbfpConfig, run_hbfp
from plasticity.runs.masks import MaskConfig, run_masks
from plasticity.runs.prune import PruneConfig, run_prune
from plasticity.store import RunStore
from plasticity.studies.budget import budget_analysis, budget_study
from plasticity.studies.compare import Comparison
from plasticity.studies.core import Study
from plasticity.studies.pretraining import IMAGENET, PretrainingStudy, Task
from plasticity.studies.sensitivity import STALE, Sensitivity
from plasticity.tasks.runs import ScenePruneConfig, SceneTrainConfig, get_scene_base, run_scene_prune
from plasticity.train import resolve_device


def _train_config(args: argparse.Namespace, seed: int) -> TrainConfig:
    return TrainConfig(
        model=args.model,
        dataset=args.dataset,
        epochs=args.epochs,
        seed=seed,
        lr=args.base_lr,
        batch_size=args.batch_size,
        width=args.width,
        pretrained=args.pretrained,
        history_every_steps=args.history_every_steps,
        weights=args.weights or "",
    )


def _base_seed(args: argparse.Namespace) -> int:
    return args.seed if args.base_seed is None else args.base_seed


def _layer_ratios(pairs: list[str]) -> tuple[tuple[str, float], ...]:
    parsed = []
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            parsed.append((name, float(value)))
        except ValueError:
            raise InvalidConfigError(f"--layer-ratio takes LAYER=RATIO, got {pair!r}") from None
    return tuple(parsed)


def _emit(args: argparse.Namespace, payload, summary: str) -> None:
    print(json.dumps(payload, indent=2) if args.json else summary)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _summary(result: dict) -> str:
    curve = " ".join(f"{p['acc']:.3f}" for p in result["curve"])
    return (
        f"{result['criterion']:>15} ratio {result['ratio']:.2f} seed {result['seed']}: "
        f"acc {result['acc_base']:.3f} -> pruned {result['acc_pruned']:.3f} -> fine-tuned {result['acc_final']:.3f} "
        f"[{curve}]  MACs {result['macs_base']:,} -> {result['macs_pruned']:,}  "
        f"params {result['params_base']:,} -> {result['params_pruned']:,}"
    )


class SweepBar:
    """One line on stderr over a whole sweep (runs done of all, running now, failed, seconds so far), with
    each run's line printed above it as it arrives."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.began = time.perf_counter()
        self.status: SweepStatus | None = None
        self.drawn = 0  # the length of the bar on screen, to blank it out

    def update(self, status: SweepStatus) -> None:
        """Redraw: on a terminal at every call (the seconds tick), elsewhere (a log) when a count changes."""
        if status != self.status or self.stream.isatty():
            self.status = status
            self._draw()

    def print(self, line: str) -> None:
        self.stream.write("\r" + line.ljust(self.drawn) + "\n")
        self._draw()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = 0

    def _draw(self) -> None:
        if self.status is None:
            return
        done, total = self.status.done, self.status.total
        text = (
            f"sweep [{'#' * (20 * done // max(1, total)):<20}] {done}/{total} done, {self.status.running} running, "
            f"{self.status.failed} failed, {time.perf_counter() - self.began:.0f} s"
        )
        self.stream.write("\r" + text.ljust(self.drawn))
        self.stream.flush()
        self.drawn = len(text)


def _executor(args: argparse.Namespace) -> Executor:
    if args.executor == "ray" and args.device is not None:
        raise InvalidConfigError(
            "--device is for --executor inprocess; on Ray a run uses cuda when --gpus-per-run is above 0, else the CPU"
        )
    return make_executor(
        args.executor, address=args.ray_address, cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run
    )


def _sweep(study: Study, args: argparse.Namespace, store: RunStore, device, line: Callable[[dict], str]) -> list[dict]:
    """Run a study with the executor of `args`, under one progress bar with a line per run."""
    executor, bar = _executor(args), SweepBar()
    try:
        return study.run(
            store,
            device,
            executor=executor,
            progress=True,
            on_result=lambda done, total, row: bar.print(f"[{done}/{total}] {line(row)}"),
            on_status=bar.update,
        )
    finally:
        bar.close()


def cmd_train(args: argparse.Namespace, store: RunStore, device) -> None:
    base = train_base(_train_config(args, args.seed), store, device, progress=True)
    _emit(
        args,
        {"key": base.config.key, **base.config.to_dict(), **base.result},
        f"trained {base.config.model} on {base.config.dataset}: test accuracy {base.result['acc']:.4f} "
        f"({base.result['train_seconds']:.1f} s), stored as {base.config.key}",
    )


def cmd_prune(args: argparse.Namespace, store: RunStore, device) -> None:
    if args.task != "classification":
        cmd_prune_scenes(args, store, device)
        return
    base = base_from_file(args.checkpoint, device) if args.checkpoint else None
    train_config = base.config if base else _train_config(args, _base_seed(args))
    config = PruneConfig(
        train_config,
        args.criterion,
        args.ratio,
        args.seed,
        args.finetune_epochs,
        args.mode,
        args.lr,
        _layer_ratios(args.layer_ratio),
        parse_classes(args.classes),
        args.recalibrate_bn,
        args.schedule,
    )
    base = base or get_base(config.base, store, device, progress=True)
    result = run_prune(config, store, device, base=base, progress=True)
    _emit(args, result, _summary(result))


# prune's options that only classification has, with the value that leaves them unused
CLASSIFICATION_ONLY = {
    "mode": "remove",
    "classes": "",
    "layer_ratio": [],
    "checkpoint": None,
    "width": 1.0,
    "history_every_steps": 0,
    "schedule": "one-shot",
    "recalibrate_bn": 0,
}


def _scene_configs(args: argparse.Namespace) -> ScenePruneConfig:
    unused = [name for name, idle in CLASSIFICATION_ONLY.items() if getattr(args, name) != idle]
    if unused:
        options = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise InvalidConfigError(f"{options}: only for --task classification, not {args.task}")
    given = getattr(args, "given", set())
    network, dataset = (SCENE_TASKS[args.task][i][0] for i in (0, 1))
    base = SceneTrainConfig(
        task=args.task,
        network=args.model if "model" in given else network,
        dataset=args.dataset if "dataset" in given else dataset,
        epochs=args.epochs,
        seed=_base_seed(args),
        lr=args.base_lr,
        batch_size=args.batch_size if "batch_size" in given else SCENE_BATCH_SIZE,
        pretrained=args.pretrained,
        weights=args.weights or "",
    )
    return ScenePruneConfig(base, args.criterion, args.ratio, args.seed, args.finetune_epochs, args.lr)


def _scene_summary(result: dict) -> str:
    metric = "map" if result["task"] == "detection" else "miou"
    name = "mAP" if metric == "map" else "mean IoU"
    curve = " ".join(f"{p[metric]:.3f}" for p in result["curve"])
    return (
        f"{result['network']} on {result['dataset']}, {result['criterion']} ratio {result['ratio']:.2f} seed "
        f"{result['seed']}: {name} {result[metric + '_base']:.3f} -> pruned {result[metric + '_pruned']:.3f} "
        f"-> fine-tuned {result[metric + '_final']:.3f} [{curve}]  fps {result['fps_base']:.1f} -> "
        f"{result['fps_pruned']:.1f}  params {result['params_base']:,} -> {result['params_pruned']:,}"
    )


def cmd_prune_scenes(args: argparse.Namespace, store: RunStore, device) -> None:
    """prune --task detection|segmentation: a detector's backbone or a SegNet, through the same store."""
    config = _scene_configs(args)
    label = f"training {config.base.network} on {config.base.dataset}"

    def on_epoch(done: int, of: int) -> None:
        _progress(f"{label}: epoch {done}/{of}")

    base = get_scene_base(config.base, store, device, on_epoch=on_epoch)

    def on_progress(result: dict) -> None:
        metric = config.base.metric
        if result["fps_base"] is not None:  # the last report: timed after fine-tuning
            _progress(f"frames per second: {result['fps_base']:.1f} -> {result['fps_pruned']:.1f}")
        elif result["curve"]:
            point = result["curve"][-1]
            _progress(f"fine-tuning: epoch {point['epoch']}/{config.finetune_epochs} {metric} {point[metric]:.3f}")
        else:
            _progress(f"pruned: {metric} {result[metric + '_base']:.3f} -> {result[metric + '_pruned']:.3f}")

    result = run_scene_prune(config, store, device, base=base, on_progress=on_progress)
    _emit(args, result, _scene_summary(result))


def cmd_compare(args: argparse.Namespace, store: RunStore, device) -> None:
    study = Comparison(
        _train_config(args, 0),
        args.criteria,
        args.ratios,
        args.seeds,
        args.finetune_epochs,
        args.mode,
        args.lr,
        parse_classes(args.classes),
        args.base_seed,
        args.schedule,
        args.recalibrate_bn,
    )
    study.plan()  # a bad criterion fails here, before any training
    results = _sweep(study, args, store, device, lambda row: _summary(row))
    table = [
        f"{row['criterion']:>15} ratio {row['ratio']:.2f} ({row['seeds']} seeds): "
        f"pruned {row['acc_pruned_mean']:.3f} ± {row['acc_pruned_std']:.3f}  "
        f"fine-tuned {row['acc_final_mean']:.3f} ± {row['acc_final_std']:.3f}"
        for row in study.summarise(results)
    ]
    _emit(args, results, "\n".join([*(_summary(r) for r in results), "", "mean ± std over seeds:", *table]))


def _sensitivity_line(row: dict) -> str:
    stale = f"  (stale BatchNorm {row[STALE]:.3f})" if STALE in row else ""
    tuned = f" -> fine-tuned {row['acc_final']:.3f}" if row["curve"] else ""
    return (
        f"{row['layer']:>22} {row['criterion']:>10} ratio {row['ratio']:.2f} seed {row['seed']}: "
        f"acc {row['acc_base']:.3f} -> pruned {row['acc_pruned']:.3f}{tuned}{stale}"
    )


def cmd_sensitivity(args: argparse.Namespace, store: RunStore, device) -> None:
    criteria = [args.criterion] + ([] if args.no_random or args.criterion == "random" else ["random"])
    study = Sensitivity(
        _train_config(args, args.base_seed),
        criteria,
        args.ratios,
        args.seeds,
        args.finetune_epochs,
        args.lr,
        args.recalibrate_bn,
    )
    study.plan()  # a bad criterion or a ratio that would empty a layer fails here, before any training
    results = _sweep(study, args, store, device, _sensitivity_line)
    _emit(args, results, "\n".join(_sensitivity_line(r) for r in results))


def cmd_budget(args: argparse.Namespace, store: RunStore, device) -> None:
    analysis = budget_analysis(_train_config(args, args.base_seed), args.criterion, args.ratios, args.recalibrate_bn)
    analysis.plan()  # a ratio that would empty a group fails here, before any training
    _sweep(analysis, args, store, device, _sensitivity_line)  # trains the base too, where the executor runs
    base = get_base(analysis.base, store, device)
    study = budget_study(
        base,
        store,
        args.criterion,
        args.ratios,
        args.targets,
        args.seeds,
        args.finetune_epochs,
        args.lr,
        args.recalibrate_bn,
    )

    def line(row: dict) -> str:
        return (
            f"{row['allocation']:>14} MACs target {row['target']:.0%} seed {row['seed']}: MACs {row['macs_pruned']:,} "
            f"acc {row['acc_base']:.3f} -> pruned {row['acc_pruned']:.3f} -> fine-tuned {row['acc_final']:.3f}"
        )

    results = _sweep(study, args, store, device, line)
    for row, planned in zip(results, study.plan()):
        row["layer_ratios"] = dict(planned.config.layer_ratios)
    summary = [
        f"{row['allocation']:>14} MACs target {row['target']:.0%} ({row['seeds']} seeds): "
        f"pruned {row['acc_pruned_mean']:.3f} ± {row['acc_pruned_std']:.3f}  "
        f"fine-tuned {row['acc_final_mean']:.3f} ± {row['acc_final_std']:.3f}"
        for row in study.summarise(results)
    ]
    _emit(args, results, "\n".join([*(line(r) for r in results), "", "mean ± std over seeds:", *summary]))


def cmd_masks(args: argparse.Namespace, store: RunStore, device) -> None:
    config = MaskConfig(
        _train_config(args, _base_seed(args)),
        args.granularity,
        args.ratio,
        args.n_masks,
        args.seed,
        args.finetune_epochs,
        args.lr,
        args.retrain,
        _layer_ratios(args.layer_ratio),
    )
    result = run_masks(config, store, device, progress=True)
    summary = (
        f"{result['granularity']} masks at ratio {result['ratio']:g} ({result['sparsity']:.1%} of conv weights): "
        f"validation accuracy of {result['n_masks']} masks: best {result['best_val_acc']:.3f}, "
        f"median {result['median_val_acc']:.3f}, worst {result['worst_val_acc']:.3f}\n"
        f"test accuracy of the {result['retrain']} mask: base {result['acc_base']:.3f} -> masked "
        f"{result['acc_pruned']:.3f} -> retrained {result['acc_final']:.3f}  "
        f"MACs {result['macs_base']:,} -> {result['macs_sparse']:,} skipping zeros, {result['macs_dense']:,} dense"
    )
    _emit(args, result, summary)


def _round_summary(row: dict) -> str:
    accuracies = " -> ".join(f"{step['acc']:.3f}" for step in row["steps"])
    channels = " ".join(f"{layer} {kept}/{original}" for layer, (kept, original) in row["channels"].items())
    flag = "" if row["within_threshold"] else "  (below the threshold)"
    return (
        f"round {row['round']:>2}: {row['ratio']:.0%} of filters pruned ({channels})  "
        f"accuracy {accuracies}  MACs {row['macs']:,}  {row['seconds']:.1f} s{flag}"
    )


def cmd_hbfp(args: argparse.Namespace, store: RunStore, device) -> None:
    config = HbfpConfig(
        _train_config(args, _base_seed(args)),
        args.criterion,
        args.round_ratio,
        args.optimise_epochs,
        args.retrain_epochs,
        args.strength,
        args.drop,
        args.threshold,
        args.max_rounds,
        args.seed,
        args.lr,
    )
    _progress(f"{config.criterion} rounds; accuracy {' -> '.join(STEPS)}")
    result = run_hbfp(config, store, device, progress=True, on_round=lambda row: _progress(_round_summary(row)))
    summary = "\n".join(
        [
            *(_round_summary(row) for row in result["rounds"]),
            f"stopped: {result['stop_reason']}",
            f"kept round {result['final_round']}: accuracy {result['acc_base']:.4f} -> {result['acc_final']:.4f}  "
            f"MACs {result['macs_base']:,} -> {result['macs_pruned']:,} ({result['macs_reduction']:.1%} fewer)  "
            f"params {result['params_base']:,} -> {result['params_pruned']:,}  in {result['seconds']:.0f} s",
        ]
    )
    _emit(args, result, summary)


def cmd_pretraining(args: argparse.Namespace, store: RunStore, device) -> None:
    study = PretrainingStudy(
        args.model,
        Task.parse(args.target),
        IMAGENET if args.source == IMAGENET else Task.parse(args.source),
        args.criterion,
        args.ratios,
        args.seeds,
        args.epochs,
        args.source_epochs,
        args.finetune_epochs,
        args.lr,
    )

    results = _sweep(study, args, store, device, lambda row: f"{row['modality']:>10}: {_summary(row)}")
    summary = study.summarise(results)
    share = study.prunable_share(summary, args.tolerance)
    lines = [
        f"{row['modality']:>10} ratio {row['ratio']:.2f}: {row['params_removed_mean']:.1%} of parameters removed, "
        f"base {row['acc_base_mean']:.3f}, pruned {row['acc_pruned_mean']:.3f} ± {row['acc_pruned_std']:.3f}, "
        f"fine-tuned {row['acc_final_mean']:.3f} ± {row['acc_final_std']:.3f} ({row['seeds']} seeds)"
        for row in summary
    ]
    lines += [
        f"{modality:>10}: up to {value:.1%} of parameters removed within {args.tolerance:.0%} of its base"
        for modality, value in share.items()
    ]
    payload = {
        "target": str(study.target),
        "source": str(study.source),
        "runs": results,
        "summary": summary,
        "prunable_share": share,
    }
    _emit(args, payload, "\n".join(lines))


def _run_line(run) -> str:
    """One run of the store in a line; a row another version wrote, with fields this one does not know,
    is listed with what it has."""
    config = run.config if isinstance(run.config, dict) else {}
    base = config.get("base", config) if isinstance(config.get("base", config), dict) else {}
    what = f"{base.get('model', '?')} {base.get('dataset', '?')} seed {base.get('seed', '?')}"
    if run.kind == "prune":
        what += f" | {config.get('criterion')} {config.get('ratio')} {config.get('mode')} seed {config.get('seed')}"
    elif run.kind == "masks":
        what += f" | {config.get('retrain')} of {config.get('n_masks')} {config.get('granularity')} masks"
        what += f" {config.get('ratio')} seed {config.get('seed')}"
    elif run.kind in ("hbfp", "hbfp-round"):
        what += f" | {config.get('criterion')} rounds of {config.get('round_ratio')}"
        what += f", round {config['round']}" if "round" in config else ""
    outcome = run.error or ""
    if run.done and isinstance(run.result, dict):
        acc = run.result.get("acc_final", run.result.get("acc"))
        outcome = f"acc {acc:.4f}" if isinstance(acc, float) else ""
    return f"{run.key}  {run.kind:5} {run.status:7} {what}  {outcome}"


def cmd_runs(args: argparse.Namespace, store: RunStore) -> None:
    runs = store.runs()
    if args.json:
        fields = ("key", "kind", "status", "config", "result", "error")
        print(json.dumps([{name: getattr(run, name) for name in fields} for run in runs], indent=2))
        return
    print(f"{len(runs)} runs in {store.path}")
    for run in runs:
        print(_run_line(run))


def cmd_export(args: argparse.Namespace, store: RunStore) -> None:
    from plasticity.export import export_run  # onnx and torch.export load only for this command

    result = export_run(store, args.key, args.format, args.out)
    _emit(
        args,
        result,
        f"wrote {result['out']} ({result['bytes']:,} bytes, {result['format']}; load it with {result['loads_with']}); "
        f"its outputs on {result['checked_images']} test images equal the network's "
        f"(largest difference {result['max_abs_diff']:.2g}, tolerance {result['tolerance']:.2g})",
    )


STORE_COMMANDS = {"runs": cmd_runs, "export": cmd_export}  # commands on the store alone, with no device
COMMANDS = {
    "train": cmd_train,
    "prune": cmd_prune,
    "compare": cmd_compare,
    "sensitivity": cmd_sensitivity,
    "budget": cmd_budget,
    "masks": cmd_masks,
    "hbfp": cmd_hbfp,
    "pretraining": cmd_pretraining,
}


def run(args: argparse.Namespace) -> int:
    """Run the command `args` were read for; the exit status."""
    if getattr(args, "data_root", None):
        os.environ["PLASTICITY_DATA"] = str(Path(args.data_root).expanduser())  # data.data_dir() reads it
    try:
        store = RunStore(args.home)
        if args.command in STORE_COMMANDS:
            STORE_COMMANDS[args.command](args, store)
            return 0
        COMMANDS[args.command](args, store, resolve_device(args.device))
    except PlasticityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the command reads or writes outside the store (data, a checkpoint given)
        print(f"error: {exc.strerror or exc.__class__.__name__}: {exc.filename or 'a file'}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted: finished runs are kept in the store; run the same command again to resume", file=sys.stderr
        )
        return 130
    return 0
