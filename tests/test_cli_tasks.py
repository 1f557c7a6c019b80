"""`plasticity prune --task detection|segmentation`: the lists in --help are the library's, the defaults
are the shipped real sets, and a detection run on a Pascal VOC folder prints its JSON fields."""

import json

import pytest
from scene_folders import voc_folder

from plasticity import cli
from plasticity.cli.arguments import SCENE_TASKS, build_parser
from plasticity.cli.commands import _scene_configs
from plasticity.tasks.networks import list_networks
from plasticity.tasks.runs import DEFAULTS
from plasticity.tasks.scenes import list_scene_datasets


def test_the_lists_in_help_are_the_library_s_with_its_defaults_first(capsys):
    for task, (networks, datasets) in SCENE_TASKS.items():
        assert set(networks) == set(list_networks(task)) and set(datasets) == set(list_scene_datasets(task))
        assert (networks[0], datasets[0]) == DEFAULTS[task]
    with pytest.raises(SystemExit):
        cli.main(["prune", "--task", "detection", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines at hyphens too
    assert "datasetsdeepforest-trees,digits-canvas,stardist-nuclei,voc:<path>,coco:<path>" in text


def test_without_dataset_a_task_prunes_its_shipped_real_example():
    detection = _scene_configs(build_parser().parse_args(["prune", "--task", "detection"]))
    assert (detection.base.network, detection.base.dataset, detection.base.batch_size) == (
        "fasterrcnn-tiny",
        "deepforest-trees",
        8,
    )
    segmentation = _scene_configs(build_parser().parse_args(["prune", "--task", "segmentation", "--batch-size", "4"]))
    assert (segmentation.base.network, segmentation.base.dataset, segmentation.base.batch_size) == (
        "segnet",
        "stardist-nuclei",
        4,
    )


def test_a_classification_option_with_a_scene_task_is_one_error_line(capsys):
    assert cli.main(["prune", "--task", "segmentation", "--mode", "mask", "--width", "0.5"]) == 2
    assert capsys.readouterr().err == "error: --mode, --width: only for --task classification, not segmentation\n"


def test_a_detection_run_on_a_voc_folder_prints_map_and_fps(tmp_path, capsys):
    dataset = voc_folder(tmp_path / "squares")
    argv = ["prune", "--task", "detection", "--dataset", dataset, "--epochs", "1", "--finetune-epochs", "1"]
    argv += ["--criterion", "l1", "--ratio", "0.25", "--home", str(tmp_path / "home"), "--json"]
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    for field in ("map_base", "map_pruned", "map_final", "map50_base", "fps_base", "fps_pruned"):
        assert isinstance(result[field], float), field
    assert result["task"] == "detection" and result["params_pruned"] < result["params_base"]
    assert out.err.count("fine-tuning: epoch 1/1") == 1
    assert f"frames per second: {result['fps_base']:.1f} -> {result['fps_pruned']:.1f}" in out.err
    assert cli.main(argv) == 0 and json.loads(capsys.readouterr().out) == result  # from the store


def test_a_scene_task_starts_from_weights_and_says_which_network_has_pretrained_ones(capsys, tmp_path):
    assert cli.main(["prune", "--task", "detection", "--pretrained", "--home", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "error: fasterrcnn-tiny has no pretrained weights; torchvision has them for fasterrcnn-mobilenet-v3\n"
    )
    assert cli.main(["prune", "--task", "segmentation", "--weights", str(tmp_path / "none.pth")]) == 2
    assert "none.pth" in capsys.readouterr().err  # the file is read, not ignored
    args = build_parser().parse_args(
        ["prune", "--task", "detection", "--model", "fasterrcnn-mobilenet-v3", "--pretrained"]
    )
    assert _scene_configs(args).base.pretrained
