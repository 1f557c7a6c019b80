"""`plasticity export`: a pruned, fine-tuned network written in each format, read back by the export's own
check and then, in a process where plasticity cannot be imported, by torch or ONNX Runtime alone."""

import json
import subprocess
import sys

import pytest
import torch
from scene_folders import mask_folder, voc_folder

from plasticity import cli
from plasticity.checkpoint import load_checkpoint
from plasticity.export import CHECK_BATCH, ExportError, export_run, list_formats
from plasticity.runs import PruneConfig, TrainConfig, run_prune
from plasticity.runs.base import dataset_on
from plasticity.store import RunStore
from plasticity.tasks.runs import ScenePruneConfig, SceneTrainConfig, run_scene_prune

FORMATS = ["state-dict", "torchscript", "exported-program", "onnx"]


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """A ResNet-20 (residual adds coupled across layers) on the 8x8 digits, half its filters removed; its
    weights untrained, as a round trip does not depend on them."""
    home = tmp_path_factory.mktemp("export-home")
    store = RunStore(home)
    config = PruneConfig(TrainConfig("resnet20", "digits", epochs=0, width=0.25), "l1", 0.5, finetune_epochs=0)
    run_prune(config, store)
    return home, config.key, store


@pytest.fixture(scope="module")
def exported(pruned, tmp_path_factory):
    _, key, store = pruned
    folder = tmp_path_factory.mktemp("exported")
    return folder, {fmt: export_run(store, key, fmt, folder / fmt) for fmt in FORMATS}


def test_every_format_is_offered():
    assert list_formats() == FORMATS


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_export_is_checked_against_the_network(fmt, exported):
    folder, results = exported
    result = results[fmt]
    assert result["out"] == str(folder / fmt) and result["bytes"] == (folder / fmt).stat().st_size > 0
    assert result["checked_images"] == CHECK_BATCH and result["max_abs_diff"] <= result["tolerance"] < 1e-3


