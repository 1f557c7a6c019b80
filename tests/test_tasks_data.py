"""Scene data sets: the readers on tiny files written in the real formats, tiles, splits, the shipped sets;
the metrics against hand computations."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from plasticity.errors import InvalidConfigError
from plasticity.tasks.metrics import confusion, mean_average_precision, mean_iou
from plasticity.tasks.scenes import (
    Picture,
    build_scenes,
    decode_rle,
    digits_canvas,
    list_scene_datasets,
    load_scenes,
    read_coco,
    read_mask_folder,
    read_voc,
    rle_counts,
    split_indices,
    tile,
)

VOC = """<annotation><filename>{name}</filename><size><width>40</width><height>30</height><depth>3</depth></size>
{objects}</annotation>"""
OBJECT = (
    "<object><name>{cls}</name>"
    "<bndbox><xmin>{0}</xmin><ymin>{1}</ymin><xmax>{2}</xmax><ymax>{3}</ymax></bndbox></object>"
)


def _write_image(path, height=30, width=40, value=7, mode="RGB"):
    pixels = np.full((height, width, 3) if mode == "RGB" else (height, width), value, np.uint8)
    Image.fromarray(pixels).save(path)


def test_voc_folder_reads_boxes_classes_and_the_image_beside_a_renamed_tif(tmp_path):
    _write_image(tmp_path / "a.png")
    boxes = [OBJECT.format(1, 2, 11, 12, cls="dog"), OBJECT.format(20, 5, 35, 25, cls="cat")]
    (tmp_path / "a.xml").write_text(VOC.format(name="a.tif", objects="".join(boxes)))  # the .tif became a .png
    pictures, classes = read_voc(tmp_path)
    assert classes == ["cat", "dog"]
    assert pictures[0].pixels.shape == (30, 40, 3) and pictures[0].pixels[0, 0, 0] == 7
    np.testing.assert_array_equal(pictures[0].boxes, [[1, 2, 11, 12], [20, 5, 35, 25]])
    np.testing.assert_array_equal(pictures[0].labels, [2, 1])


def test_voc_reader_names_a_broken_file(tmp_path):
    (tmp_path / "bad.xml").write_text("<annotation><object>")
    with pytest.raises(InvalidConfigError, match="bad.xml"):
        read_voc(tmp_path)


def test_coco_compressed_rle_decodes_a_hand_encoded_string():
    # counts 0, 40, 5, 30 by maskApi.c's rleToString: "0", "X1" (40 = 8 + 1*32, continued), "5", and
    # the fourth as its difference to the second, 30 - 40 = -10: 5 bits 10110 with the sign bit -> "F"
    assert rle_counts("0X15F") == [0, 40, 5, 30]
    mask = decode_rle("0X15F", 15, 5)
    assert mask[:, :2].all() and mask[:10, 2].all() and not mask[10:, 2].any() and mask[:, 3:].all()


def test_coco_file_reads_boxes_and_masks_from_polygons_and_rle(tmp_path):
    _write_image(tmp_path / "one.png", 10, 12)
    rle = [10, 30, 80]  # column-major: column 0 off, columns 1-3 on, the rest off
    coco = {
        "images": [{"id": 5, "file_name": "one.png", "height": 10, "width": 12}],
        "categories": [{"id": 9, "name": "nucleus"}, {"id": 3, "name": "cell"}],
        "annotations": [
            {"image_id": 5, "category_id": 9, "bbox": [1, 0, 3, 10], "segmentation": {"counts": rle, "size": [10, 12]}},
            {"image_id": 5, "category_id": 3, "bbox": [6, 2, 4, 4], "segmentation": [[6, 2, 10, 2, 10, 6, 6, 6]]},
        ],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    pictures, classes = read_coco(tmp_path / "coco.json")
    assert classes == ["cell", "nucleus"]  # in category id order: 3, 9
    picture = pictures[0]
    np.testing.assert_array_equal(picture.boxes, [[1, 0, 4, 10], [6, 2, 10, 6]])
    np.testing.assert_array_equal(picture.labels, [2, 1])
    assert (picture.mask[:, 1:4] == 2).all() and (picture.mask[:, [0, 4, 5]] == 0).all()
    assert (picture.mask[2:7, 6:11] == 1).all() and picture.mask[0, 8] == 0  # PIL fills the outline too


def test_mask_folder_keeps_class_values(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _write_image(tmp_path / "images" / "x.jpg", 8, 8)
    labels = np.zeros((8, 8), np.uint8)
    labels[2:5, 3:6] = 2
    Image.fromarray(labels).save(tmp_path / "masks" / "x.png")
    pictures, classes = read_mask_folder(tmp_path)
    assert classes == ["1", "2"]
    np.testing.assert_array_equal(pictures[0].mask, labels)


def test_tiles_keep_boxes_mostly_inside_clipped_and_pad_the_edges():
    pixels = np.arange(30 * 40, dtype=np.uint8).reshape(30, 40, 1)
    boxes = np.array([[2, 2, 8, 8], [14, 0, 22, 10], [10, 10, 30, 12]], np.float32)
    mask = np.zeros((30, 40), np.int64)
    mask[25:, 35:] = 1
    tiles = tile(Picture(pixels, boxes, np.array([1, 2, 3]), mask), 16)
    assert len(tiles) == 6 and all(t.pixels.shape == (16, 16, 1) for t in tiles)
    first, second = tiles[0], tiles[1]
    # box 2 is 2/8 in the first tile (dropped there), 6/8 in the second (kept, clipped to x 0..6)
    np.testing.assert_array_equal(first.boxes, [[2, 2, 8, 8]])
    np.testing.assert_array_equal(second.boxes, [[0, 0, 6, 10], [0, 10, 14, 12]])
    assert tiles[-1].mask[9:14, 3:8].all() and tiles[-1].mask[14:].sum() == 0  # padding is background
    assert tiles[-1].pixels[14:].sum() == 0


def test_splits_are_fixed_disjoint_and_carry_boxes_and_masks_with_their_images():
    assert [list(s) for s in split_indices(20)] == [list(s) for s in split_indices(20)]
    parts = np.concatenate(split_indices(20))
    assert sorted(parts) == list(range(20))
    pictures = []
    for k in range(20):  # picture k: value k everywhere, one box at (k, k), mask of class k % 3
        pictures.append(
            Picture(
                np.full((8, 8, 1), k, np.uint8),
                np.array([[k, k, k + 1, k + 1]], np.float32),
                np.array([1]),
                np.full((8, 8), k % 3),
            )
        )
    scenes = build_scenes("t", pictures, ["a", "b"])
    for split in (scenes.train, scenes.val, scenes.test):
        for image, boxes, mask in zip(split.images, split.boxes, split.masks):
            k = int(image[0, 0, 0])
            assert boxes.tolist() == [[k, k, k + 1, k + 1]] and int(mask[0, 0]) == k % 3


def test_digits_canvas_boxes_and_masks_are_exact_by_construction():
    scenes = digits_canvas()
    assert sum(len(b) for s in (scenes.train, scenes.val, scenes.test) for b in s.boxes) == 5000
    for image, boxes, labels, mask in list(
        zip(scenes.test.images, scenes.test.boxes, scenes.test.labels, scenes.test.masks)
    )[:50]:
        ink = image[0] > 0
        covered = torch.zeros_like(ink)
        for (x1, y1, x2, y2), label in zip(boxes.int().tolist(), labels.tolist()):
            inside = ink[y1:y2, x1:x2]
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()  # tight
            assert set(mask[y1:y2, x1:x2].unique().tolist()) <= {0, label}
            covered[y1:y2, x1:x2] = True
        assert not (ink & ~covered).any()  # all ink is in some box
        assert ((mask > 0) == (image[0] >= 128)).all()


def test_task_lists_and_a_set_without_masks_for_segmentation_is_refused():
    assert "deepforest-trees" in list_scene_datasets("detection")
    assert "deepforest-trees" not in list_scene_datasets("segmentation")
    assert "masks:<path>" in list_scene_datasets("segmentation")
    with pytest.raises(InvalidConfigError, match="no masks"):
        load_scenes("deepforest-trees", "segmentation")


def _det(boxes, scores, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "scores": torch.tensor(scores),
        "labels": torch.tensor(labels),
    }


def test_map_of_a_known_prediction_equals_the_hand_computation():
    truth = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([1, 1])}]
    # 0.9 on the first box (exact), 0.8 a miss, 0.7 on the second box (exact):
    # precision/recall 1/.5, .5/.5, .667/1 -> monotone precision 1 for recall <= .5 (51 of the 101
    # recall points), 2/3 above (50 points): AP = (51 + 50 * 2/3) / 101 at every threshold
    pred = [_det([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], [0.9, 0.8, 0.7], [1, 1, 1])]
    result = mean_average_precision(pred, truth)
    expected = (51 + 50 * 2 / 3) / 101
    assert math.isclose(result["map"], expected) and math.isclose(result["map_50"], expected)


def test_map_counts_a_loose_box_only_at_the_thresholds_it_passes():
    truth = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([2])}]
    pred = [_det([[0, 0, 10, 6]], [0.5], [2])]  # IoU 60/100 = 0.6: a hit at 0.50, 0.55, 0.60 only
    result = mean_average_precision(pred, truth)
    assert math.isclose(result["map"], 3 / 10) and result["map_50"] == 1.0
    # a second class with ground truth and no detection halves both
    truth[0] = {"boxes": torch.tensor([[0.0, 0, 10, 10], [5, 5, 9, 9]]), "labels": torch.tensor([2, 3])}
    assert math.isclose(mean_average_precision(pred, truth)["map"], 3 / 20)


def test_mean_iou_of_a_known_prediction():
    truth = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
    predicted = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 2]])
    # background: 3 hits, union 4 -> 3/4; class 1: 3 hits, union 5 -> 3/5; class 2: 0 / 1 -> 0
    assert math.isclose(mean_iou(confusion(predicted, truth, 3)), (3 / 4 + 3 / 5 + 0) / 3)
    assert math.isclose(mean_iou(confusion(truth, truth, 4)), 1.0)  # class 3 absent from both: left out


def test_segnet_s_class_weights_are_median_frequency_balancing_by_hand():
    from plasticity.tasks.training import median_frequency_weights

    masks = torch.tensor([[[0, 0], [0, 1]], [[0, 0], [0, 0]]])  # class 1 in one image, class 2 in none
    # frequencies: class 0 has 7 of the 8 pixels of the 2 images it is in, class 1 has 1 of 4; median 0.5625
    weights = median_frequency_weights(masks, 3)
    torch.testing.assert_close(weights, torch.tensor([0.5625 / 0.875, 0.5625 / 0.25, 1.0]))
