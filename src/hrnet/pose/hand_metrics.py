"""Hand keypoint metrics as mmpose scores COCO-WholeBody-Hand: PCK@0.2 of the box size, AUC and EPE.

The published hand numbers (the zoo's ``pose_hrnetv2_w18.coco_wholebody_hand_256x256``: PCK@0.2 0.813,
AUC 0.840, EPE 4.39 px) come from mmpose's top-down hand evaluation, not from COCO OKS; reproducing them
needs the same definitions (mmpose ``evaluation/functional/keypoint_eval.py``), which are:

- only ground-truth keypoints with visibility ``v > 0`` count (mmpose's ``keypoints_visible = min(1, v)``);
- **PCK@thr**: a keypoint is correct when ``distance / normaliser < thr`` (strictly below). The normaliser
  is the larger side of the ground-truth hand box (``max(w, h)`` of the annotation's ``bbox``, unclipped).
  The accuracy is taken **per keypoint** over the hands where it is visible, then averaged over the
  keypoints that are visible at least once (a mean of 21 accuracies, not a pooled count);
- **AUC**: the mean of that PCK at the thresholds ``i / 20`` for ``i = 0 .. 19`` with a fixed normaliser of
  30 px (distances below 0, 1.5, ..., 28.5 px). The first term (threshold 0) is always 0, so a perfect
  prediction scores 0.95, not 1: that is mmpose's definition and the published AUC's;
- **EPE**: the mean pixel distance over all visible keypoints of all hands (pooled).

PCK and AUC are returned in percent (as the zoo prints them; mmpose logs fractions), EPE in pixels.
Distances are computed in float64; mmpose stores them as float32, which can only matter for a distance
within float32 rounding of a threshold.
"""

from __future__ import annotations

import logging

import numpy as np

from hrnet.pose.datasets import CocoKeypoints

log = logging.getLogger("hrnet.pose")

PCK_THR = 0.2  # mmpose's PCKAccuracy(thr=0.2) in the COCO-WholeBody-Hand configs
AUC_NORM_PX = 30.0  # mmpose's AUC(norm_factor=30)
AUC_NUM_THRS = 20  # mmpose's AUC(num_thrs=20)


def _distances(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, K) pixel distances of predictions and ground truth, both (N, K, 2)."""
    return np.linalg.norm(np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64), axis=-1)


def pck_per_keypoint(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, norm_sizes: np.ndarray, thr: float = PCK_THR
) -> np.ndarray:
    """(K,) fraction of hands whose keypoint k lies strictly closer than ``thr`` x that hand's normaliser;
    NaN for a keypoint visible in no hand (mmpose's -1, left out of the mean).

    A hand whose normaliser is not positive is left out entirely, as mmpose masks it."""
    sizes = np.asarray(norm_sizes, dtype=np.float64).reshape(-1, 1)
    counted = (np.asarray(visible) > 0) & (sizes > 0)
    normed = _distances(pred, gt) / np.where(sizes > 0, sizes, 1.0)
    hits = ((normed < thr) & counted).sum(axis=0).astype(np.float64)
    count = counted.sum(axis=0)
    out = np.full(count.shape, np.nan)
    np.divide(hits, count, out=out, where=count > 0)
    return out


def pck(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, norm_sizes: np.ndarray, thr: float = PCK_THR) -> float:
    """mmpose's averaged PCK: the mean of :func:`pck_per_keypoint` over keypoints visible at least once
    (0 when none is), as a fraction."""
    per = pck_per_keypoint(pred, gt, visible, norm_sizes, thr)
    valid = per[~np.isnan(per)]
    return float(valid.mean()) if valid.size else 0.0


def auc(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    norm_px: float = AUC_NORM_PX,
    num_thrs: int = AUC_NUM_THRS,
) -> float:
    """mmpose's ``keypoint_auc``: the mean of :func:`pck` with the fixed normaliser ``norm_px`` at the
    thresholds ``0, 1/num_thrs, ..., (num_thrs - 1)/num_thrs`` (a left Riemann sum; see the module notes)."""
    sizes = np.full(len(np.asarray(pred)), float(norm_px))
    return float(sum(pck(pred, gt, visible, sizes, i / num_thrs) for i in range(num_thrs)) / num_thrs)


def epe(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray) -> float:
    """Mean end-point error in pixels over every visible keypoint of every hand (0 when none is visible)."""
    mask = np.asarray(visible) > 0
    d = _distances(pred, gt)[mask]
    return float(d.mean()) if d.size else 0.0


def hand_metrics(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, box_sizes: np.ndarray) -> dict[str, float]:
    """``PCK@0.2`` and ``AUC`` in percent and ``EPE`` in pixels of hands (N, K, 2), their visibility (N, K)
    and the larger side of each ground-truth box (N,): mmpose's COCO-WholeBody-Hand evaluation."""
    return {
        f"PCK@{PCK_THR:g}": 100.0 * pck(pred, gt, visible, box_sizes, PCK_THR),
        "AUC": 100.0 * auc(pred, gt, visible),
        "EPE": epe(pred, gt, visible),
    }


def coco_hand_metrics(dataset: CocoKeypoints, preds: list[dict]) -> dict[str, float]:
    """:func:`hand_metrics` of per-crop predictions (``index``, ``keypoints``) on a COCO-style hand file.

    Each crop is compared with its own annotation; the normaliser is ``max(w, h)`` of the annotation's
    ``bbox`` as written in the file (the crop box is clipped to the image; mmpose normalises by the
    annotated box). With detected boxes (``test.boxes`` a file) a crop has no annotation, so there is
    nothing to compare with: the result is empty and the COCO AP stays the only score."""
    records = [dataset.records[p["index"]] for p in preds]
    if any(r["ann_id"] < 0 for r in records):
        log.info("hand PCK / AUC / EPE need ground-truth hand boxes (test.boxes: gt); reporting COCO AP only")
        return {}
    boxes = {a["id"]: a["bbox"] for a in dataset.coco.data["annotations"]}
    sizes = np.array([max(float(boxes[r["ann_id"]][2]), float(boxes[r["ann_id"]][3])) for r in records])
    pred = np.stack([np.asarray(p["keypoints"], dtype=np.float64)[:, :2] for p in preds])
    gt = np.stack([r["joints"] for r in records])
    vis = np.stack([r["visible"] for r in records])
    return hand_metrics(pred, gt, vis, sizes)