def test_the_cli_exports_a_run(pruned, tmp_path, capsys):
    home, key, _ = pruned
    out = tmp_path / "pruned.pt"
    assert cli.main(["export", key, "--format", "state-dict", "--out", str(out), "--home", str(home), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["key"] == key and result["kind"] == "prune" and result["out"] == str(out)


def test_the_files_load_without_plasticity(pruned, exported):
    _, key, store = pruned
    folder, _ = exported
    data = dataset_on("digits", "cpu")
    images = data.normalize(data.test.images[-5:]).contiguous()  # images the export's check did not see
    model = load_checkpoint(store.done(key).checkpoint).build_model().eval()
    with torch.no_grad():
        torch.save({"images": images, "expected": model(images)}, folder / "batch.pt")
    script = f"""
import sys
sys.modules["plasticity"] = None  # any import of plasticity fails from here on
import onnxruntime, torch
folder = {str(folder)!r}
batch = torch.load(folder + "/batch.pt", weights_only=True)
images, expected = batch["images"], batch["expected"]
outputs = {{
    "torchscript": torch.jit.load(folder + "/torchscript")(images),
    "exported-program": torch.export.load(folder + "/exported-program").module()(images),
    "onnx": torch.from_numpy(onnxruntime.InferenceSession(folder + "/onnx").run(None, {{"images": images.numpy()}})[0]),
}}
state = torch.load(folder + "/state-dict", weights_only=True)
assert state.keys() and all(isinstance(v, torch.Tensor) for v in state.values())
for name, out in outputs.items():
    assert torch.allclose(out, expected, rtol=1e-4, atol=1e-4), name
print("loaded", *outputs)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["loaded", "torchscript", "exported-program", "onnx"]


def test_export_errors_are_one_line(pruned, tmp_path, capsys):
    home, key, store = pruned
    common = ["--out", str(tmp_path / "x"), "--home", str(home)]
    assert cli.main(["export", "prune-0000000000000000", "--format", "onnx", *common]) == 2
    assert capsys.readouterr().err.startswith("error: no run 'prune-0000000000000000'")
    store.start("scene-prune-0000000000000000", "scene-prune", {})
    assert cli.main(["export", "scene-prune-0000000000000000", "--format", "onnx", *common]) == 2
    assert "is running and has no network stored" in capsys.readouterr().err
    store.start("study-0000000000000000", "study", {})  # a kind of a later version, say
    assert cli.main(["export", "study-0000000000000000", "--format", "onnx", *common]) == 2
    assert "export takes prune, train" in capsys.readouterr().err
    assert cli.main(["export", key, "--format", "tflite", *common]) == 2
    assert "unknown export format 'tflite'" in capsys.readouterr().err


def test_prune_page_offers_each_run_for_download():
    """The real page: once its runs are done, Export makes the checked file and a download offers it."""
    import onnxruntime
    from test_app import open_page, run_until_done

    from ui.export import EXPORTED

    at = open_page("pages/prune.py", finetune_epochs="1", ratio="20")
    run_until_done(at, "prune_job", timeout=600)
    at.run()
    at.selectbox(key="export_format").set_value("onnx").run()
    at.button(key="export-l1").click().run()
    assert not at.exception and not at.error
    [(key, fmt)] = at.session_state[EXPORTED].keys()
    assert key.startswith("prune-") and fmt == "onnx"
    session = onnxruntime.InferenceSession(at.session_state[EXPORTED][(key, fmt)])
    assert session.run(None, {"images": torch.zeros(2, 1, 28, 28).numpy()})[0].shape == (2, 10)
    assert at.get("download_button")  # beside the button that made it


@pytest.fixture(scope="module")
def scene_runs(tmp_path_factory):
    """A pruned SegNet (a mask folder) and a pruned Faster R-CNN (a Pascal VOC folder), untrained: a round
    trip does not depend on the weights."""
    folder = tmp_path_factory.mktemp("scenes")
    store = RunStore(folder / "home")
    keys = {}
    for task, network, dataset in [
        ("segmentation", "segnet", mask_folder(folder / "cells")),
        ("detection", "fasterrcnn-tiny", voc_folder(folder / "squares")),
    ]:
        config = ScenePruneConfig(SceneTrainConfig(task, network, dataset, epochs=0), "l1", 0.5, finetune_epochs=0)
        run_scene_prune(config, store)
        keys[task] = config.key
    return store, keys


@pytest.mark.parametrize("fmt", ["state-dict", "torchscript", "exported-program"])
def test_a_pruned_segnet_exports_in_torch_s_formats(fmt, scene_runs, tmp_path):
    store, keys = scene_runs
    result = export_run(store, keys["segmentation"], fmt, tmp_path / fmt)
    assert result["kind"] == "scene-prune" and result["max_abs_diff"] <= result["tolerance"] < 1e-3


def test_segnet_s_unpooling_has_no_onnx_export_and_says_so(scene_runs, tmp_path):
    store, keys = scene_runs
    with pytest.raises(ExportError, match="max_unpool2d"):
        export_run(store, keys["segmentation"], "onnx", tmp_path / "segnet.onnx")


def test_a_pruned_detector_exports_scripted_and_is_refused_where_boxes_cannot_be_kept(scene_runs, tmp_path):
    store, keys = scene_runs
    key = keys["detection"]
    result = export_run(store, key, "torchscript", tmp_path / "detector.pt")
    assert result["max_abs_diff"] <= result["tolerance"]
    scripted = torch.jit.load(str(tmp_path / "detector.pt"))  # loads without plasticity's classes
    _, detections = scripted([torch.rand(3, 48, 48)])
    assert set(detections[0]) == {"boxes", "labels", "scores"}
    state = torch.load(export_run(store, key, "state-dict", tmp_path / "d.pt")["out"], weights_only=True)
    assert state["backbone.features.0.0.weight"].shape[0] == 8  # half of the first layer's 16 filters
    with pytest.raises(ExportError, match="a detector exports as state-dict or torchscript"):
        export_run(store, key, "onnx", tmp_path / "detector.onnx")
