"""The `plasticity` command's front door: help, --version and argument errors load no torch, every option
shows its default, the defaults are the library's own, and a bad value is one line."""

import argparse
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from plasticity import cli
from plasticity.cli.arguments import ARGUMENTS, _Help, build_parser

FRONT_DOOR = """
import sys
from pathlib import Path
from plasticity import cli
for argv in [["--help"], ["--version"], *([name, "--help"] for name in {commands}), ["prune", "--seed", "x"]]:
    try:
        cli.main(argv)
    except SystemExit:
        pass
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "numpy", "streamlit"))
heavy += sorted(n for n in sys.modules if n.startswith("plasticity.") and not n.startswith("plasticity.cli"))
print("loaded:", heavy, file=sys.stderr)
"""


def test_help_version_and_argument_errors_import_no_torch():
    script = FRONT_DOOR.format(commands=list(ARGUMENTS))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "loaded: []"
    assert "plasticity " in done.stdout and "example:" in done.stdout


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    (commands,) = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]
    return commands.choices


@pytest.mark.parametrize("command", list(ARGUMENTS))
def test_every_option_of_every_command_shows_its_default(command):
    sub = _subparsers()[command]
    formatter = _Help(sub.prog)
    options = [action for action in sub._actions if action.option_strings and action.dest != "help"]
    assert options
    for action in options:
        assert "default" in formatter._get_help_string(action), action.dest
    text = sub.format_help()
    assert sub.description and "example:" in text and f"plasticity {command}" in text


def _defaults(command: str):
    return build_parser().parse_args([command])


def _same(config, args, names, renamed=None):
    for name in names:
        value = getattr(args, (renamed or {}).get(name, name))
        expected = getattr(config, name)
        assert (tuple(value) if isinstance(value, list) else value) == expected, name


def test_the_defaults_are_the_library_s():
    from plasticity.runs import HbfpConfig, MaskConfig, PruneConfig, TrainConfig
    from plasticity.studies import Comparison, PretrainingStudy, Sensitivity

    base_fields = ("model", "dataset", "epochs", "batch_size", "width", "pretrained", "history_every_steps")
    for command in ("train", "prune", "compare", "masks", "hbfp"):
        _same(TrainConfig(), _defaults(command), (*base_fields, "lr"), {"lr": "base_lr"})
    _same(TrainConfig(), _defaults("train"), ("seed",))
    prune = ("criterion", "ratio", "seed", "finetune_epochs", "mode", "lr", "recalibrate_bn", "schedule")
    _same(PruneConfig(), _defaults("prune"), prune)
    sensitivity = Sensitivity()
    _same(sensitivity, _defaults("sensitivity"), ("ratios", "seeds", "finetune_epochs", "lr", "recalibrate_bn"))
    assert _defaults("sensitivity").criterion == sensitivity.criteria[0]
    compare = ("criteria", "ratios", "seeds", "finetune_epochs", "mode", "lr", "schedule", "recalibrate_bn")
    _same(Comparison(), _defaults("compare"), compare)
    masks = ("granularity", "ratio", "n_masks", "seed", "finetune_epochs", "lr", "retrain")
    _same(MaskConfig(), _defaults("masks"), masks)
    hbfp = [field.name for field in dataclasses.fields(HbfpConfig) if field.name != "base"]
    _same(HbfpConfig(), _defaults("hbfp"), hbfp)
    study = PretrainingStudy()
    pretraining = ("model", "criterion", "ratios", "seeds", "epochs", "source_epochs", "finetune_epochs", "lr")
    _same(study, _defaults("pretraining"), pretraining)
    assert (_defaults("pretraining").target, _defaults("pretraining").source) == (str(study.target), str(study.source))


@pytest.mark.parametrize(
    "args,message",
    [
        (["prune", "--seed", "99999999999999999999"], "--seed: expected a whole number"),
        (["prune", "--width", "nan"], "--width: expected a finite number"),
        (["prune", "--lr", "inf"], "--lr: expected a finite number"),
        (["compare", "--criteria", ","], "--criteria: expected comma-separated names, got an empty list"),
        (["compare", "--seeds", ""], "--seeds: expected comma-separated seeds, got an empty list"),
        (["hbfp", "--threshold", "nan"], "--threshold: expected a finite number"),
        (["prune", "--epochs", "1e23"], "--epochs: expected a whole number"),
        (["prune", "--nope"], "unrecognized arguments: --nope"),
        (["x" * 100_000], "invalid choice"),
    ],
)
def test_a_bad_value_is_one_short_line_and_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and len(err) < 500


def test_every_make_target_runs_a_file_that_exists():
    root = Path(__file__).parent.parent
    scripts = re.findall(r"\$\(VENV\)/bin/python (\S+\.py)", (root / "Makefile").read_text())
    assert "benchmarks/run_all.py" in scripts and "scripts/make_default_asset.py" in scripts
    assert [script for script in scripts if not (root / script).is_file()] == []
