"""The options of every `plasticity` command, with a description, an example and every default in its --help.

This module imports neither torch nor the rest of the library, so `plasticity --help`, `--version` and
an argument error answer at once. It checks only the form of a value (a number, a finite number, a
list); names (models, data sets, criteria, modes...), ranges and class lists are checked by the
library's configs when the command runs, before anything is trained or stored. The defaults written
here are the configs' own: `tests/test_cli_front_door.py` compares them.

To add an option or a command: a line in its `_add_*` function (a new command also gets an entry in
`DESCRIPTIONS` and `ARGUMENTS` here and in `commands.COMMANDS`), with no import from the library.
"""

from __future__ import annotations

import argparse
import math
import textwrap
from collections.abc import Callable

from plasticity import __version__

DESCRIPTIONS = {
    "train": (
        "Train a base model and record its filter-norm history (every filter's l1- and l2-norm at every "
        "epoch end) into the run store.",
        "plasticity train --model lenet5 --dataset mnist-5k --epochs 12 --seed 0",
    ),
    "prune": (
        "Prune a base (trained first if the store has none), measure the accuracy right after pruning, "
        "then fine-tune and record the recovery curve, MACs, parameters and latency. With --task detection "
        "or segmentation, a detector's backbone or a SegNet, scored by mAP or mean IoU, with frames per second.",
        "plasticity prune --criterion l1 --ratio 0.5 --finetune-epochs 3 --json\n"
        "  plasticity prune --task detection --dataset digits-canvas --criterion l1 --ratio 0.5 --json",
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
    "sensitivity": (
        "Per-layer sensitivity: prune one prunable group at a time (a residual-coupled group as a whole), at "
        "each ratio, with the criterion and with random pruning; the accuracy right after pruning (and after "
        "--finetune-epochs, if any), one row per layer and ratio.",
        "plasticity sensitivity --model lenet5 --dataset mnist-5k --criterion l1 --ratios 0.25,0.5 --json",
    ),
    "budget": (
        "One MACs budget spent four ways, each fine-tuned alike: per-layer ratios from a sensitivity analysis "
        "(the least sensitive groups pruned most), one uniform ratio, Torch-Pruning's global ranking, and "
        "random filters drawn from the whole network.",
        "plasticity budget --criterion l1 --targets 0.5,0.3 --seeds 0,1,2 --finetune-epochs 3 --json",
    ),
    "runs": (
        "List what the run store holds: every run's key, kind, status and headline figure.",
        "plasticity runs --json",
    ),
    "export": (
        "Write a stored run's network (a pruned and fine-tuned one, or a base) to a file that loads without "
        "plasticity, then run the file on test images and check that its outputs equal the network's.",
        "plasticity export prune-0123456789abcdef --format onnx --out pruned.onnx",
    ),
}

UNKNOWN_LISTS = "an unknown name lists the known ones"

# The networks and data sets of detection and segmentation, the default first, written here so that
# --help lists them without importing torch (`tests/test_cli_tasks.py` compares them with the library's).
SCENE_TASKS = {
    "detection": (
        ("fasterrcnn-tiny", "fasterrcnn-mobilenet-v3"),
        ("deepforest-trees", "digits-canvas", "stardist-nuclei", "voc:<path>", "coco:<path>"),
    ),
    "segmentation": (("segnet",), ("stardist-nuclei", "digits-canvas", "coco:<path>", "masks:<path>")),
}
SCENE_BATCH_SIZE = 8


class _Parser(argparse.ArgumentParser):
    """An argument error is one line on stderr, like every other error of the command, and exit status 2."""

    def error(self, message: str):
        message = message if len(message) <= 300 else message[:300] + "..."  # argparse quotes the whole value
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Descriptions kept as written, and every option's default, unless its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if action.nargs == 0:  # a flag
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def integer(text: str) -> int:
    """An int written in decimal, with at most 18 digits (every count and seed fits; a typo does not)."""
    digits = text.strip().removeprefix("-")
    if not digits.isdigit() or len(digits) > 18:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {_shown(text)}")
    return int(text)


def number(text: str) -> float:
    """A finite float: nan and inf are no learning rate, ratio or width."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {_shown(text)}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {_shown(text)}")
    return value


def _shown(text: str, limit: int = 40) -> str:
    """The user's text quoted in an error, cut short: an error line stays one readable line."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _list_of(kind: Callable[[str], object], what: str) -> Callable[[str], list]:
    def parse(text: str) -> list:
        parts = [part for part in text.split(",") if part.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got an empty list")
        try:
            return [kind(part) for part in parts]
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {_shown(text)}") from None

    return parse


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when present)")
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder with the data sets' own files (MNIST IDX, CIFAR batches, SVHN .mat, caltech101/) "
        "(default: $PLASTICITY_DATA)",
    )
    _store(parser)


