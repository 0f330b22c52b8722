"""Pictures for people: skeletons drawn on images.

``draw_poses`` works on a copy with OpenCV, so a caller's array is never changed. (Pictures are
written by :func:`hrnet.io.save_image`; training curves by :func:`hrnet.engine.plots.plot_metrics`.)
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from hrnet.pose.wholebody import NUM_WHOLEBODY, WHOLEBODY_PARTS

DENSE = 30  # more keypoints than this (faces, whole bodies): sizes follow the person, not the image
# COCO-WholeBody points by part (RGB): body red, feet orange, face white, left hand green, right hand blue
PART_COLORS = {
    "body": (255, 0, 0),
    "foot": (255, 160, 0),
    "face": (255, 255, 255),
    "left_hand": (0, 220, 0),
    "right_hand": (0, 120, 255),
}

# one colour per limb of the COCO skeleton, cycled for other keypoint sets (RGB)
_PALETTE = (
    (255, 128, 0),
    (255, 153, 51),
    (255, 178, 102),
    (230, 230, 0),
    (255, 153, 255),
    (153, 204, 255),
    (255, 102, 255),
    (255, 51, 255),
    (102, 178, 255),
    (51, 153, 255),
    (255, 153, 153),
    (255, 102, 102),
    (255, 51, 51),
    (153, 255, 153),
    (102, 255, 102),
    (51, 255, 51),
    (0, 255, 0),
    (0, 0, 255),
    (255, 0, 0),
)


def _as_image(image_rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(image_rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"draw_poses: expected an RGB image (H, W, 3), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"draw_poses: expected a uint8 image, got {arr.dtype}")
    return np.ascontiguousarray(arr[..., :3]).copy()


def draw_poses(
    image_rgb: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    skeleton: Sequence[Sequence[int]],
    boxes: np.ndarray | None = None,
    kpt_thr: float = 0.3,
    colors: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """Draw N people on a copy of ``image_rgb``: keypoints (N, K, 2) in (x, y), scores (N, K).

    ``skeleton`` lists 0-based joint pairs; a limb or joint is drawn only when its scores reach
    ``kpt_thr``. ``boxes`` (N, 4+) are xyxy (a fifth column, a score, is printed). ``colors`` gives one RGB
    colour per limb (cycled). Line widths follow the image size so small and large pictures both read.
    """
    canvas = _as_image(image_rgb)
    kpts = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    if kpts.size == 0 and kpts.ndim != 3:  # "no people" given as [] or np.zeros(0)
        kpts = kpts.reshape(0, 0, 2)
    if sc.size == 0 and kpts.shape[0] == 0:
        sc = sc.reshape(kpts.shape[:2])
    if kpts.ndim != 3 or kpts.shape[2] != 2:
        raise ValueError(f"draw_poses: keypoints must be (N, K, 2), got shape {kpts.shape}")
    if sc.shape != kpts.shape[:2]:
        raise ValueError(f"draw_poses: scores must be (N, K) = {kpts.shape[:2]}, got {sc.shape}")
    n, k = kpts.shape[:2]
    for a, b in skeleton:
        if not (0 <= a < k and 0 <= b < k):
            raise ValueError(f"draw_poses: skeleton pair ({a}, {b}) is out of range for {k} keypoints")
    palette = [tuple(int(c) for c in col) for col in (colors or _PALETTE)]
    h, w = canvas.shape[:2]
    thick = max(1, int(round(min(h, w) / 160)))
    radius = max(2, thick + 1)
    if boxes is not None:
        bx = np.asarray(boxes, dtype=np.float64)
        bx = bx.reshape(0, 4) if bx.size == 0 else bx
        if bx.ndim != 2 or bx.shape[1] < 4:
            raise ValueError(f"draw_poses: boxes must be (N, 4) xyxy or (N, 5) with scores, got shape {bx.shape}")
        for row in bx:
            x0, y0, x1, y1 = (int(round(v)) for v in row[:4])
            cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 255, 0), thick)
            if row.shape[0] > 4:
                cv2.putText(
                    canvas,
                    f"{row[4]:.2f}",
                    (x0, max(10, y0 - 3)),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.35 * thick,
                    (0, 255, 0),
                    1,
                    cv2.LINE_AA,
                )
    point_colors = [(255, 0, 0)] * k
    if k == NUM_WHOLEBODY:
        for part, (lo, hi) in WHOLEBODY_PARTS.items():
            point_colors[lo:hi] = [PART_COLORS[part]] * (hi - lo)
    for p in range(n):
        ok = np.isfinite(kpts[p]).all(1) & (sc[p] >= kpt_thr)
        line, dot = thick + 1, radius
        if k > DENSE and ok.any():  # 68-98 landmarks on a small face: thin lines, small dots, or they merge
            extent = float(np.ptp(kpts[p][ok], axis=0).max())
            line, dot = max(1, int(round(extent / 200))), max(1, int(round(extent / 120)))
        for li, (a, b) in enumerate(skeleton):
            if ok[a] and ok[b]:
                pa = (int(round(kpts[p, a, 0])), int(round(kpts[p, a, 1])))
                pb = (int(round(kpts[p, b, 0])), int(round(kpts[p, b, 1])))
                cv2.line(canvas, pa, pb, palette[li % len(palette)], line, cv2.LINE_AA)
        for j in range(k):
            if ok[j]:
                c = (int(round(kpts[p, j, 0])), int(round(kpts[p, j, 1])))
                if k <= DENSE:
                    cv2.circle(canvas, c, dot, (255, 255, 255), -1, cv2.LINE_AA)
                small = k == NUM_WHOLEBODY and j >= WHOLEBODY_PARTS["face"][0]  # face and hands: fine detail
                cv2.circle(canvas, c, 1 if small else max(1, dot - (k <= DENSE)), point_colors[j], -1, cv2.LINE_AA)
    return canvas
