"""Facial landmarks: the four sample files as they come, the official CSV format, the keypoint sets' flip
pairs against the official code, and NME / failure rate / AUC against hand computations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hrnet.labels import flip_pairs_from_names
from hrnet.pose.keypoints import load_keypoint_set
from hrnet.pose.landmarks import FaceLandmarks, auc, failure_rate, nme_metrics, parse_normalizer

from .conftest import DATA

FACES = DATA / "face_landmark_sample"
SETS = {"wflw": 98, "300w": 68, "cofw": 29, "aflw": 19}
# HRNet-Facial-Landmark-Detection lib/utils/transforms.py MATCHED_PARTS (WFLW 0-based, the others 1-based)
OFFICIAL_PAIRS = {
    "300w": [[1, 17], [2, 16], [3, 15], [4, 14], [5, 13], [6, 12], [7, 11], [8, 10], [18, 27], [19, 26], [20, 25],
             [21, 24], [22, 23], [32, 36], [33, 35], [37, 46], [38, 45], [39, 44], [40, 43], [41, 48], [42, 47],
             [49, 55], [50, 54], [51, 53], [62, 64], [61, 65], [68, 66], [59, 57], [60, 56]],
    "aflw": [[1, 6], [2, 5], [3, 4], [7, 12], [8, 11], [9, 10], [13, 15], [16, 18]],
    "cofw": [[1, 2], [5, 7], [3, 4], [6, 8], [9, 10], [11, 12], [13, 15], [17, 18], [14, 16], [19, 20], [23, 24]],
    "wflw": [[0, 32], [1, 31], [2, 30], [3, 29], [4, 28], [5, 27], [6, 26], [7, 25], [8, 24], [9, 23], [10, 22],
             [11, 21], [12, 20], [13, 19], [14, 18], [15, 17], [33, 46], [34, 45], [35, 44], [36, 43], [37, 42],
             [38, 50], [39, 49], [40, 48], [41, 47], [60, 72], [61, 71], [62, 70], [63, 69], [64, 68], [65, 75],
             [66, 74], [67, 73], [55, 59], [56, 58], [76, 82], [77, 81], [78, 80], [87, 83], [86, 84], [88, 92],
             [89, 91], [95, 93], [96, 97]],
}  # fmt: skip


def _sample(name: str) -> tuple[Path, dict]:
    file = FACES / name / f"{name}_sample.json"
    if not file.is_file():
        pytest.skip(f"face landmark sample not found at {file}")
    return file, json.loads(file.read_text())


@pytest.mark.parametrize("name", list(SETS))
def test_each_sample_file_loads_as_it_comes(name):
    file, raw = _sample(name)
    ds = FaceLandmarks(file, file.parent / "images", name, input_size=(256, 256))
    assert len(ds) == len(raw["annotations"])
    for rec, ann in zip(ds.records, raw["annotations"]):
        kp = np.asarray(ann["keypoints"], dtype=float).reshape(SETS[name], 3)
        assert np.array_equal(rec["joints"], kp[:, :2])
        if "center" in ann:  # WFLW, 300W, AFLW: the official square box, side scale x 200 x 1.25
            assert np.allclose(rec["center"], ann["center"]) and np.allclose(rec["scale"], [ann["scale"] * 1.25] * 2)
        else:  # COFW: its bbox, made square (the longer side) and x 1.25
            x, y, w, h = ann["bbox"]
            assert np.allclose(rec["center"], [x + w / 2, y + h / 2])
            assert np.allclose(rec["scale"], [max(w, h) / 200 * 1.25] * 2)
        assert rec["box_size"] == ann.get("box_size")
    item = ds[0]
    assert item["image"].shape == (3, 256, 256) and item["target"].shape == (SETS[name], 64, 64)


@pytest.mark.parametrize("name", ["wflw", "aflw"])
def test_the_official_csv_format(tmp_path, name):
    """The same faces written as HRNet-Facial-Landmark-Detection's CSV (AFLW with box_size after scale)."""
    file, raw = _sample(name)
    images = {im["id"]: im["file_name"] for im in raw["images"]}
    k = SETS[name]
    head = ["image_name", "scale"] + (["box_size"] if name == "aflw" else []) + ["center_w", "center_h"]
    lines = [",".join(head + [f"original_{i}_{a}" for i in range(k) for a in "xy"])]
    for ann in raw["annotations"]:
        xy = np.asarray(ann["keypoints"]).reshape(k, 3)[:, :2].ravel()
        box = [ann["box_size"]] if name == "aflw" else []
        lines.append(",".join(map(str, [images[ann["image_id"]], ann["scale"], *box, *ann["center"], *xy])))
    csv = tmp_path / f"face_landmarks_{name}_test.csv"
    csv.write_text("\n".join(lines) + "\n")
    from_csv = FaceLandmarks(csv, file.parent / "images", name)
    from_json = FaceLandmarks(file, file.parent / "images", name)
    assert len(from_csv) == len(from_json)
    for a, b in zip(from_csv.records, from_json.records):
        assert np.allclose(a["joints"], b["joints"]) and np.allclose(a["center"], b["center"])
        assert np.allclose(a["scale"], b["scale"]) and a["box_size"] == b["box_size"]
    bad = tmp_path / "bad.csv"
    bad.write_text(lines[0] + "\n" + lines[1].rsplit(",", 1)[0] + "\n")
    with pytest.raises(ValueError, match=r"bad\.csv: line 2 has .* columns"):
        FaceLandmarks(bad, file.parent / "images", name)


