"""Class subsets (paper 1) and pre-training versus scratch (paper 2), on the real mnist-5k digits."""

import json

import pytest
import torch

from plasticity.cli import main
from plasticity.data import format_classes, parse_classes
from plasticity.errors import InvalidConfigError
from plasticity.models import classifier_layer
from plasticity.runs import PruneConfig, TrainConfig, get_base, run_prune
from plasticity.studies import PretrainingStudy, Task, pretraining_bases
from plasticity.train import accuracy


def test_a_subset_keeps_only_its_classes_with_their_own_labels(mnist):
    subset = mnist.subset([8, 3, 5])
    for whole, part in [(mnist.train, subset.train), (mnist.val, subset.val), (mnist.test, subset.test)]:
        assert set(part.labels.tolist()) == {3, 5, 8}
        for c in (3, 5, 8):  # every image of the class is there, none relabelled
            assert int((part.labels == c).sum()) == int((whole.labels == c).sum())
        assert torch.equal(part.images[part.labels == 5], whole.images[whole.labels == 5])
    assert subset.num_classes == mnist.num_classes and subset.mean == mnist.mean
    assert subset.name == "mnist-5k:3,5,8"
    with pytest.raises(InvalidConfigError, match="classes 0-9; got 10"):
        mnist.subset([3, 10])


def test_classes_are_read_and_written_the_same_way():
    assert parse_classes("0-4") == (0, 1, 2, 3, 4) and parse_classes("8,3, 5") == (3, 5, 8)
    assert parse_classes("0-2,7") == (0, 1, 2, 7)
    assert format_classes((0, 1, 2, 3, 4)) == "0-4" and format_classes((3, 5, 8)) == "3,5,8"
    for bad in ("x", "4-1", "-3"):
        with pytest.raises(InvalidConfigError):
            parse_classes(bad)
    assert str(Task.parse("mnist-5k:5-9")) == "mnist-5k:5-9"
    with pytest.raises(InvalidConfigError, match="unknown data set"):
        Task.parse("mnist5k:1")


def test_new_fields_leave_earlier_run_keys_alone():
    # keys computed by the code before `classes` and `init_from` existed: stored runs are still found
    assert TrainConfig().key == "train-317ff3157376204d"
    assert PruneConfig().key == "prune-ba0523c99af7d9e2"
    assert PruneConfig(TrainConfig(seed=2), "l1", 0.25, 1, 3).key == "prune-460be880ddff5df8"
    config = TrainConfig(classes=(9, 5), init_from=TrainConfig(classes=(0, 1)))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert PruneConfig(classes=(3,)).key != PruneConfig().key


def test_class_specific_pruning_evaluates_on_the_subset_only(store, default_base):
    config = PruneConfig(default_base.config, "apoz", 0.5, 0, 1, classes=(3, 5, 8))
    result = run_prune(config, store, base=default_base)
    subset = default_base.data.subset((3, 5, 8))
    assert result["classes"] == [3, 5, 8]
    assert result["acc_base"] == accuracy(default_base.model, subset, subset.test)
    assert result["acc_base"] != default_base.result["acc"]
    model = store.get(config.key)
    assert model.status == "done" and len(result["curve"]) == 1
    with pytest.raises(InvalidConfigError, match="knows only classes"):
        PruneConfig(TrainConfig(classes=(0, 1)), "l1", 0.5, classes=(2,))


def test_the_pretrained_base_starts_from_the_source_weights(store):
    bases = pretraining_bases(
        "lenet5",
        Task("mnist-5k", (5, 6, 7, 8, 9)),
        Task("mnist-5k", (0, 1, 2, 3, 4)),
        epochs=0,
        source_epochs=1,
        seed=0,
    )
    source = get_base(bases["pretrained"].init_from, store)
    pretrained = get_base(bases["pretrained"], store)  # 0 epochs on the target: the initialisation itself
    scratch = get_base(bases["scratch"], store)
    head = classifier_layer(pretrained.model)
    for (name, weight), source_weight in zip(pretrained.model.state_dict().items(), source.model.state_dict().values()):
        if name.startswith("conv"):
            assert torch.equal(weight, source_weight), name
            assert not torch.equal(weight, scratch.model.state_dict()[name])
    assert not torch.equal(head.weight, classifier_layer(source.model).weight)  # a new task: a fresh classifier
    assert pretrained.data.name == "mnist-5k:5-9" and source.data.name == "mnist-5k:0-4"
    with pytest.raises(InvalidConfigError, match="cannot start from"):
        TrainConfig("vgg16", init_from=TrainConfig())


def test_pretraining_study_end_to_end(store):
    digits_5_to_9, digits_0_to_4 = Task("mnist-5k", (5, 6, 7, 8, 9)), Task("mnist-5k", (0, 1, 2, 3, 4))
    pretraining = PretrainingStudy(
        "lenet5", digits_5_to_9, digits_0_to_4, "l1", [0.5], [0], epochs=1, source_epochs=1, finetune_epochs=1
    )

    def study() -> list[dict]:
        return pretraining.run(store)

    rows = study()
    assert [row["modality"] for row in rows] == ["scratch", "pretrained"]
    assert all(0.4 < row["params_removed"] < 0.6 and row["acc_final"] > 0.5 for row in rows)
    summary = pretraining.summarise(rows)
    assert [(r["modality"], r["ratio"], r["seeds"]) for r in summary] == [("scratch", 0.5, 1), ("pretrained", 0.5, 1)]
    assert set(pretraining.prunable_share(summary, tolerance=1.0)) == {"scratch", "pretrained"}
    again = study()
    assert [r["key"] for r in again] == [r["key"] for r in rows]  # from the store, not redone


def test_cli_compare_for_a_class_subset(tmp_path, capsys):
    code = main(
        [
            "compare",
            "--home",
            str(tmp_path),
            "--criteria",
            "random,apoz",
            "--ratios",
            "0.5",
            "--seeds",
            "0",
            "--finetune-epochs",
            "1",
            "--classes",
            "3,5,8",
            "--json",
        ]
    )
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["criterion"], r["classes"]) for r in results] == [("random", [3, 5, 8]), ("apoz", [3, 5, 8])]
    assert main(["pretraining", "--home", str(tmp_path), "--source", "mnist-5k:5-9"]) == 2
    assert "nothing is transferred" in capsys.readouterr().err
