"""The `plasticity` command: train, prune, compare, runs.

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
from plasticity.data import list_datasets
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
from plasticity.models import list_models
from plasticity.store import RunStore
from plasticity.train import resolve_device


def _list_of(kind: Callable[[str], object], what: str) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None

    return parse


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
        {"train": cmd_train, "prune": cmd_prune, "compare": cmd_compare}[args.command](args, store, device)
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
