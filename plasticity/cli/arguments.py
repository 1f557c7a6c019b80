"""The options of every `plasticity` command, with a description and an example in its --help."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from plasticity import __version__
from plasticity.data import list_datasets, parse_classes
from plasticity.errors import InvalidConfigError
from plasticity.models import list_models
from plasticity.pruning.criteria import list_criteria
from plasticity.pruning.masks import PICKS, list_granularities
from plasticity.pruning.pairs import DROP_RULES
from plasticity.pruning.prune import list_modes
from plasticity.runs import (
    HbfpConfig,
    MaskConfig,
    TrainConfig,
)
from plasticity.studies import IMAGENET, Comparison, PretrainingStudy, Task

DESCRIPTIONS = {
    "train": (
        "Train a base model and record its filter-norm history (every filter's l1- and l2-norm at every "
        "epoch end) into the run store.",
        "plasticity train --model lenet5 --dataset mnist-5k --epochs 12 --seed 0",
    ),
    "prune": (
        "Prune a base (trained first if the store has none), measure the accuracy right after pruning, "
        "then fine-tune and record the recovery curve, MACs, parameters and latency.",
        "plasticity prune --criterion l1 --ratio 0.5 --finetune-epochs 3 --json",
    ),
    "compare": (
        "Every criterion at every ratio and seed; seed s prunes the base trained with s (or --base-seed's "
        "for all). Finished runs come from the store, so an interrupted comparison resumes.",
        "plasticity compare --criteria random,l1,apoz --ratios 0.25,0.5,0.75 --seeds 0,1,2 --json",
    ),
    "masks": (
        "Coarse pruning with random masks (Anwar and Sung): score N masks on validation without retraining, "
        "retrain the best (or median, worst) with the mask held in place, test it.",
        "plasticity masks --granularity kernel --ratio 0.6 --n-masks 50 --json",
    ),
    "hbfp": (
        "History-based filter pruning in rounds (Basha et al.): pair filters whose norms moved alike, pull "
        "each pair together, prune one of each, retrain; until validation accuracy drops below the threshold.",
        "plasticity hbfp --round-ratio 0.1 --threshold 0.01 --json",
    ),
    "pretraining": (
        "Does pre-training make a network more prunable? (Hubens et al.) Prune a base trained from scratch "
        "and one started from a source task's weights, same budget, over ratios and seeds.",
        "plasticity pretraining --target mnist-5k:5-9 --source mnist-5k:0-4 --criterion l1 --ratios 0.5,0.9",
    ),
    "runs": ("List what the run store holds: every run's key, kind, status and headline figure.", "plasticity runs"),
}


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in --help, and descriptions kept as written."""


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


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when present)")
    parser.add_argument("--home", default=None, help="run store folder (default: $PLASTICITY_HOME)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _base_arguments(parser: argparse.ArgumentParser) -> None:
    base = TrainConfig()
    parser.add_argument("--model", default=base.model, help=f"one of {', '.join(list_models())}")
    parser.add_argument("--dataset", default=base.dataset, help=f"one of {', '.join(list_datasets())}")
    parser.add_argument("--epochs", type=int, default=base.epochs, help="training epochs of the base")
    parser.add_argument("--base-lr", type=float, default=base.lr, help="learning rate of the base")
    parser.add_argument("--batch-size", type=int, default=base.batch_size, help="training batch size")
    parser.add_argument("--width", type=float, default=base.width, help="channel width multiplier")
    parser.add_argument("--pretrained", action="store_true", help="start from torchvision's ImageNet weights")
    parser.add_argument(
        "--history-every-steps",
        type=int,
        default=0,
        metavar="K",
        help="record the base's filter norms every K steps too, not only at epoch ends (0: epoch ends only)",
    )
    _common(parser)


def _fine_tuning_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--finetune-epochs", type=int, default=3, help="fine-tuning epochs after pruning")
    parser.add_argument("--lr", type=float, default=0.01, help="fine-tuning learning rate")
    parser.add_argument(
        "--mode", choices=list_modes(), default="remove", help="remove filters for real, or only zero them"
    )
    parser.add_argument(
        "--classes",
        type=_classes,
        default=(),
        help="prune for these classes only, like 3,5,8 or 0-4: criteria, fine-tuning and accuracy on their images "
        "(default: every class)",
    )


def _seeds(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--seed", type=int, default=0, help=f"seed of the base and of {what}")
    parser.add_argument("--base-seed", type=int, default=None, help="train the base with this seed instead")


def _layer_ratio(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layer-ratio", action="append", default=[], metavar="LAYER=RATIO", help="a different ratio for one layer"
    )


def _add_prune(parser: argparse.ArgumentParser) -> None:
    _base_arguments(parser)
    _fine_tuning_arguments(parser)
    parser.add_argument("--criterion", default="random", help=f"one of {', '.join(list_criteria())}")
    parser.add_argument("--ratio", type=float, default=0.5, help="fraction of each conv layer's filters to remove")
    _layer_ratio(parser)
    _seeds(parser, "the pruning and fine-tuning")
    parser.add_argument("--checkpoint", default=None, help="prune the base model in this checkpoint file")


def _add_compare(parser: argparse.ArgumentParser) -> None:
    _base_arguments(parser)
    _fine_tuning_arguments(parser)
    defaults = Comparison()
    parser.add_argument("--criteria", type=_list_of(str, "names"), default=list(defaults.criteria), help="criteria")
    parser.add_argument("--ratios", type=_list_of(float, "ratios"), default=list(defaults.ratios), help="ratios")
    parser.add_argument("--seeds", type=_list_of(int, "seeds"), default=list(defaults.seeds), help="seeds")
    parser.add_argument("--base-seed", type=int, default=None, help="one base for every seed, trained with this seed")


def _add_masks(parser: argparse.ArgumentParser) -> None:
    _base_arguments(parser)
    defaults = MaskConfig()
    parser.add_argument("--granularity", default=defaults.granularity, help=f"one of {', '.join(list_granularities())}")
    parser.add_argument(
        "--ratio",
        type=float,
        default=defaults.ratio,
        help="fraction of each conv layer's feature maps, kernels or kernel positions to remove",
    )
    parser.add_argument("--n-masks", type=int, default=defaults.n_masks, help="random masks to try")
    parser.add_argument("--finetune-epochs", type=int, default=defaults.finetune_epochs, help="retraining epochs")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="retraining learning rate")
    parser.add_argument("--retrain", choices=PICKS, default=defaults.retrain, help="which mask, by validation accuracy")
    _layer_ratio(parser)
    _seeds(parser, "the masks and the retraining")


def _add_hbfp(parser: argparse.ArgumentParser) -> None:
    _base_arguments(parser)
    defaults = HbfpConfig()
    parser.add_argument(
        "--criterion",
        default=defaults.criterion,
        help="hbfp, or another criterion run through the same rounds on the same budget",
    )
    parser.add_argument(
        "--round-ratio",
        type=float,
        default=defaults.round_ratio,
        help="share of each conv layer's original filters pruned per round",
    )
    parser.add_argument("--optimise-epochs", type=int, default=defaults.optimise_epochs, help="epochs with the pairs")
    parser.add_argument("--retrain-epochs", type=int, default=defaults.retrain_epochs, help="epochs after pruning")
    parser.add_argument(
        "--strength",
        type=float,
        default=defaults.strength,
        help="lambda of the regulariser that pulls each pair's l1-norms together",
    )
    parser.add_argument("--drop", choices=DROP_RULES.names(), default=defaults.drop, help="which filter of a pair goes")
    parser.add_argument(
        "--threshold",
        type=float,
        default=defaults.threshold,
        help="stop once validation accuracy is more than this below the best; 0.01 is 1 point",
    )
    parser.add_argument("--max-rounds", type=int, default=defaults.max_rounds, help="rounds at most")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="learning rate")
    _seeds(parser, "the rounds")


