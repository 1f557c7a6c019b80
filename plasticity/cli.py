"""The `plasticity` command: train, prune, compare, hbfp, masks, runs.

Results go to stdout (JSON with --json), progress to stderr. A bad input ends with one line
`error: ...` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace

from plasticity.criteria import list_criteria
from plasticity.data import list_datasets, parse_classes
from plasticity.errors import InvalidConfigError, PlasticityError
from plasticity.experiment import (
    PruneConfig,
    TrainConfig,
    base_from_file,
    compare,
    get_base,
    run_prune,
    summarise,
    train_base,
)
from plasticity.hbfp import STEPS, HbfpConfig, run_hbfp
from plasticity.masks import PICKS, MaskConfig, list_granularities, run_masks
from plasticity.models import list_models
from plasticity.pairs import DROP_RULES
from plasticity.store import RunStore
from plasticity.studies import IMAGENET, Task, pretraining_study, prunable_share, summarise_study
from plasticity.train import resolve_device


def _list_of(kind: Callable[[str], object], what: str) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None

    return parse


def _classes(text: str) -> tuple[int, ...]:
    try:
        return parse_classes(text)
    except InvalidConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _base_arguments(parser: argparse.ArgumentParser) -> None:
    base = TrainConfig()
    parser.add_argument("--model", default=base.model, help=f"one of {', '.join(list_models())} (default %(default)s)")
    parser.add_argument(
        "--dataset", default=base.dataset, help=f"one of {', '.join(list_datasets())} (default %(default)s)"
    )
    parser.add_argument(
        "--epochs", type=int, default=base.epochs, help="training epochs of the base (default %(default)s)"
    )
    parser.add_argument(
        "--base-lr", type=float, default=base.lr, help="learning rate of the base (default %(default)s)"
    )
    parser.add_argument("--batch-size", type=int, default=base.batch_size, help="(default %(default)s)")
    parser.add_argument(
        "--width", type=float, default=base.width, help="channel width multiplier (default %(default)s)"
    )
    parser.add_argument("--pretrained", action="store_true", help="start from torchvision's ImageNet weights")
    parser.add_argument(
        "--history-every-steps",
        type=int,
        default=0,
        metavar="K",
        help="record the base's filter norms every K steps too, not only at epoch ends",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when present)")
    parser.add_argument("--home", default=None, help="run store folder (default $PLASTICITY_HOME)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _prune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--finetune-epochs", type=int, default=3, help="(default %(default)s)")
    parser.add_argument("--lr", type=float, default=0.01, help="fine-tuning learning rate (default %(default)s)")
    parser.add_argument(
        "--mode",
        choices=["remove", "mask"],
        default="remove",
        help="remove filters for real, or only zero them (default %(default)s)",
    )
    parser.add_argument(
        "--classes",
        type=_classes,
        default=(),
        help="prune for these classes only, like 3,5,8 or 0-4: criteria, fine-tuning and accuracy on their images",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plasticity", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a base model and record its filter-norm history")
    _base_arguments(train)
    train.add_argument("--seed", type=int, default=0)

    prune = commands.add_parser("prune", help="prune a base, then fine-tune it and record the recovery curve")
    _base_arguments(prune)
    _prune_arguments(prune)
    prune.add_argument(
        "--criterion", default="random", help=f"one of {', '.join(list_criteria())} (default %(default)s)"
    )
    prune.add_argument("--ratio", type=float, default=0.5, help="fraction of each conv layer's filters to remove")
    prune.add_argument(
        "--layer-ratio",
        action="append",
        default=[],
        metavar="LAYER=RATIO",
        help="a different ratio for one layer (repeatable)",
    )
    prune.add_argument("--seed", type=int, default=0, help="seed of the base and of the pruning and fine-tuning")
    prune.add_argument("--base-seed", type=int, default=None, help="train the base with this seed instead")
    prune.add_argument("--checkpoint", default=None, help="prune the base model in this checkpoint file")

    comp = commands.add_parser("compare", help="every criterion at every ratio and seed, on shared bases")
    _base_arguments(comp)
    _prune_arguments(comp)
    comp.add_argument("--criteria", type=_list_of(str, "names"), default=["random", "l1"])
    comp.add_argument("--ratios", type=_list_of(float, "ratios"), default=[0.25, 0.5, 0.75])
    comp.add_argument("--seeds", type=_list_of(int, "seeds"), default=[0, 1, 2])
    comp.add_argument("--base-seed", type=int, default=None, help="one base for every seed, trained with this seed")

    masks = commands.add_parser(
        "masks", help="coarse pruning with random masks: score N on validation, retrain the best, test it"
    )
    _base_arguments(masks)
    masks.add_argument(
        "--granularity",
        default=MaskConfig.granularity,
        help=f"one of {', '.join(list_granularities())} (default %(default)s)",
    )
    masks.add_argument(
        "--ratio",
        type=float,
        default=MaskConfig.ratio,
        help="fraction of each conv layer's feature maps, kernels or kernel positions to remove (default %(default)s)",
    )
    masks.add_argument(
        "--n-masks", type=int, default=MaskConfig.n_masks, help="random masks to try (default %(default)s)"
    )
    masks.add_argument("--finetune-epochs", type=int, default=MaskConfig.finetune_epochs, help="(default %(default)s)")
    masks.add_argument("--lr", type=float, default=MaskConfig.lr, help="retraining learning rate (default %(default)s)")
    masks.add_argument(
        "--retrain", choices=PICKS, default="best", help="which mask, by validation accuracy (default %(default)s)"
    )
    masks.add_argument(
        "--layer-ratio", action="append", default=[], metavar="LAYER=RATIO", help="a different ratio for one layer"
    )
    masks.add_argument("--seed", type=int, default=0, help="seed of the base, the masks and the retraining")
    masks.add_argument("--base-seed", type=int, default=None, help="train the base with this seed instead")

    _hbfp_parser(commands)
    _pretraining_parser(commands)

    runs = commands.add_parser("runs", help="list what the run store holds")
    runs.add_argument("--home", default=None, help="run store folder (default $PLASTICITY_HOME)")
    runs.add_argument("--json", action="store_true")
    return parser


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
    )


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


def _summary(result: dict) -> str:
    curve = " ".join(f"{p['acc']:.3f}" for p in result["curve"])
    return (
        f"{result['criterion']:>15} ratio {result['ratio']:.2f} seed {result['seed']}: "
        f"acc {result['acc_base']:.3f} -> pruned {result['acc_pruned']:.3f} -> fine-tuned {result['acc_final']:.3f} "
        f"[{curve}]  MACs {result['macs_base']:,} -> {result['macs_pruned']:,}  "
        f"params {result['params_base']:,} -> {result['params_pruned']:,}"
    )


def cmd_train(args: argparse.Namespace, store: RunStore, device) -> None:
    base = train_base(_train_config(args, args.seed), store, device, progress=True)
    _emit(
        args,
        {"key": base.config.key, **base.config.to_dict(), **base.result},
        f"trained {base.config.model} on {base.config.dataset}: test accuracy {base.result['acc']:.4f} "
        f"({base.result['train_seconds']:.1f} s), stored as {base.config.key}",
    )


def cmd_prune(args: argparse.Namespace, store: RunStore, device) -> None:
    base = None
    if args.checkpoint:
        base = base_from_file(args.checkpoint, device)
        train_config = base.config
    else:
        train_config = _train_config(args, args.seed if args.base_seed is None else args.base_seed)
    config = PruneConfig(
        train_config,
        args.criterion,
        args.ratio,
        args.seed,
        args.finetune_epochs,
        args.mode,
        args.lr,
        _layer_ratios(args.layer_ratio),
        args.classes,
    )
    if base is None:
        base = get_base(config.base, store, device, progress=True)
    result = run_prune(config, store, device, base=base, progress=True)
    _emit(args, result, _summary(result))


def cmd_compare(args: argparse.Namespace, store: RunStore, device) -> None:
    for name in args.criteria:  # fail on a bad name before any training
        replace(PruneConfig(), criterion=name)

    def report(done: int, total: int, result: dict) -> None:
        print(f"[{done}/{total}] {_summary(result)}", file=sys.stderr, flush=True)

    results = compare(
        _train_config(args, 0),
        args.criteria,
        args.ratios,
        args.seeds,
        store,
        device,
        finetune_epochs=args.finetune_epochs,
        mode=args.mode,
        lr=args.lr,
        classes=args.classes,
        base_seed=args.base_seed,
        on_result=report,
        progress=True,
    )
    table = [
        f"{row['criterion']:>15} ratio {row['ratio']:.2f} ({row['seeds']} seeds): "
        f"pruned {row['acc_pruned_mean']:.3f} ± {row['acc_pruned_std']:.3f}  "
        f"fine-tuned {row['acc_final_mean']:.3f} ± {row['acc_final_std']:.3f}"
        for row in summarise(results)
    ]
    _emit(args, results, "\n".join([*(_summary(r) for r in results), "", "mean ± std over seeds:", *table]))


def cmd_masks(args: argparse.Namespace, store: RunStore, device) -> None:
    config = MaskConfig(
        _train_config(args, args.seed if args.base_seed is None else args.base_seed),
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


def _hbfp_parser(commands) -> None:
    defaults = HbfpConfig()
    hbfp = commands.add_parser(
        "hbfp",
        help="history-based filter pruning in rounds: pair filters by norm history, pull pairs together, "
        "prune one of each, retrain; until validation accuracy drops",
    )
    _base_arguments(hbfp)
    hbfp.add_argument(
        "--criterion",
        default=defaults.criterion,
        help="hbfp, or another criterion run through the same rounds on the same budget (default %(default)s)",
    )
    hbfp.add_argument(
        "--round-ratio",
        type=float,
        default=defaults.round_ratio,
        help="share of each conv layer's original filters pruned per round (default %(default)s)",
    )
    hbfp.add_argument("--optimise-epochs", type=int, default=defaults.optimise_epochs, help="(default %(default)s)")
    hbfp.add_argument("--retrain-epochs", type=int, default=defaults.retrain_epochs, help="(default %(default)s)")
    hbfp.add_argument(
        "--strength",
        type=float,
        default=defaults.strength,
        help="lambda of the regulariser that pulls each pair's l1-norms together (default %(default)s)",
    )
    hbfp.add_argument(
        "--drop", choices=DROP_RULES, default=defaults.drop, help="which filter of a pair goes (default %(default)s)"
    )
    hbfp.add_argument(
        "--threshold",
        type=float,
        default=defaults.threshold,
        help="stop once validation accuracy is more than this below the best; 0.01 is 1 point (default %(default)s)",
    )
    hbfp.add_argument("--max-rounds", type=int, default=defaults.max_rounds, help="(default %(default)s)")
    hbfp.add_argument("--lr", type=float, default=defaults.lr, help="learning rate (default %(default)s)")
    hbfp.add_argument("--seed", type=int, default=0, help="seed of the base and of the rounds")
    hbfp.add_argument("--base-seed", type=int, default=None, help="train the base with this seed instead")


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
        _train_config(args, args.seed if args.base_seed is None else args.base_seed),
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
    print(f"{config.criterion} rounds; accuracy {' -> '.join(STEPS)}", file=sys.stderr)
    result = run_hbfp(
        config, store, device, progress=True, on_round=lambda row: print(_round_summary(row), file=sys.stderr)
    )
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


def _pretraining_parser(commands) -> None:
    study = commands.add_parser(
        "pretraining",
        help="prune a base trained from scratch and one started from a source task's weights, same budget",
    )
    study.add_argument("--model", default="lenet5", help=f"one of {', '.join(list_models())} (default %(default)s)")
    study.add_argument(
        "--target",
        type=Task.parse,
        default=Task("mnist-5k", tuple(range(5, 10))),
        help="the task both bases learn: DATASET or DATASET:CLASSES (default mnist-5k:5-9)",
    )
    study.add_argument(
        "--source",
        default="mnist-5k:0-4",
        help=f"what the pretrained base learned first: a task, or {IMAGENET} (torchvision's weights; "
        "needs a network connection once) (default %(default)s)",
    )
    study.add_argument("--criterion", default="l1", help=f"one of {', '.join(list_criteria())} (default %(default)s)")
    study.add_argument("--ratios", type=_list_of(float, "ratios"), default=[0.25, 0.5, 0.75, 0.9])
    study.add_argument("--seeds", type=_list_of(int, "seeds"), default=[0, 1, 2])
    study.add_argument("--epochs", type=int, default=5, help="training epochs on the target (default %(default)s)")
    study.add_argument(
        "--source-epochs", type=int, default=5, help="training epochs on the source (default %(default)s)"
    )
    study.add_argument("--finetune-epochs", type=int, default=2, help="(default %(default)s)")
    study.add_argument("--lr", type=float, default=0.01, help="(default %(default)s)")
    study.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="accuracy a pruned model may lose and still count, 0.01 is 1 point (default %(default)s)",
    )
    study.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when present)")
    study.add_argument("--home", default=None, help="run store folder (default $PLASTICITY_HOME)")
    study.add_argument("--json", action="store_true", help="print every run and the summary as JSON")


def cmd_pretraining(args: argparse.Namespace, store: RunStore, device) -> None:
    source = IMAGENET if args.source == IMAGENET else Task.parse(args.source)
    replace(PruneConfig(), criterion=args.criterion)  # a bad name fails before any training

    def report(done: int, total: int, row: dict) -> None:
        print(f"[{done}/{total}] {row['modality']:>10}: {_summary(row)}", file=sys.stderr, flush=True)

    results = pretraining_study(
        args.model,
        args.target,
        source,
        args.criterion,
        args.ratios,
        args.seeds,
        store,
        device,
        epochs=args.epochs,
        source_epochs=args.source_epochs,
        finetune_epochs=args.finetune_epochs,
        lr=args.lr,
        on_result=report,
        progress=True,
    )
    summary = summarise_study(results)
    share = prunable_share(summary, args.tolerance)
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
        "target": str(args.target),
        "source": str(source),
        "runs": results,
        "summary": summary,
        "prunable_share": share,
    }
    _emit(args, payload, "\n".join(lines))


def cmd_runs(args: argparse.Namespace, store: RunStore) -> None:
    runs = store.runs()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "key": r.key,
                        "kind": r.kind,
                        "status": r.status,
                        "config": r.config,
                        "result": r.result,
                        "error": r.error,
                    }
                    for r in runs
                ],
                indent=2,
            )
        )
        return
    print(f"{len(runs)} runs in {store.path}")
    for run in runs:
        cfg = run.config.get("base", run.config)
        what = f"{cfg['model']} {cfg['dataset']} seed {cfg['seed']}"
        if run.kind == "prune":
            what += (
                f" | {run.config['criterion']} {run.config['ratio']:g} {run.config['mode']} seed {run.config['seed']}"
            )
        elif run.kind == "masks":
            cfg = run.config
            what += f" | {cfg['retrain']} of {cfg['n_masks']} {cfg['granularity']} masks {cfg['ratio']:g}"
            what += f" seed {cfg['seed']}"
        elif run.kind in ("hbfp", "hbfp-round"):
            cfg = run.config
            what += f" | {cfg['criterion']} rounds of {cfg['round_ratio']:g}" + (
                f", round {cfg['round']}" if "round" in cfg else ""
            )
        if run.status == "done":
            acc = run.result.get("acc_final", run.result.get("acc"))
            outcome = f"acc {acc:.4f}"
        else:
            outcome = run.error or ""
        print(f"{run.key}  {run.kind:5} {run.status:7} {what}  {outcome}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        store = RunStore(args.home)
        if args.command == "runs":
            cmd_runs(args, store)
            return 0
        device = resolve_device(args.device)
        commands = {"train": cmd_train, "prune": cmd_prune, "compare": cmd_compare, "hbfp": cmd_hbfp}
        commands["masks"] = cmd_masks
        commands["pretraining"] = cmd_pretraining
        commands[args.command](args, store, device)
    except PlasticityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted: finished runs are kept in the store; run the same command again to resume", file=sys.stderr
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
