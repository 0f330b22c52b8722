"""Hand PCK / AUC / EPE (mmpose's COCO-WholeBody-Hand protocol) against hand computations, and the
scoring path of ``hrnet pose eval`` on a tiny COCO-style hand file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from hrnet.pose.config import PoseConfig
from hrnet.pose.datasets import CocoKeypoints
from hrnet.pose.hand_metrics import auc, coco_hand_metrics, epe, hand_metrics, pck, pck_per_keypoint
from hrnet.pose.keypoints import load_keypoint_set
from hrnet.pose.train import score_predictions


def _two_hands() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two hands of three keypoints with known errors: hand 0 (box side 100) misses by 5, 25 and 40 px
    with its last keypoint invisible; hand 1 (box side 50) misses by 3 (a 3-4-5 offset), 10 and 2 px."""
    gt = np.zeros((2, 3, 2))
    pred = gt.copy()
    pred[0, :, 0] = [5.0, 25.0, 40.0]
    pred[1, 0] = [3.0, 4.0]  # 5 px
    pred[1, 1, 1] = 10.0
    pred[1, 2, 0] = 2.0
    visible = np.array([[2, 1, 0], [1, 2, 2]])
    sizes = np.array([100.0, 50.0])
    return pred, gt, visible, sizes


def test_pck_is_the_mean_of_per_keypoint_accuracies_over_visible_points():
    pred, gt, vis, sizes = _two_hands()
    # normalised errors: hand 0 -> 0.05, 0.25, (0.40 invisible); hand 1 -> 0.10, 0.20, 0.04
    per = pck_per_keypoint(pred, gt, vis, sizes, 0.2)
    # keypoint 0: both correct; keypoint 1: 0.25 no, 0.20 no (strictly below: the edge case); keypoint 2: only
    # hand 1 counts (hand 0's 40 px miss is invisible and ignored)
    assert np.allclose(per, [1.0, 0.0, 1.0])
    assert pck(pred, gt, vis, sizes, 0.2) == (1.0 + 0.0 + 1.0) / 3  # mean of keypoints, not pooled (3/5)
    # just above the edge the 10 px miss of hand 1 (0.20 of 50) is correct
    assert np.allclose(pck_per_keypoint(pred, gt, vis, sizes, 0.2 + 1e-9), [1.0, 0.5, 1.0])


def test_keypoint_visible_nowhere_is_left_out_and_no_visible_point_scores_zero():
    pred, gt, vis, sizes = _two_hands()
    vis = vis.copy()
    vis[:, 2] = 0
    per = pck_per_keypoint(pred, gt, vis, sizes, 0.2)
    assert np.isnan(per[2]) and pck(pred, gt, vis, sizes, 0.2) == 0.5
    none = np.zeros_like(vis)
    assert pck(pred, gt, none, sizes) == 0.0 and epe(pred, gt, none) == 0.0


def test_epe_pools_every_visible_keypoint():
    pred, gt, vis, _ = _two_hands()
    assert math.isclose(epe(pred, gt, vis), (5 + 25 + 5 + 10 + 2) / 5)


def test_auc_is_mmpose_left_riemann_sum_of_pck_at_30_px():
    pred, gt, vis, _ = _two_hands()
    # thresholds t_i = i / 20 of 30 px, i = 0..19: a keypoint counts when its error < 1.5 i px.
    # per-keypoint errors (visible): kp0 {5, 5}, kp1 {25, 10}, kp2 {2}
    expected = 0.0
    for i in range(20):
        lim = 1.5 * i
        kp0 = np.mean([5 < lim, 5 < lim])
        kp1 = np.mean([25 < lim, 10 < lim])
        kp2 = float(2 < lim)
        expected += (kp0 + kp1 + kp2) / 3 / 20
    assert math.isclose(auc(pred, gt, vis), expected)
    # a perfect prediction: every threshold but the first (0, where nothing is strictly below) -> 19 / 20
    assert math.isclose(auc(gt, gt, vis), 0.95)
    m = hand_metrics(pred, gt, vis, np.array([100.0, 50.0]))
    assert set(m) == {"PCK@0.2", "AUC", "EPE"}
    assert math.isclose(m["PCK@0.2"], 100 * 2 / 3) and math.isclose(m["AUC"], 100 * expected)