def _add_pretraining(parser: argparse.ArgumentParser) -> None:
    defaults = PretrainingStudy()
    parser.add_argument("--model", default=defaults.model, help=f"one of {', '.join(list_models())}")
    parser.add_argument(
        "--target",
        type=Task.parse,
        default=defaults.target,
        help="the task both bases learn: DATASET or DATASET:CLASSES",
    )
    parser.add_argument(
        "--source",
        default=str(defaults.source),
        help=f"what the pretrained base learned first: a task, or {IMAGENET} (torchvision's weights; "
        "needs a network connection once)",
    )
    parser.add_argument("--criterion", default=defaults.criterion, help=f"one of {', '.join(list_criteria())}")
    parser.add_argument("--ratios", type=_list_of(float, "ratios"), default=list(defaults.ratios), help="ratios")
    parser.add_argument("--seeds", type=_list_of(int, "seeds"), default=list(defaults.seeds), help="seeds")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="training epochs on the target")
    parser.add_argument(
        "--source-epochs", type=int, default=defaults.source_epochs, help="training epochs on the source"
    )
    parser.add_argument("--finetune-epochs", type=int, default=defaults.finetune_epochs, help="fine-tuning epochs")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="learning rate of training and fine-tuning")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="accuracy a pruned model may lose and still count, 0.01 is 1 point",
    )
    _common(parser)


def _add_train(parser: argparse.ArgumentParser) -> None:
    _base_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation and of the batches")


def _add_runs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", default=None, help="run store folder (default: $PLASTICITY_HOME)")
    parser.add_argument("--json", action="store_true", help="print every run as JSON on stdout")


ARGUMENTS = {
    "train": _add_train,
    "prune": _add_prune,
    "compare": _add_compare,
    "masks": _add_masks,
    "hbfp": _add_hbfp,
    "pretraining": _add_pretraining,
    "runs": _add_runs,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plasticity", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"plasticity {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, add_arguments in ARGUMENTS.items():
        description, example = DESCRIPTIONS[name]
        sub = commands.add_parser(
            name,
            help=description.split(". ")[0].split(" (")[0],
            description=description,
            epilog=f"example:\n  {example}",
            formatter_class=_Help,
        )
        add_arguments(sub)
    return parser
