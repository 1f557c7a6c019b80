"""A user's own network (a factory in a module or a file) and own weights, trained, pruned and rebuilt
like the built-in models; every way they can be wrong is one clear error naming the layer or file."""

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch

from plasticity import cli
from plasticity.checkpoint import load_checkpoint
from plasticity.errors import InvalidConfigError
from plasticity.models import ModelSpec, create_model, file_hash
from plasticity.runs import PruneConfig, TrainConfig, get_base, run_prune, train_base

FACTORY_FILE = Path(__file__).with_name("user_model.py")


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "net.py"
    shutil.copy(FACTORY_FILE, path)
    return path


def test_a_file_factory_is_keyed_by_its_content(user_file, monkeypatch):
    monkeypatch.chdir(user_file.parent)
    config = TrainConfig(model="net.py:small_cnn", epochs=1)
    assert config.model == f"{user_file}:small_cnn@{file_hash(user_file)}"
    assert TrainConfig(model=config.model, epochs=1).key == config.key  # a stored name is kept as it is
    user_file.write_text(user_file.read_text() + "\n# edited\n")
    assert TrainConfig(model="net.py:small_cnn", epochs=1).key != config.key
    with pytest.raises(InvalidConfigError, match="has changed since"):
        create_model(ModelSpec(config.model, 1, 10, 28))


def test_a_module_factory_trains_prunes_and_rebuilds_from_its_checkpoint(store):
    base = train_base(TrainConfig(model="user_model:small_cnn", dataset="digits", epochs=1), store)
    assert base.result["acc"] > 0.25  # one epoch on 1,437 8x8 digits: well above the 0.1 of chance
    config = PruneConfig(base.config, "l1", 0.5, finetune_epochs=1)
    result = run_prune(config, store, base=base)
    assert result["params_pruned"] < 0.6 * result["params_base"]
    pruned_run = store.done(config.key)
    rebuilt = load_checkpoint(pruned_run.checkpoint).build_model()
    assert [m.out_channels for m in rebuilt.modules() if isinstance(m, torch.nn.Conv2d)] == [4, 8]


@pytest.mark.parametrize(
    "factory, message",
    [
        ("fixed_width", "no longer runs once a filter of features.4 is removed \\(in its own forward\\)"),
        ("colour_only", r"does not run on this data set's images \(in 0\)"),
        ("not_a_network", "returned a list, not a torch.nn.Module"),
        ("missing", "has no function missing"),
    ],
)
def test_a_network_that_cannot_be_used_is_one_clear_error(factory, message, store):
    with pytest.raises(InvalidConfigError, match=message):
        train_base(TrainConfig(model=f"{FACTORY_FILE}:{factory}", dataset="digits", epochs=1), store)


def test_weights_in_torchvisions_checkpoint_format(tmp_path, store):
    """A training checkpoint as torchvision's reference scripts save it, for 5 classes: the classifier of
    the 10-class model keeps its initialisation, every other weight is the file's."""
    source = create_model(ModelSpec("lenet5", 1, 5, 8))
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": source.state_dict(), "args": argparse.Namespace(lr=0.1), "epoch": 30}, path)
    base = get_base(TrainConfig(dataset="digits", epochs=0, weights=str(path)), store)
    assert torch.equal(base.model.conv1.weight.cpu(), source.conv1.weight)
    assert base.model.fc2.out_features == 10
    assert TrainConfig(epochs=0, weights=str(path)).key != TrainConfig(epochs=0).key


def test_weights_that_do_not_fit_or_run_code_are_refused(tmp_path, store):
    other = tmp_path / "vgg.pt"
    torch.save(create_model(ModelSpec("vgg16", 1, 10, 28, width=0.25)).state_dict(), other)
    with pytest.raises(InvalidConfigError, match="another network"):
        train_base(TrainConfig(dataset="digits", epochs=0, weights=str(other)), store)
    crafted = tmp_path / "crafted.pt"
    torch.save({"model": shutil.rmtree}, crafted)  # a reference to code: weights_only=True refuses it
    with pytest.raises(InvalidConfigError, match="not a readable weights file"):
        train_base(TrainConfig(dataset="digits", epochs=0, weights=str(crafted)), store)


def test_cli_model_and_weights_errors_are_one_line(tmp_path, capsys):
    common = ["train", "--home", str(tmp_path), "--dataset", "digits", "--epochs", "0", "--json"]
    assert cli.main([*common, "--model", "no/such/file.py:net"]) == 2
    assert capsys.readouterr().err.startswith("error: no model file at ")
    assert cli.main([*common, "--weights", str(tmp_path / "missing.pt")]) == 2
    assert capsys.readouterr().err.startswith("error: no weights file at ")
    assert cli.main([*common, "--model", f"{FACTORY_FILE}:small_cnn", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["model"].endswith(f":small_cnn@{file_hash(FACTORY_FILE)}")
