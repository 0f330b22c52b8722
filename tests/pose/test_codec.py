"""Codec, crop geometry and flip handling, checked against hand-made cases and pycocotools on real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hrnet.pose.codec import HeatmapCodec, flip_back, heatmap_to_coords
from hrnet.pose.datasets import CocoKeypoints
from hrnet.pose.evaluation import coco_results, evaluate_coco
from hrnet.pose.keypoints import COCO_KEYPOINTS
from hrnet.pose.transforms import affine_points, box_to_center_scale, flip_joints, get_affine_transform


def test_box_to_center_scale_by_hand():
    # 100 x 100 box, aspect 0.75: height grows to 133.33; x 1.25 padding; 200-px units
    c, s = box_to_center_scale([10, 20, 100, 100], 0.75)
    np.testing.assert_allclose(c, [60, 70])
    np.testing.assert_allclose(s, [100 / 200 * 1.25, 100 / 0.75 / 200 * 1.25])


def test_affine_maps_box_to_crop_and_back():
    c, s = np.array([300.0, 200.0]), np.array([0.96, 1.28])  # 192 x 256 px region
    t = get_affine_transform(c, s, 0.0, (48, 64))
    # the region's corners land on the crop's corners, the center on the crop center
    np.testing.assert_allclose(affine_points(np.array([[204.0, 72.0], [300.0, 200.0]]), t), [[0, 0], [24, 32]])
    inv = get_affine_transform(c, s, 30.0, (48, 64), inv=True)
    fwd = get_affine_transform(c, s, 30.0, (48, 64))
    pts = np.random.default_rng(0).uniform(0, 400, (10, 2))
    np.testing.assert_allclose(affine_points(affine_points(pts, fwd), inv), pts, atol=1e-9)
    # rotation by 90 degrees: a point above the center ends up to one side, same distance
    r = get_affine_transform(c, s, 90.0, (48, 64))
    p = affine_points(np.array([[300.0, 100.0]]), r)[0] - [24, 32]
    np.testing.assert_allclose(np.abs(p), [25.0, 0.0], atol=1e-9)


def test_encode_by_hand():
    codec = HeatmapCodec((192, 256), (48, 64), sigma=2.0)
    kpts = np.array([[41.0, 63.0], [1000.0, 10.0], [10.0, 10.0]])
    target, weight = codec.encode(kpts, np.array([1, 1, 0]))
    # stride 4: (41, 63) -> (10.25, 15.75) -> rounded (10, 16); peak 1 there, exp(-1/8) one pixel away
    assert target[0, 16, 10] == pytest.approx(1.0)
    assert target[0, 16, 11] == pytest.approx(np.exp(-1 / 8))
    assert target[0, 16, 17] == 0.0  # beyond 3 sigma
    assert weight[:, 0].tolist() == [1.0, 0.0, 0.0]  # off the heatmap / unlabelled
    assert target[1].max() == 0 and target[2].max() == 0


def test_quarter_offset_and_dark():
    hm = np.zeros((1, 1, 8, 8), np.float32)
    hm[0, 0, 4, 4], hm[0, 0, 4, 5], hm[0, 0, 3, 4] = 1.0, 0.5, 0.2
    coords, vals = heatmap_to_coords(hm)
    np.testing.assert_allclose(coords[0, 0], [4.25, 3.75])  # toward the higher neighbour in x and y
    assert vals[0, 0] == pytest.approx(1.0)
    # DARK recovers a sub-pixel Gaussian centre that argmax + quarter offset cannot
    yy, xx = np.mgrid[0:32, 0:24]
    true = np.array([11.3, 17.6])
    g = np.exp(-((xx - true[0]) ** 2 + (yy - true[1]) ** 2) / 8.0)[None, None].astype(np.float32)
    plain, _ = heatmap_to_coords(g)
    dark, _ = heatmap_to_coords(g, dark=True)
    assert np.linalg.norm(dark[0, 0] - true) < 0.1 < np.linalg.norm(plain[0, 0] - true)


def test_flip_back_swaps_pairs_and_shifts():
    hm = torch.zeros(1, 3, 4, 6)
    hm[0, 0, 1, 1] = 1.0  # unpaired keypoint at x=1
    hm[0, 1, 2, 0] = 2.0  # left at x=0 -> becomes right, at x = 5 - 0 = 5, shifted -> clipped away
    hm[0, 2, 3, 2] = 3.0  # right at x=2 -> becomes left at x=3, shifted to 4
    out = flip_back(hm, [(1, 2)], shift=False)
    assert out[0, 0, 1, 4] == 1.0 and out[0, 2, 2, 5] == 2.0 and out[0, 1, 3, 3] == 3.0
    out = flip_back(hm, [(1, 2)], shift=True)
    assert out[0, 0, 1, 5] == 1.0 and out[0, 1, 3, 4] == 3.0
    assert out[0, :, :, 0].abs().sum() == 0  # column 0 takes the zeros... of the shifted copy
    assert out[0, 2].sum() == 0  # the right channel's only peak moved past the border


def test_flip_joints_swaps_pairs():
    j = np.array([[10.0, 5.0], [20.0, 6.0], [30.0, 7.0]])
    v = np.array([1.0, 1.0, 0.0])
    fj, fv = flip_joints(j, v, 100, [(1, 2)])
    np.testing.assert_allclose(fj, [[89, 5], [0, 0], [79, 6]])  # invisible keypoint zeroed
    assert fv.tolist() == [1.0, 0.0, 1.0]


def _roundtrip(ds: CocoKeypoints, gt_for) -> list[dict]:
    """Encode ground truth in each crop, decode, back-project: COCO results."""
    ids, kpts, scores, box_scores, areas = [], [], [], [], []
    for rec in ds.records:
        gt = gt_for(rec)
        if gt is None:
            continue
        joints = np.asarray(gt["keypoints"], dtype=float).reshape(-1, 3)
        trans = get_affine_transform(rec["center"], rec["scale"], 0.0, ds.input_size)
        target, _ = ds.codec.encode(affine_points(joints[:, :2], trans), joints[:, 2])
        coords, maxvals = ds.codec.decode(target[None], rec["center"][None], rec["scale"][None])
        ids.append(rec["image_id"])
        kpts.append(coords[0])
        scores.append(maxvals[0])
        box_scores.append(rec["score"])
        areas.append(rec["area"])
    return coco_results(ids, np.stack(kpts), np.stack(scores), box_scores, areas, COCO_KEYPOINTS.sigmas)


def test_codec_roundtrip_gt_boxes(coco_dir):
    ann = coco_dir / "person_keypoints_sample.json"
    ds = CocoKeypoints(ann, coco_dir / "images", boxes="gt")
    assert len(ds) == 12 and ds.skipped["without labelled keypoints"] == 2
    by_id = {a["id"]: a for a in json.loads(ann.read_text())["annotations"]}
    metrics = evaluate_coco(ann, _roundtrip(ds, lambda r: by_id[r["ann_id"]]))
    assert metrics["AP"] >= 0.95, metrics


def _iou(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_codec_roundtrip_detector_boxes(coco_dir):
    """Detected boxes (official AP_H_56 file): each box that overlaps a labelled person carries that
    person's keypoints through its own crop; rescoring + OKS-NMS remove the duplicates."""
    ann = coco_dir / "person_keypoints_sample.json"
    dets = coco_dir / "person_detection_results_AP_H_56_sample.json"
    ds = CocoKeypoints(ann, coco_dir / "images", boxes=dets, det_score_thr=0.0)
    assert len(ds) == 118
    anns = [a for a in json.loads(ann.read_text())["annotations"] if a["num_keypoints"] > 0]
    raw = json.loads(dets.read_text())

    def gt_for(rec):
        box = rec["box"]
        cands = [(a, _iou(box, a["bbox"])) for a in anns if a["image_id"] == rec["image_id"]]
        best = max(cands, key=lambda t: t[1], default=(None, 0.0))
        return best[0] if best[1] > 0.5 else None

    results = _roundtrip(ds, gt_for)
    metrics = evaluate_coco(ann, results)
    assert metrics["AP"] >= 0.95, metrics
    thr = CocoKeypoints(ann, coco_dir / "images", boxes=dets, det_score_thr=0.5)
    assert len(thr) == sum(d["score"] >= 0.5 for d in raw) and thr.skipped["score below 0.5"] == 118 - len(thr)
