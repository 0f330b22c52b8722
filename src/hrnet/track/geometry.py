"""Pairwise similarities a tracker matches by: box IoU and keypoint OKS, plus boxes grown from keypoints.

They take plain arrays (no task's types), so detection, pose and a user's own detector share them.
OKS follows the COCO definition: ``mean_k exp(-d_k^2 / (2 s^2 (2 sigma_k)^2))`` over the keypoints seen
in both poses, with ``s^2`` the mean of the two boxes' areas (a box area, not a segment area, because
tracked people have no segment).
"""

from __future__ import annotations

import numpy as np


def as_boxes(boxes: object, what: str = "boxes") -> np.ndarray:
    """(N, 4) float64 x1, y1, x2, y2 from anything array-like with at least four columns (extra columns,
    such as a score, are left out); a wrong shape or a NaN is a ``ValueError`` saying which."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim != 2 or arr.shape[1] < 4:
        raise ValueError(f"{what} must be (N, 4) x1, y1, x2, y2, got shape {arr.shape}")
    arr = arr[:, :4]
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} hold NaN or infinite coordinates")
    return arr


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas of (N, 4) xyxy boxes (0 for an inverted box)."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of xyxy boxes ``a`` (N, 4) and ``b`` (M, 4)."""
    a, b = as_boxes(a), as_boxes(b)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def oks_matrix(
    kpts_a: np.ndarray,
    scores_a: np.ndarray,
    areas_a: np.ndarray,
    kpts_b: np.ndarray,
    scores_b: np.ndarray,
    areas_b: np.ndarray,
    sigmas: np.ndarray,
    vis_thr: float = 0.3,
) -> np.ndarray:
    """(N, M) object keypoint similarity of poses ``a`` (N, K, 2) and ``b`` (M, K, 2).

    Only keypoints scored above ``vis_thr`` in both poses count; a pair with none in common has OKS 0, so
    it can match by box IoU only.
    """
    a = np.asarray(kpts_a, dtype=np.float64)
    b = np.asarray(kpts_b, dtype=np.float64)
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    if a.shape[1:] != b.shape[1:] or a.shape[1] != len(var):
        raise ValueError(f"OKS: poses {a.shape[1:]} and {b.shape[1:]} with {len(var)} sigmas do not fit together")
    area = (np.asarray(areas_a, dtype=np.float64)[:, None] + np.asarray(areas_b, dtype=np.float64)[None, :]) / 2
    dist2 = ((a[:, None] - b[None, :]) ** 2).sum(-1)  # (N, M, K)
    e = np.exp(-dist2 / var / (area[..., None] + np.spacing(1)) / 2)
    seen = (np.asarray(scores_a)[:, None, :] > vis_thr) & (np.asarray(scores_b)[None, :, :] > vis_thr)
    count = seen.sum(-1)
    return np.where(count > 0, (e * seen).sum(-1) / np.maximum(count, 1), 0.0)


def keypoint_boxes(
    keypoints: np.ndarray, scores: np.ndarray, fallback: np.ndarray, vis_thr: float = 0.3, pad: float = 1.2
) -> np.ndarray:
    """(N, 4) boxes around each pose's keypoints scored above ``vis_thr``, grown by ``pad`` about their
    centre: where the person is in the next frame, when the detector is skipped. A pose with fewer than two
    such keypoints keeps its ``fallback`` box (its last detection)."""
    kpts = np.asarray(keypoints, dtype=np.float64)
    out = as_boxes(fallback).copy()
    for i in range(len(kpts)):
        seen = kpts[i][np.asarray(scores[i]) > vis_thr]
        if len(seen) < 2:
            continue
        lo, hi = seen.min(0), seen.max(0)
        centre, half = (lo + hi) / 2, (hi - lo) / 2 * pad
        half = np.maximum(half, 2.0)  # a pose seen edge-on still gets a box the crop can use
        out[i] = [*(centre - half), *(centre + half)]
    return out
