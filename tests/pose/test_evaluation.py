"""Rescoring, OKS-NMS, custom-sigma COCO evaluation and PCKh against hand computations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hrnet.pose.datasets import MPIIKeypoints
from hrnet.pose.evaluation import coco_results, evaluate_coco, oks, oks_nms, pckh, pckh_table, rescore
from hrnet.pose.keypoints import MPII_KEYPOINTS, load_keypoint_set


def test_rescore_by_hand():
    s = rescore(np.array([[0.9, 0.1, 0.5], [0.1, 0.1, 0.1]]), np.array([0.8, 1.0]), vis_thr=0.2)
    np.testing.assert_allclose(s, [0.8 * 0.7, 0.0])


def test_oks_by_hand():
    # one keypoint, sigma 0.1 -> (2 sigma)^2 = 0.04; areas 100: e = d^2 / 0.04 / 100 / 2 = d^2 / 8
    g = np.array([[0.0, 0.0, 1.0]])
    d = np.array([[[2.0, 0.0, 1.0]], [[0.0, 4.0, 1.0]]])
    np.testing.assert_allclose(oks(g, d, 100.0, [100.0, 100.0], np.array([0.1])), np.exp([-0.5, -2.0]))


def test_oks_nms_by_hand():
    # A (0,0) 0.9, B (1,0) 0.8: OKS(A,B) = exp(-1/8) = 0.8825; C (10,0) 0.7: OKS(A,C) = exp(-12.5) ~ 0
    kpts = np.array([[[0, 0, 1]], [[1, 0, 1]], [[10, 0, 1]]], dtype=float)
    scores, areas, sig = np.array([0.9, 0.8, 0.7]), np.full(3, 100.0), np.array([0.1])
    assert oks_nms(kpts, scores, areas, 0.8, sig) == [0, 2]
    assert oks_nms(kpts, scores, areas, 0.9, sig) == [0, 1, 2]
    assert oks_nms(kpts[[2, 1, 0]], scores[[2, 1, 0]], areas, 0.8, sig) == [2, 0]  # order follows scores
    assert oks_nms(np.zeros((0, 1, 3)), np.zeros(0), np.zeros(0), 0.9, sig) == []


def test_coco_results_rescores_and_suppresses():
    kpts = np.array([[[0.0, 0.0]], [[0.5, 0.0]], [[50.0, 0.0]]])
    ks = np.array([[0.9], [0.95], [0.1]])
    res = coco_results([1, 1, 1], kpts, ks, [1.0, 0.5, 1.0], [100.0] * 3, np.array([0.1]), oks_thr=0.9)
    # scores 0.9, 0.475 (suppressed by the first, OKS 0.97), 0 (no keypoint above 0.2, far away: kept)
    assert [r["score"] for r in res] == pytest.approx([0.9, 0.0])
    assert res[0]["keypoints"] == [0.0, 0.0, 0.9]


def _toy_gt(tmp_path, k):
    names = [f"p{i}" for i in range(k)]
    kp = []
    for i in range(k):
        kp += [10.0 + 5 * i, 20.0, 2]
    gt = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "person", "keypoints": names, "skeleton": []}],
        "annotations": [
            {
                "id": 7,
                "image_id": 1,
                "category_id": 1,
                "keypoints": kp,
                "num_keypoints": k,
                "bbox": [5, 5, 40, 40],
                "area": 400.0,
                "iscrowd": 0,
            }
        ],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return path, np.asarray(kp, dtype=float).reshape(k, 3)


def test_custom_sigmas_reach_pycocotools(tmp_path):
    """A 5-keypoint set: pycocotools' default 17 sigmas would not fit; the set's own sigmas are used.

    With one GT and one detection, AP = fraction of the thresholds 0.50:0.05:0.95 that OKS reaches."""
    yaml_path = tmp_path / "hand.yaml"
    yaml_path.write_text(
        "names: [a, b, c, d, e]\nflip_pairs: [[b, c]]\nskeleton: [[a, b], [a, c]]\n"
        "sigmas: [0.1, 0.1, 0.05, 0.05, 0.2]\nupper_body: [a, b, c]\nlower_body: [d, e]\n"
    )
    ks = load_keypoint_set(yaml_path)
    assert ks.name == "hand" and ks.flip_pairs == [(1, 2)] and ks.num_keypoints == 5
    gt_path, g = _toy_gt(tmp_path, 5)
    offsets = np.array([4.0, 0.0, 2.0, 1.0, 6.0])
    det = g.copy()
    det[:, 0] += offsets
    var = (2 * ks.sigmas) ** 2
    expected_oks = np.mean(np.exp(-(offsets**2) / var / 400.0 / 2))
    expected_ap = np.mean(expected_oks >= np.linspace(0.5, 0.95, 10))
    assert 0.6 < expected_oks < 0.9
    res = [{"image_id": 1, "category_id": 1, "keypoints": det.reshape(-1).tolist(), "score": 1.0}]
    metrics = evaluate_coco(gt_path, res, ks.sigmas)
    assert metrics["AP"] == pytest.approx(expected_ap)
    with pytest.raises(ValueError, match="5 keypoints but 17"):
        evaluate_coco(gt_path, res)  # the COCO default cannot score a 5-keypoint set


def test_keypoint_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("names: [a, b]\nsigmas: [0.1, 0.1, 0.1]\n")
    with pytest.raises(ValueError, match=r"bad.yaml.*3 values, expected 2"):
        load_keypoint_set(bad)
    bad.write_text("names: [a, b]\nsigmas: [0.1, 0.1]\nflip_pairs: [[a, z]]\n")
    with pytest.raises(ValueError, match="unknown keypoint 'z'"):
        load_keypoint_set(bad)
    bad.write_text("names: [a, b]\nsigmas: [0.1, 0.1]\nsigma: 1\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_keypoint_set(bad)
    with pytest.raises(FileNotFoundError):
        load_keypoint_set(tmp_path / "nope.yaml")


def test_pckh_by_hand():
    gt = np.zeros((1, 3, 2))
    pred = np.array([[[3.0, 0.0], [0.0, 6.0], [3.0, 4.0]]])  # distances 3, 6, 5 with head size 10
    per, count = pckh(pred, gt, np.ones((1, 3)), np.array([10.0]), thr=0.5)
    assert per.tolist() == [100.0, 0.0, 100.0] and count.tolist() == [1, 1, 1]
    per, _ = pckh(pred, gt, np.ones((1, 3)), np.array([10.0]), thr=0.1)
    assert per.tolist() == [0.0, 0.0, 0.0]


def test_mpii_loading_and_pckh(mpii_dir):
    raw = json.loads((mpii_dir / "mpii_annot_sample.json").read_text())
    ds = MPIIKeypoints(mpii_dir / "mpii_annot_sample.json", mpii_dir / "images")
    assert len(ds) == len(raw)
    r0, e0 = ds.records[0], raw[0]
    np.testing.assert_allclose(r0["joints"], np.asarray(e0["joints"]) - 1)  # MATLAB 1-based -> 0-based
    np.testing.assert_allclose(r0["center"], [e0["center"][0] - 1, e0["center"][1] - 1 + 15 * e0["scale"]])
    np.testing.assert_allclose(r0["scale"], [e0["scale"] * 1.25] * 2)
    item = ds[0]
    assert item["image"].shape == (3, 256, 256) and item["target"].shape == (16, 64, 64)
    joints, vis, heads = ds.ground_truth()
    # head size = upper neck (8) to head top (9) without head boxes
    np.testing.assert_allclose(heads[0], np.linalg.norm(np.subtract(e0["joints"][9], e0["joints"][8])))
    # everything right except the head top, moved by one head size: Head 0, the mean counts the rest
    pred = joints.copy()
    pred[:, 9, 0] += heads + 1
    table = pckh_table(pred, joints, vis, heads, MPII_KEYPOINTS.names)
    assert table["Head"] == 0.0 and table["Shoulder"] == 100.0 and table["Ankle"] == 100.0
    counted = [k for k in range(16) if k not in (6, 7)]
    n_all = sum(vis[i, k] > 0 for i in range(len(ds)) for k in counted if heads[i] > 0)
    n_head = sum(vis[i, 9] > 0 for i in range(len(ds)) if heads[i] > 0)
    assert table["PCKh"] == pytest.approx(100.0 * (n_all - n_head) / n_all)