def _hand_file(root: Path) -> tuple[Path, list[np.ndarray]]:
    """Two generated images with one and two hands of 21 keypoints in a COCO-style file; returns the file
    and each annotation's (21, 3) keypoints in file order."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    images, anns, kps = [], [], []
    boxes = {1: [[20.0, 30.0, 60.0, 80.0]], 2: [[10.0, 10.0, 50.0, 40.0], [90.0, 60.0, 40.0, 60.0]]}
    aid = 1
    for image_id, image_boxes in boxes.items():
        name = f"img{image_id}.png"
        Image.fromarray(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)).save(root / "images" / name)
        images.append({"id": image_id, "file_name": name, "width": 160, "height": 160})
        for x, y, w, h in image_boxes:
            kp = np.zeros((21, 3))
            kp[:, 0] = x + rng.uniform(0, w, 21)
            kp[:, 1] = y + rng.uniform(0, h, 21)
            kp[:, 2] = 2
            kp[3, 2] = 0  # an unlabelled keypoint in every hand
            kp[3, :2] = 0
            anns.append(
                {
                    "id": aid,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
                    "num_keypoints": 20,
                }
            )
            kps.append(np.asarray(anns[-1]["keypoints"]).reshape(21, 3))
            aid += 1
    cats = [{"id": 1, "name": "hand", "keypoints": load_keypoint_set("hand").names, "skeleton": []}]
    file = root / "hands.json"
    file.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return file, kps


def test_score_predictions_of_a_hand_file_adds_pck_auc_epe(tmp_path):
    file, kps = _hand_file(tmp_path)
    ds = CocoKeypoints(file, tmp_path / "images", "hand", input_size=(256, 256))
    assert len(ds) == 3
    cfg = PoseConfig()
    cfg.data.keypoint_set = "hand"
    shift = np.array([3.0, 4.0])  # every prediction 5 px off
    preds = []
    for i, rec in enumerate(ds.records):
        preds.append(
            {
                "index": i,
                "image_id": rec["image_id"],
                "keypoints": rec["joints"] + shift,
                "keypoint_scores": np.full(21, 0.9),
                "score": 1.0,
                "area": rec["area"],
            }
        )
    metrics = score_predictions(cfg, ds, preds)
    assert {"AP", "AR", "PCK@0.2", "AUC", "EPE"} <= set(metrics)
    # 5 px is below 0.2 of every box side (>= 40 px): all correct; the unlabelled keypoint 3 is not counted
    assert metrics["PCK@0.2"] == 100.0 and math.isclose(metrics["EPE"], 5.0)
    # 5 px is below 1.5 i px from i = 4 on: 16 of the 20 thresholds
    assert math.isclose(metrics["AUC"], 100 * 16 / 20)
    # the normaliser is the annotated box's larger side: a miss of 11.9 px is within 0.2 x 60 = 12 for the
    # 40 x 60 hand (its width would give 8, the crop box's 59 px height 11.8), 0.2 x 80 for the 60 x 80 one,
    # not 0.2 x 50 = 10 for the 50 x 40 one
    big = [{**p, "keypoints": ds.records[p["index"]]["joints"] + [11.9, 0.0]} for p in preds]
    by_box = coco_hand_metrics(ds, big)
    sides = [max(a["bbox"][2:]) for a in ds.coco.data["annotations"]]
    assert sorted(sides) == [50.0, 60.0, 80.0]
    assert math.isclose(by_box["PCK@0.2"], 100.0 * 2 / 3)  # 2 of 3 hands, at every keypoint
    assert np.allclose(np.stack([r["joints"] for r in ds.records]), np.stack([k[:, :2] for k in kps]))


def test_detected_boxes_give_no_hand_metrics(tmp_path):
    file, _ = _hand_file(tmp_path)
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [20, 30, 60, 80], "score": 0.9}]))
    ds = CocoKeypoints(file, tmp_path / "images", "hand", input_size=(256, 256), boxes=dets)
    preds = [{"index": 0, "keypoints": np.zeros((21, 2))}]
    assert coco_hand_metrics(ds, preds) == {}
