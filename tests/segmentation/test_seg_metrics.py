"""Confusion-matrix scores against an independent per-class numpy count and hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hrnet.segmentation.datasets import CityscapesDataset
from hrnet.segmentation.metrics import SegMetric, confusion_matrix, scores_from_confusion


def reference_scores(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int = 255) -> dict:
    """Per-class pixel counting written independently of the code under test."""
    keep = gt != ignore
    ious, accs = {}, {}
    for c in range(num_classes):
        p, g = (pred == c) & keep, (gt == c) & keep
        inter, union = np.logical_and(p, g).sum(), np.logical_or(p, g).sum()
        if union:
            ious[c] = inter / union
        if g.sum():
            accs[c] = inter / g.sum()
    return {
        "mIoU": float(np.mean(list(ious.values()))),
        "pixel_acc": float((pred[keep] == gt[keep]).mean()),
        "mean_acc": float(np.mean(list(accs.values()))),
        "ious": ious,
    }


def test_hand_computed_example():
    gt = np.array([[0, 0, 1], [1, 255, 2]])
    pred = np.array([[0, 1, 1], [1, 0, 0]])
    s = scores_from_confusion(confusion_matrix(pred, gt, 4), ["a", "b", "c", "d"])
    # class 0: inter 1, union 3 (gt {00,01}, pred {00,(1,2)}); class 1: inter 2, union 3; class 2: 0/1; 3 absent
    assert s["per_class"] == pytest.approx({"a": 1 / 3, "b": 2 / 3, "c": 0.0, "d": None})
    assert s["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert s["pixel_acc"] == pytest.approx(3 / 5)
    assert s["mean_acc"] == pytest.approx((1 / 2 + 2 / 2 + 0 / 1) / 3)
    json.dumps(s)  # None (not NaN) keeps the JSON valid


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_maps_against_reference(seed):
    rng = np.random.default_rng(seed)
    c = 7
    gt = rng.integers(0, c - 2, size=(3, 40, 50))  # classes 5 and 6 never in the ground truth
    gt[rng.random(gt.shape) < 0.2] = 255
    pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, c - 1, size=gt.shape))  # 6 never predicted
    pred[pred == 255] = 0
    metric = SegMetric(c)
    for i in range(3):  # accumulate over batches
        metric.update(torch.from_numpy(pred[i]), torch.from_numpy(gt[i]))
    got, ref = metric.compute(), reference_scores(pred, gt, c)
    for key in ("mIoU", "pixel_acc", "mean_acc"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12)
    assert got["per_class"]["6"] is None and got["per_class"]["5"] == 0.0  # predicted but absent: IoU 0
    assert {int(k): v for k, v in got["per_class"].items() if v is not None} == pytest.approx(ref["ious"])


def test_real_label_against_reference(city_root):
    _, gt = CityscapesDataset(city_root, "val").load(0)
    rng = np.random.default_rng(0)
    pred = gt.copy()
    pred[pred == 255] = 0
    pred = np.roll(pred, 3, axis=1)  # a shifted prediction: boundaries wrong
    noise = rng.random(gt.shape) < 0.05
    pred[noise] = rng.integers(0, 19, size=int(noise.sum()))
    got = scores_from_confusion(confusion_matrix(pred, gt, 19))
    ref = reference_scores(pred, gt, 19)
    for key in ("mIoU", "pixel_acc", "mean_acc"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12)
    perfect = scores_from_confusion(confusion_matrix(np.where(gt == 255, 0, gt), gt, 19))
    assert perfect["mIoU"] == 1.0 and perfect["pixel_acc"] == 1.0
    assert sum(v is not None for v in perfect["per_class"].values()) == 10  # classes in this frame


def test_confusion_matrix_rejects_bad_values():
    with pytest.raises(ValueError, match="label values outside"):
        confusion_matrix(np.zeros((2, 2)), np.full((2, 2), 7), 5)
    with pytest.raises(ValueError, match="pixels"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 5)