def test_a_missing_image_is_one_line_naming_it(tmp_path):
    file, _ = _sample("cofw")
    with pytest.raises(FileNotFoundError, match=r"2 images named in .*cofw_sample\.json are missing: .*001766\.jpg"):
        FaceLandmarks(file, tmp_path, "cofw")
    with pytest.raises(ValueError, match="expected 294"):
        FaceLandmarks(file, file.parent / "images", "wflw")  # a COFW file read as WFLW


@pytest.mark.parametrize("name", list(SETS))
def test_flip_pairs_are_the_official_ones(name):
    ks = load_keypoint_set(name)
    offset = 0 if name == "wflw" else 1
    official = {tuple(sorted((a - offset, b - offset))) for a, b in OFFICIAL_PAIRS[name]}
    assert {tuple(sorted(p)) for p in ks.flip_pairs} == official
    assert ks.num_keypoints == SETS[name] and ks.sigmas is None


def test_wholebody_and_hand_sets():
    wb, coco, hand = load_keypoint_set("coco_wholebody"), load_keypoint_set("coco"), load_keypoint_set("hand")
    assert wb.num_keypoints == 133 and hand.num_keypoints == 21
    assert wb.names[:17] == coco.names and np.allclose(wb.sigmas[:17], coco.sigmas)  # the body part is COCO's
    # every left_/right_ name is paired with its mirror; the 68 face points pair by the 300W markup (300W's
    # jaw, brows, eyes and mouth pairs, shifted by the 23 body and foot points before the face)
    by_name = {tuple(sorted(p)) for p in flip_pairs_from_names(wb.names)}
    pairs = {tuple(sorted(p)) for p in wb.flip_pairs}
    assert by_name <= pairs
    face300w = {tuple(sorted((a + 23, b + 23))) for a, b in load_keypoint_set("300w").flip_pairs}
    assert pairs - by_name == face300w
    # the hand sigmas of COCO-WholeBody: the same 21 values for both hands of the whole body
    assert np.allclose(wb.sigmas[91:112], hand.sigmas) and np.allclose(wb.sigmas[112:133], hand.sigmas)
    assert len(hand.skeleton) == 20 and hand.flip_pairs == []  # a tree over 21 points; one hand has no mirror


def _offsets(k: int) -> np.ndarray:
    """Even landmarks moved by (3, 4) (5 px), odd ones by (0, 1) (1 px)."""
    off = np.zeros((k, 2))
    off[0::2] = (3.0, 4.0)
    off[1::2] = (0.0, 1.0)
    return off


@pytest.mark.parametrize("name", list(SETS))
def test_nme_equals_a_hand_computation_with_each_normaliser(name):
    _, raw = _sample(name)
    k = SETS[name]
    gt = np.stack([np.asarray(a["keypoints"], dtype=float).reshape(k, 3)[:, :2] for a in raw["annotations"]])
    pred = gt + _offsets(k)
    mean_error = (5.0 * math.ceil(k / 2) + 1.0 * (k // 2)) / k
    expected = []
    for ann in raw["annotations"]:
        p = ann["keypoints"]
        if name == "aflw":
            norm = ann["box_size"]
        else:
            a, b = {"wflw": (60, 72), "300w": (36, 45), "cofw": (8, 9)}[name]
            norm = math.hypot(p[3 * a] - p[3 * b], p[3 * a + 1] - p[3 * b + 1])
        expected.append(mean_error / norm)
    boxes = np.array([a.get("box_size", np.nan) for a in raw["annotations"]])
    metrics = nme_metrics(pred, gt, np.ones(gt.shape[:2]), parse_normalizer("auto", load_keypoint_set(name)), boxes)
    assert metrics["NME"] == pytest.approx(100 * np.mean(expected), rel=1e-12)


def test_failure_rate_and_auc_by_hand():
    nmes = np.array([0.02, 0.05, 0.12, 0.08])
    assert failure_rate(nmes, 0.1) == 0.25 and failure_rate(nmes, 0.08) == 0.25 and failure_rate(nmes, 0.04) == 0.75
    # CED: 0 below 0.02, 1/4 on [0.02, 0.05), 2/4 on [0.05, 0.08), 3/4 on [0.08, 0.1]
    assert auc(nmes, 0.1) == pytest.approx((0.25 * 0.03 + 0.5 * 0.03 + 0.75 * 0.02) / 0.1)
    assert auc(np.zeros(3)) == pytest.approx(1.0) and auc(np.full(3, 0.2)) == 0.0


def test_normaliser_choices_are_checked():
    wflw = load_keypoint_set("wflw")
    assert parse_normalizer("keypoints:96,97", wflw).describe() == "distance of landmarks 96 and 97"
    with pytest.raises(ValueError, match="auto needs a shipped face keypoint set"):
        parse_normalizer("auto", load_keypoint_set("coco"))
    with pytest.raises(ValueError, match="two different indices in 0..97"):
        parse_normalizer("keypoints:60,98", wflw)