def _store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", default=None, help="run store folder (default: $PLASTICITY_HOME or ~/.plasticity)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


class _Given(argparse.Action):
    """Stores the value and notes that it was given: a scene task (--task) has its own defaults for it."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def _scene_default(what: int) -> str:
    """', with --task detection X, --task segmentation Y': the scene tasks' default networks (0) or data (1)."""
    return ", with " + ", ".join(f"--task {task} {lists[what][0]}" for task, lists in SCENE_TASKS.items())


def _base_arguments(parser: argparse.ArgumentParser, tasks: bool = False) -> None:
    """The base's options; with `tasks`, the model, data set and batch size have a default per --task."""
    given = {"action": _Given} if tasks else {}
    model, dataset = (_scene_default(what) if tasks else "" for what in (0, 1))
    parser.add_argument(
        "--model",
        default="lenet5",
        help=f"model name ({UNKNOWN_LISTS}; default: lenet5{model}), or your own: module.path:factory or "
        "path/to/file.py:factory, a function that takes the number of classes and returns a torch.nn.Module",
        **given,
    )
    parser.add_argument(
        "--dataset",
        default="mnist-5k",
        help=f"data set name ({UNKNOWN_LISTS}), or folder:PATH (class sub-folders of images); options after ?, "
        f"like cifar10?augment=crop-flip or folder:PATH?size=64,channels=3 (default: mnist-5k{dataset})",
        **given,
    )
    parser.add_argument("--epochs", type=integer, default=12, help="training epochs of the base")
    parser.add_argument("--base-lr", type=number, default=0.01, help="learning rate of the base")
    batch = f"default: 64, with --task detection or segmentation {SCENE_BATCH_SIZE}" if tasks else "default: 64"
    parser.add_argument("--batch-size", type=integer, default=64, help=f"training batch size ({batch})", **given)
    parser.add_argument("--width", type=number, default=1.0, help="channel width multiplier")
    pretrained = "start from torchvision's ImageNet weights"
    if tasks:
        pretrained += " (with --task detection, fasterrcnn-mobilenet-v3 from its COCO weights)"
    parser.add_argument("--pretrained", action="store_true", help=pretrained)
    parser.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="start the base from the weights in FILE: a state_dict, or a checkpoint holding one under 'model' "
        "(torchvision's format); read with weights_only=True (default: a fresh initialisation)",
    )
    parser.add_argument(
        "--history-every-steps",
        type=integer,
        default=0,
        metavar="K",
        help="record the base's filter norms every K steps too, not only at epoch ends (0: epoch ends only)",
    )
    _common(parser)


def _fine_tuning_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--finetune-epochs", type=integer, default=3, help="fine-tuning epochs after pruning")
    parser.add_argument("--lr", type=number, default=0.01, help="fine-tuning learning rate")
    parser.add_argument("--mode", default="remove", help="remove: take the filters out; mask: only zero them")
    parser.add_argument(
        "--classes",
        default="",
        help="prune for these classes only, like 3,5,8 or 0-4: criteria, fine-tuning and accuracy on their images "
        "(default: every class)",
    )
    _schedule(parser)
    _recalibrate_bn(parser)


def _schedule(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--schedule",
        default="one-shot",
        help="one-shot, iterative:K (K cuts raising the ratio in equal steps) or agp:K (Zhu & Gupta's cubic); "
        "the fine-tuning epochs are split evenly between the cuts",
    )


def _recalibrate_bn(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recalibrate-bn",
        type=integer,
        default=0,
        metavar="N",
        help="re-estimate BatchNorm statistics on N training batches right after pruning, before measuring "
        "(0: keep the base's)",
    )


