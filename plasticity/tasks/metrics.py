"""How good a detector and a segmenter are: COCO-style mean average precision, and mean IoU.

`mean_average_precision` follows COCO's evaluation (pycocotools' COCOeval) for the "all areas,
100 detections" setting: per class and IoU threshold, detections across images in order of score
are matched greedily to the unmatched ground-truth box they overlap most (at least the threshold),
precision is made monotone and read at 101 recall points; classes with no ground truth are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

COCO_THRESHOLDS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2))
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` (n, 4) with every box of `b` (m, 4), x1 y1 x2 y2."""
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(high - low, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def mean_average_precision(
    predictions: Sequence[dict[str, torch.Tensor]], targets: Sequence[dict[str, torch.Tensor]]
) -> dict[str, float]:
    """{"map": mAP over IoU 0.50:0.95, "map_50": mAP at IoU 0.5} of torchvision-style predictions
    (boxes, scores, labels per image) against targets (boxes, labels per image)."""
    preds = [{k: v.detach().cpu().numpy() for k, v in p.items()} for p in predictions]
    truths = [{k: v.detach().cpu().numpy() for k, v in t.items()} for t in targets]
    classes = sorted({int(c) for t in truths for c in t["labels"]})
    if not classes:
        return {"map": float("nan"), "map_50": float("nan")}
    table = np.array([[_average_precision(preds, truths, c, t) for t in COCO_THRESHOLDS] for c in classes])
    return {"map": float(table.mean()), "map_50": float(table[:, 0].mean())}


def _average_precision(preds: list[dict], truths: list[dict], label: int, threshold: float) -> float:
    scored = []  # (score, is a true positive) of every detection of `label`, over all images
    total = 0
    for pred, truth in zip(preds, truths):
        gt = truth["boxes"][truth["labels"] == label]
        total += len(gt)
        mine = pred["labels"] == label
        order = np.argsort(-pred["scores"][mine], kind="stable")[:MAX_DETECTIONS]
        boxes, scores = pred["boxes"][mine][order], pred["scores"][mine][order]
        ious = box_iou(boxes, gt) if len(gt) and len(boxes) else np.zeros((len(boxes), len(gt)))
        taken = np.zeros(len(gt), bool)
        for i, score in enumerate(scores):
            candidates = np.where(taken, -1.0, ious[i]) if len(gt) else np.array([])
            best = int(candidates.argmax()) if len(candidates) else -1
            hit = best >= 0 and candidates[best] >= threshold
            if hit:
                taken[best] = True
            scored.append((score, hit))
    if total == 0:
        return float("nan")
    scored.sort(key=lambda item: -item[0])  # stable: ties keep image order, as COCOeval's mergesort
    hits = np.array([hit for _, hit in scored], dtype=float)
    true_positives, false_positives = np.cumsum(hits), np.cumsum(1.0 - hits)
    recall = true_positives / total
    precision = true_positives / np.maximum(true_positives + false_positives, 1e-12)
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in at]))


def confusion(predicted: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts of pixels, rows the true class, columns the predicted one."""
    index = truth.flatten().long() * num_classes + predicted.flatten().long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def mean_iou(matrix: torch.Tensor) -> float:
    """The mean over classes (background included) of TP / (TP + FP + FN), from a confusion matrix;
    a class absent from both truth and prediction is left out."""
    matrix = matrix.double()
    hits = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - hits
    present = union > 0
    return float((hits[present] / union[present]).mean())
