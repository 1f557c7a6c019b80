"""Bad values, by class, through the real command: each is one short `error:` line, exit 2, and leaves no
row in the store (the configs check every value before a run is claimed)."""

import math

import pytest
import torch

from plasticity import cli
from plasticity.checkpoint import Checkpoint, save_checkpoint
from plasticity.errors import InvalidConfigError
from plasticity.runs import HbfpConfig, PruneConfig, TrainConfig
from plasticity.store import RunStore
from plasticity.studies import Comparison


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("inputs-home")


@pytest.mark.parametrize(
    "args,message",
    [
        (["prune", "--classes", "0-99999999"], "class indices go up to 99999"),  # a huge range is never built
        (["prune", "--classes", "10-12"], "mnist-5k has classes 0-9"),
        (["prune", "--layer-ratio", "conv9=0.5"], "no prunable layer 'conv9'"),
        (["prune", "--width", "1e6"], "width must be in (0, 16]"),
        (["prune", "--seed", "99999999999"], "seed must be a whole number in [0, 4294967295]"),
        (["train", "--epochs", "100000"], "epochs must be a whole number in [0, 1000]"),
        (["prune", "--lr", "-1"], "learning rate must be in (0"),
        (["prune", "--batch-size", "0"], "batch size must be a whole number in [1, 65536]"),
        (["hbfp", "--threshold", "2"], "threshold must be in [0, 1]"),
        (["prune", "--device", "meta"], "device 'meta' is not supported"),
        (["prune", "--device", "mps"], "device 'mps' is not supported"),
        (["prune", "--ratio", "0.99"], "would remove all"),
    ],
)
def test_a_bad_value_is_one_line_and_leaves_no_row(args, message, home, capsys):
    assert cli.main([*args, "--home", str(home)]) == 2
    out, err = capsys.readouterr()
    last = err.rstrip("\n").split("\n")[-1]
    assert last.startswith("error: ") and message in last and len(last) < 300 and out == ""
    assert {run.status for run in RunStore(home).runs()} <= {"done"}  # at most the base, imported


def test_the_configs_refuse_what_the_command_line_cannot_send():
    for make in (
        lambda: HbfpConfig(threshold=math.nan),
        lambda: HbfpConfig(strength=math.inf),
        lambda: TrainConfig(width=math.nan),
        lambda: PruneConfig(lr=math.nan),
        lambda: Comparison(criteria=()),
        lambda: Comparison(seeds=[]),
    ):
        with pytest.raises(InvalidConfigError):
            make()


def test_a_checkpoint_with_an_absurd_config_is_refused_before_a_model_is_built(tmp_path, default_base, capsys):
    absurd = tmp_path / "wide.pt"
    config = {**TrainConfig().to_dict(), "width": 1e6}
    spec = default_base.config.spec(default_base.data)
    save_checkpoint(Checkpoint(spec, config, {"w": torch.zeros(1)}), absurd)
    assert cli.main(["prune", "--checkpoint", str(absurd), "--home", str(tmp_path / "home")]) == 2
    assert "holds a config that is not valid: width must be in (0, 16]" in capsys.readouterr().err