def _seeds(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--seed", type=integer, default=0, help=f"seed of the base and of {what}")
    parser.add_argument(
        "--base-seed", type=integer, default=None, help="train the base with this seed instead (default: --seed)"
    )


def _layer_ratio(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layer-ratio",
        action="append",
        default=[],
        metavar="LAYER=RATIO",
        help="a different ratio for one layer; repeat for more (default: none)",
    )


def _executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the sweep's missing runs are computed (`plasticity.executors`; docs/cluster.md)."""
    parser.add_argument(
        "--executor",
        choices=("inprocess", "ray"),
        default="inprocess",
        help="inprocess: one run after another in this process; ray: as Ray tasks, in parallel "
        "(pip install 'plasticity[ray]')",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="with --executor ray: auto (the cluster `ray start` set up on this node) or ray://HOST:10001 "
        "(default: start Ray on this machine's cores)",
    )
    parser.add_argument(
        "--cpus-per-run", type=number, default=1.0, help="with --executor ray: CPUs per run (fractions share one)"
    )
    parser.add_argument(
        "--gpus-per-run",
        type=number,
        default=0.0,
        help="with --executor ray: GPUs per run, which then runs on cuda (fractions share one)",
    )


def _add_train(parser: argparse.ArgumentParser) -> None:
    _base_arguments(parser)
    parser.add_argument("--seed", type=integer, default=0, help="seed of the initialisation and of the batches")


def _task(parser: argparse.ArgumentParser) -> None:
    lists = "; ".join(
        f"{task}: networks {', '.join(networks)}; data sets {', '.join(datasets)}"
        for task, (networks, datasets) in SCENE_TASKS.items()
    )
    parser.add_argument(
        "--task",
        choices=("classification", *SCENE_TASKS),
        default="classification",
        help=f"what the network does. {lists} (the first of each is the default; a data set's tiles are "
        "split 80/5/15 by a fixed seed; scored on the test split by mAP at IoU 0.5:0.95 or mean IoU)",
    )


def _add_prune(parser: argparse.ArgumentParser) -> None:
    _task(parser)
    _base_arguments(parser, tasks=True)
    _fine_tuning_arguments(parser)
    parser.add_argument("--criterion", default="random", help=f"pruning criterion ({UNKNOWN_LISTS})")
    parser.add_argument("--ratio", type=number, default=0.5, help="fraction of each conv layer's filters to remove")
    _layer_ratio(parser)
    _seeds(parser, "the pruning and fine-tuning")
    parser.add_argument(
        "--checkpoint", default=None, help="prune the base model in this checkpoint file (default: train one)"
    )


def _add_compare(parser: argparse.ArgumentParser) -> None:
    _base_arguments(parser)
    _fine_tuning_arguments(parser)
    parser.add_argument("--criteria", type=_list_of(str, "names"), default="random,l1", help="criteria")
    parser.add_argument("--ratios", type=_list_of(number, "ratios"), default="0.25,0.5,0.75", help="ratios")
    parser.add_argument("--seeds", type=_list_of(integer, "seeds"), default="0,1,2", help="seeds")
    parser.add_argument(
        "--base-seed",
        type=integer,
        default=None,
        help="one base for every seed, trained with this seed (default: none)",
    )
    _executor_arguments(parser)


def _add_sensitivity(parser: argparse.ArgumentParser) -> None:
    _base_arguments(parser)
    parser.add_argument("--criterion", default="l1", help=f"pruning criterion ({UNKNOWN_LISTS})")
    parser.add_argument("--no-random", action="store_true", help="leave out random pruning beside the criterion")
    parser.add_argument("--ratios", type=_list_of(number, "ratios"), default="0.25,0.5,0.75", help="ratios")
    parser.add_argument(
        "--seeds", type=_list_of(integer, "seeds"), default="0", help="seeds of pruning and fine-tuning"
    )
    parser.add_argument("--base-seed", type=integer, default=0, help="seed of the base")
    parser.add_argument("--finetune-epochs", type=integer, default=0, help="fine-tuning epochs after pruning (0: none)")
    parser.add_argument("--lr", type=number, default=0.01, help="fine-tuning learning rate")
    _recalibrate_bn(parser)
    _executor_arguments(parser)


def _add_budget(parser: argparse.ArgumentParser) -> None:
    _base_arguments(parser)
    parser.add_argument(
        "--criterion", default="l1", help="l1 or l2: the sensitivity analysis's and the global ranking's"
    )
    parser.add_argument(
        "--targets", type=_list_of(number, "shares"), default="0.5", help="MACs targets, as shares of the base's MACs"
    )
    parser.add_argument(
        "--ratios", type=_list_of(number, "ratios"), default="0.25,0.5,0.75", help="the sensitivity analysis's ratios"
    )
    parser.add_argument(
        "--seeds", type=_list_of(integer, "seeds"), default="0", help="seeds of pruning and fine-tuning"
    )
    parser.add_argument("--base-seed", type=integer, default=0, help="seed of the base")
    parser.add_argument("--finetune-epochs", type=integer, default=3, help="fine-tuning epochs after pruning")
    parser.add_argument("--lr", type=number, default=0.01, help="fine-tuning learning rate")
    _recalibrate_bn(parser)
    _executor_arguments(parser)


def _add_masks(parser: argparse.ArgumentParser) -> None:
    _base_arguments(parser)
    parser.add_argument("--granularity", default="kernel", help="feature-map, kernel or intra-kernel")
    parser.add_argument(
        "--ratio",
        type=number,
        default=0.6,
        help="fraction of each conv layer's feature maps, kernels or kernel positions to remove",
    )
    parser.add_argument("--n-masks", type=integer, default=50, help="random masks to try")
    parser.add_argument("--finetune-epochs", type=integer, default=3, help="retraining epochs")
    parser.add_argument("--lr", type=number, default=0.01, help="retraining learning rate")
    parser.add_argument("--retrain", default="best", help="which mask, by validation accuracy: best, median or worst")
    _layer_ratio(parser)
    _seeds(parser, "the masks and the retraining")


def _add_hbfp(parser: argparse.ArgumentParser) -> None:
    _base_arguments(parser)
    parser.add_argument(
        "--criterion",
        default="hbfp",
        help="hbfp, or another criterion run through the same rounds on the same budget",
    )
    parser.add_argument(
        "--round-ratio", type=number, default=0.1, help="share of each conv layer's original filters pruned per round"
    )
    parser.add_argument("--optimise-epochs", type=integer, default=2, help="epochs with the pairs")
    parser.add_argument("--retrain-epochs", type=integer, default=2, help="epochs after pruning")
    parser.add_argument(
        "--strength",
        type=number,
        default=3e-4,
        help="lambda of the regulariser that pulls each pair's l1-norms together",
    )
    parser.add_argument(
        "--drop", default="lower-importance", help="which filter of a pair goes: lower-importance or larger-cumulative"
    )
    parser.add_argument(
        "--threshold",
        type=number,
        default=0.01,
        help="stop once validation accuracy is more than this below the best; 0.01 is 1 point",
    )
    parser.add_argument("--max-rounds", type=integer, default=30, help="rounds at most")
    parser.add_argument("--lr", type=number, default=0.01, help="learning rate")
    _seeds(parser, "the rounds")


def _add_pretraining(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="lenet5", help=f"model name ({UNKNOWN_LISTS})")
    parser.add_argument(
        "--target", default="mnist-5k:5-9", help="the task both bases learn: DATASET or DATASET:CLASSES"
    )
    parser.add_argument(
        "--source",
        default="mnist-5k:0-4",
        help="what the pretrained base learned first: a task, or imagenet (torchvision's weights; "
        "needs a network connection once)",
    )
    parser.add_argument("--criterion", default="l1", help=f"pruning criterion ({UNKNOWN_LISTS})")
    parser.add_argument("--ratios", type=_list_of(number, "ratios"), default="0.25,0.5,0.75,0.9", help="ratios")
    parser.add_argument("--seeds", type=_list_of(integer, "seeds"), default="0,1,2", help="seeds")
    parser.add_argument("--epochs", type=integer, default=5, help="training epochs on the target")
    parser.add_argument("--source-epochs", type=integer, default=5, help="training epochs on the source")
    parser.add_argument("--finetune-epochs", type=integer, default=2, help="fine-tuning epochs")
    parser.add_argument("--lr", type=number, default=0.01, help="learning rate of training and fine-tuning")
    parser.add_argument(
        "--tolerance",
        type=number,
        default=0.01,
        help="accuracy a pruned model may lose and still count, 0.01 is 1 point",
    )
    _common(parser)
    _executor_arguments(parser)


def _add_runs(parser: argparse.ArgumentParser) -> None:
    _store(parser)


def _add_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", help="the run's key, as `plasticity runs` lists it")
    parser.add_argument(
        "--format",
        required=True,
        help="state-dict (torch.load), torchscript (torch.jit.load), exported-program (torch.export.load) "
        "or onnx (onnxruntime; needs the onnx extra)",
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    parser.add_argument("--data-root", default=None, help="folder of the data sets' files (default: $PLASTICITY_DATA)")
    _store(parser)


ARGUMENTS = {
    "train": _add_train,
    "prune": _add_prune,
    "compare": _add_compare,
    "sensitivity": _add_sensitivity,
    "budget": _add_budget,
    "masks": _add_masks,
    "hbfp": _add_hbfp,
    "pretraining": _add_pretraining,
    "runs": _add_runs,
    "export": _add_export,
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="plasticity",
        description="How convolutional networks recover after their filters are pruned away: train, prune, "
        "compare and list runs. Finished runs are kept in the run store and never computed twice.",
        epilog="example:\n  plasticity prune --criterion l1 --ratio 0.5 --json\n"
        "every command's options: plasticity COMMAND --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"plasticity {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, add_arguments in ARGUMENTS.items():
        description, example = DESCRIPTIONS[name]
        sub = commands.add_parser(
            name,
            help=description.split(". ")[0].split(" (")[0],
            description=textwrap.fill(description, 88),
            epilog=f"example:\n  {example}",
            formatter_class=_Help,
        )
        add_arguments(sub)
    return parser
