"""The `plasticity` command end to end, as a user runs it (a real process, real data)."""

import json
import os
import subprocess
import sys

import pytest

from plasticity import cli


def plasticity(*args, home, timeout=300):
    env = {**os.environ, "PLASTICITY_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "plasticity.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_prune_json_on_mnist_5k(tmp_path):
    done = plasticity(
        "prune",
        "--model",
        "lenet5",
        "--dataset",
        "mnist-5k",
        "--criterion",
        "random",
        "--ratio",
        "0.5",
        "--finetune-epochs",
        "1",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--json",
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout is exactly one JSON object; progress went to stderr
    for key in (
        "model",
        "dataset",
        "criterion",
        "ratio",
        "seed",
        "acc_base",
        "acc_pruned",
        "curve",
        "acc_final",
        "macs_base",
        "macs_pruned",
        "params_base",
        "params_pruned",
        "channels",
    ):
        assert key in result
    assert [p["epoch"] for p in result["curve"]] == [1]
    assert result["acc_final"] == result["curve"][-1]["acc"]
    assert result["acc_base"] > 0.95 and result["acc_pruned"] < result["acc_base"]
    assert result["channels"] == {"conv1": [10, 20], "conv2": [25, 50]}
    assert result["macs_pruned"] < result["macs_base"] and result["params_pruned"] < result["params_base"]
    assert "fine-tuning" in done.stderr

    again = plasticity(
        "prune", "--criterion", "random", "--ratio", "0.5", "--finetune-epochs", "1", "--json", home=tmp_path
    )
    assert json.loads(again.stdout) == result  # from the store, not recomputed
    listing = plasticity("runs", home=tmp_path)
    assert "2 runs" in listing.stdout and "random 0.5 remove" in listing.stdout


def test_compare_json_lists_every_cell(tmp_path, capsys):
    args = ["compare", "--criteria", "random,l1", "--ratios", "0.25,0.5", "--seeds", "0", "--finetune-epochs", "1"]
    assert cli.main([*args, "--json", "--home", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    results = json.loads(out)
    cells = [(r["criterion"], r["ratio"]) for r in results]
    assert cells == [("random", 0.25), ("random", 0.5), ("l1", 0.25), ("l1", 0.5)]
    assert "[4/4]" in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["prune", "--model", "lenet6"], "unknown model 'lenet6'; known models: lenet5"),
        (["prune", "--dataset", "mnist-6k"], "unknown dataset 'mnist-6k'; known datasets: mnist-5k"),
        (["prune", "--criterion", "magic"], "unknown criterion 'magic'; known criteria: random"),
        (["compare", "--criteria", "l1,magic"], "unknown criterion 'magic'"),
        (["prune", "--ratio", "1.2"], "ratio must be in [0, 1)"),
        (["prune", "--ratio", "0.5", "--layer-ratio", "conv9=0.5"], "no prunable layer 'conv9'"),
        (["prune", "--width", "0.05", "--ratio", "0.6", "--epochs", "0"], "would remove all"),
        (["train", "--dataset", "cifar10"], "use an offline set: mnist-5k, digits"),
        (
            ["prune", "--device", "cuda:0"]
            if not __import__("torch").cuda.is_available()
            else ["prune", "--device", "tpu"],
            "device",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    assert cli.main([*args, "--home", str(tmp_path)]) == 2  # in-process: an escaping exception fails the test
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert out == ""


def test_bad_checkpoint_file_in_a_real_process(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 truncated zip")
    done = plasticity("prune", "--checkpoint", str(corrupt), home=tmp_path)
    assert done.returncode == 2 and "not a readable plasticity checkpoint" in done.stderr
    assert "Traceback" not in done.stderr


def test_diverging_fine_tune_is_reported_and_stored_as_failed(tmp_path, capsys):
    home = ["--home", str(tmp_path)]
    assert cli.main(["prune", "--criterion", "l1", "--finetune-epochs", "1", "--lr", "1e12", *home]) == 2
    assert "lower the learning rate" in capsys.readouterr().err
    assert cli.main(["runs", "--json", *home]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in runs] == ["done", "failed"]  # the base is kept; the bad run is marked


@pytest.mark.parametrize("command", ["train", "prune", "compare", "runs"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0 and "usage: plasticity" in capsys.readouterr().out


def test_train_records_history_every_k_steps(tmp_path, capsys):
    from plasticity.store import RunStore

    args = ["train", "--epochs", "1", "--seed", "3", "--history-every-steps", "25", "--json", "--home", str(tmp_path)]
    assert cli.main(args) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["history_every_steps"] == 25 and 0.5 < trained["acc"] <= 1.0
    history = RunStore(tmp_path).history(trained["key"])
    assert [step for _, step in history.points] == [0, 25, 50, 63]  # 63 steps of 64 images in an epoch
    assert history.epochs() == [0, 1]
