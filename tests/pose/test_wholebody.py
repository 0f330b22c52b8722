"""COCO-WholeBody: the sample's parts merged to 133 keypoints, and per-part AP (through pycocotools) equal to an
independent computation of the COCO keypoint AP written here from its definition."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hrnet.pose.datasets import CocoKeypoints
from hrnet.pose.evaluation import evaluate_wholebody
from hrnet.pose.keypoints import load_keypoint_set

PARTS = {"body": (0, 17), "foot": (17, 23), "face": (23, 91), "left_hand": (91, 112), "right_hand": (112, 133)}
FIELDS = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")


def _oks(dt: np.ndarray, gt: np.ndarray, bbox: list, area: float, sigmas: np.ndarray) -> float:
    """OKS of a detection against one ground-truth person (COCO definition; a person without labelled
    keypoints is measured against its box grown by its size on every side)."""
    var = (2 * sigmas) ** 2
    vis = gt[:, 2] > 0
    if vis.any():
        d2 = (dt[:, 0] - gt[:, 0]) ** 2 + (dt[:, 1] - gt[:, 1]) ** 2
        e = d2[vis] / var[vis] / (area + np.spacing(1)) / 2
    else:
        x, y, w, h = bbox
        dx = np.maximum(0, x - w - dt[:, 0]) + np.maximum(0, dt[:, 0] - (x + 2 * w))
        dy = np.maximum(0, y - h - dt[:, 1]) + np.maximum(0, dt[:, 1] - (y + 2 * h))
        e = (dx**2 + dy**2) / var / (area + np.spacing(1)) / 2
    return float(np.mean(np.exp(-e)))


def _coco_ap(gts: list[dict], dts: list[dict], sigmas: np.ndarray) -> float:
    """Mean over OKS thresholds .50:.05:.95 of the 101-point interpolated precision (all areas, 20 people
    per image). Greedy matching in score order to the best unmatched person with OKS >= t, labelled people
    first; a detection matched only to an unlabelled person is not counted."""
    aps = []
    for t in np.linspace(0.5, 0.95, 10):
        scored = []  # (score, is true positive) of the counted detections
        for image in {g["image_id"] for g in gts}:
            people = [g for g in gts if g["image_id"] == image]
            mine = sorted((d for d in dts if d["image_id"] == image), key=lambda d: -d["score"])[:20]
            taken = set()
            for d in mine:
                oks = [_oks(d["kp"], g["kp"], g["bbox"], g["area"], sigmas) for g in people]
                free = [i for i in range(len(people)) if i not in taken and oks[i] >= t]
                labelled = [i for i in free if not people[i]["ignore"]]
                pick = labelled or free
                if not pick:
                    scored.append((d["score"], False))
                    continue
                best = max(pick, key=lambda i: oks[i])
                taken.add(best)
                if not people[best]["ignore"]:
                    scored.append((d["score"], True))
        positives = sum(not g["ignore"] for g in gts)
        scored.sort(key=lambda s: -s[0])
        tp = np.cumsum([s[1] for s in scored])
        fp = np.cumsum([not s[1] for s in scored])
        recall = tp / positives
        precision = tp / np.maximum(tp + fp, np.spacing(1))
        for i in range(len(precision) - 1, 0, -1):  # the precision envelope
            precision[i - 1] = max(precision[i - 1], precision[i])
        points = []
        for r in np.linspace(0, 1, 101):
            reached = np.nonzero(recall >= r)[0]
            points.append(precision[reached[0]] if reached.size else 0.0)
        aps.append(np.mean(points))
    return float(np.mean(aps))


@pytest.fixture(scope="module")
def wholebody(coco_dir):
    file = coco_dir / "coco_wholebody_sample.json"
    return file, json.loads(file.read_text())


def test_parts_are_merged_to_133_keypoints(wholebody, coco_dir):
    file, raw = wholebody
    ds = CocoKeypoints(file, coco_dir / "images", keypoint_set="coco_wholebody")
    by_id = {a["id"]: a for a in raw["annotations"]}
    assert len(ds) == sum(1 for a in raw["annotations"] if a["num_keypoints"] > 0 or any(a["foot_kpts"][2::3]))
    for rec in ds.records:
        parts = np.concatenate([np.asarray(by_id[rec["ann_id"]][f], dtype=float).reshape(-1, 3) for f in FIELDS])
        assert np.array_equal(rec["joints"], parts[:, :2]) and np.array_equal(rec["visible"], parts[:, 2] > 0)
    assert ds[0]["target"].shape == (133, 64, 48)


def test_per_part_ap_equals_an_independent_computation(wholebody):
    file, raw = wholebody
    sigmas = load_keypoint_set("coco_wholebody").sigmas
    rng = np.random.default_rng(0)
    gts, results = [], []
    for i, ann in enumerate(raw["annotations"]):
        kp = np.concatenate([np.asarray(ann[f], dtype=float).reshape(-1, 3) for f in FIELDS])
        # errors from tiny to large (a few pixels to a fraction of the person), so AP is between 0 and 1
        noise = rng.normal(size=(133, 2)) * (1 + 3 * (i % 5)) * np.sqrt(ann["area"]) / 60
        pred = np.concatenate([kp[:, :2] + noise, np.ones((133, 1))], axis=1)
        results.append(
            {"image_id": ann["image_id"], "category_id": 1, "keypoints": pred.ravel().tolist(), "score": 0.9 - 0.05 * i}
        )
        gts.append({"image_id": ann["image_id"], "kp": kp, "bbox": ann["bbox"], "area": ann["area"]})
    metrics = evaluate_wholebody(file, results, sigmas)
    dts = [
        {"image_id": r["image_id"], "kp": np.asarray(r["keypoints"]).reshape(133, 3), "score": r["score"]}
        for r in results
    ]
    for part, (lo, hi) in {**PARTS, "whole": (0, 133)}.items():
        part_gts = [{**g, "kp": g["kp"][lo:hi], "ignore": not (g["kp"][lo:hi, 2] > 0).any()} for g in gts]
        part_dts = [{**d, "kp": d["kp"][lo:hi]} for d in dts]
        expected = _coco_ap(part_gts, part_dts, sigmas[lo:hi])
        got = metrics["AP" if part == "whole" else f"AP_{part}"]
        assert got == pytest.approx(expected, abs=1e-9), part
        assert 0.0 < expected < 1.0, part  # the construction spreads the errors: a test that can fail
