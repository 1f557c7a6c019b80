"""The Detection & segmentation page through Streamlit's AppTest: a SegNet trained and pruned for real on a
mask folder written by the test, then a step of the ratio slider on the stored base; a detector on a
Pascal VOC folder."""

import numpy as np
from PIL import Image
from scene_folders import voc_folder
from test_app import charts, metrics, open_page, run_until_done, stop_jobs, values  # noqa: F401 (a fixture)


def write_mask_folder(folder):
    """Four 40x40 greyscale tiles, each with a bright rectangle that is class 1 of its mask."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rng = np.random.default_rng(1)
    for k in range(4):
        mask = np.zeros((40, 40), np.uint8)
        mask[5 + k : 20 + k, 10:30] = 1
        image = (mask * 200 + rng.integers(0, 40, (40, 40))).astype(np.uint8)
        Image.fromarray(image).save(folder / "images" / f"{k}.png")
        Image.fromarray(mask).save(folder / "masks" / f"{k}.png")
    return folder


def trained_and_pruned(at, score: str) -> dict[str, str]:
    """Press the page's button, wait for the base and both pruned runs, and check their scores; the metrics."""
    assert not at.exception and not at.error
    at.button(key="scenes_job_run").click().run()
    run_until_done(at, "scenes_job", timeout=300)
    assert not at.exception and not at.error
    shown = metrics(at)
    for label in (f"{score} before pruning", "l1: just pruned", "random: after 1 epochs"):
        assert 0 <= float(shown[label]) <= 1, label
    return shown


def test_the_default_view_offers_to_train_its_base():
    at = open_page("pages/scenes.py")
    assert not at.exception and not at.error
    assert at.selectbox(key="scene_data").value == "digits-canvas"
    assert at.button(key="scenes_job_run").label == "Train the base (3 epochs), then prune"


def test_segnet_is_trained_pruned_and_fine_tuned_then_the_slider_prunes_the_stored_base(tmp_path):
    folder = write_mask_folder(tmp_path / "cells")
    at = open_page(
        "pages/scenes.py", task="segmentation", scene_folder=f"masks:{folder}", scene_epochs="1", finetune_epochs="1"
    )
    shown = trained_and_pruned(at, "mean IoU")
    assert shown["l1: images per second"].isdigit()
    curves = {trace.name: values(trace.x) for trace in charts(at)["mean IoU while fine-tuning"].data}
    assert curves == {"l1": [0, 1], "random": [0, 1]}
    assert len(at.get("image")) == 3  # the base, l1 and random, each on the test tiles
    assert at.selectbox(key="export_format").options == ["state-dict", "torchscript", "exported-program"]
    at.selectbox(key="export_format").set_value("torchscript").run()
    at.button(key="export-l1").click().run()
    assert not at.exception and not at.error and at.get("download_button")  # exported, checked, offered

    at.slider(key="ratio").set_value(25).run()  # the base is stored: the new position runs at once
    assert not at.exception and at.session_state["scenes_job"][1] is not None
    run_until_done(at, "scenes_job", timeout=300)
    assert float(metrics(at)["random: after 1 epochs"]) >= 0 and at.query_params["ratio"] == "25"


def test_a_detector_is_pruned_on_a_voc_folder_and_the_page_says_what_its_speed_depends_on(tmp_path):
    at = open_page(
        "pages/scenes.py",
        task="detection",
        scene_folder=voc_folder(tmp_path / "squares"),
        scene_epochs="1",
        finetune_epochs="1",
    )
    shown = trained_and_pruned(at, "mAP")
    assert shown["random: images per second"].isdigit()
    assert any("Only the detector's backbone is pruned" in caption.value for caption in at.caption)
    assert at.selectbox(key="export_format").options == ["state-dict", "torchscript"]
    assert len(at.get("image")) == 3  # the boxes of the base, l1 and random
