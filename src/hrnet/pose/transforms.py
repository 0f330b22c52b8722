"""Top-down geometry: person box -> (center, scale) -> affine crop, and the training augmentations.

``scale`` follows the official HRNet / Simple Baselines convention: the crop's (width, height) in units
of 200 pixels (MPII annotations store person height / 200 the same way). A crop is a similarity
transform (uniform scale + rotation + shift) mapping the image region around ``center`` to the network
input; :func:`get_affine_transform` with ``inv=True`` maps the other way, which is how predictions go
back to image pixels. Augmentation draws from the global numpy generator, which the engine seeds per
sample (``SeededSamples``), so runs are reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from hrnet.io import IMAGENET_MEAN, IMAGENET_STD

PIXEL_STD = 200.0  # scale unit of the official code
IMAGENET_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
IMAGENET_STD = np.array(IMAGENET_STD, dtype=np.float32)


def box_to_center_scale(
    box_xywh: Sequence[float], aspect_ratio: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Box (x, y, w, h) -> center (2,) and scale (2,) in 200-px units, widened to ``aspect_ratio`` = w / h.

    The box grows along one side to the input's aspect ratio, then by ``padding`` (1.25 in the paper's
    recipe) so limbs at the box border stay inside the crop.
    """
    x, y, w, h = (float(v) for v in box_xywh[:4])
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float64)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w, h], dtype=np.float64) / PIXEL_STD * padding
    return center, scale


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, >=4) boxes x1, y1, x2, y2 -> x, y, w, h (extra columns dropped)."""
    b = np.asarray(boxes, dtype=np.float64)
    b = b.reshape(-1, b.shape[-1] if b.size else 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def get_affine_transform(
    center: Sequence[float], scale: Sequence[float], rot: float, output_size: Sequence[int], inv: bool = False
) -> np.ndarray:
    """2x3 matrix mapping the region (center, scale * 200 px, rotated by ``rot`` degrees) onto an
    ``output_size`` = (w, h) image; ``inv=True`` gives the map from output pixels back to the image.

    The width of the region fixes the zoom (the official code's convention); ``scale`` and
    ``output_size`` have the same aspect ratio when they come from :func:`box_to_center_scale`.
    """
    c = np.asarray(center, dtype=np.float64)
    src_w = float(np.asarray(scale, dtype=np.float64).reshape(-1)[0]) * PIXEL_STD
    if src_w <= 0:
        raise ValueError(f"crop scale must be positive, got {scale}")
    out_w, out_h = float(output_size[0]), float(output_size[1])
    zoom = out_w / src_w
    theta = np.deg2rad(rot)
    cos, sin = np.cos(theta), np.sin(theta)
    rot_m = np.array([[cos, -sin], [sin, cos]])  # the region is rotated by +rot in the image
    dst_c = np.array([out_w * 0.5, out_h * 0.5])
    if inv:
        lin = rot_m / zoom
        return np.concatenate([lin, (c - lin @ dst_c)[:, None]], axis=1)
    lin = zoom * rot_m.T
    return np.concatenate([lin, (dst_c - lin @ c)[:, None]], axis=1)


def affine_points(points: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to points (..., 2)."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ trans[:, :2].T + trans[:, 2]


def warp_image(
    image: np.ndarray, center: Sequence[float], scale: Sequence[float], rot: float, output_size: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``image`` (H, W, C) to ``output_size`` = (w, h) with bilinear sampling; returns (crop, matrix).

    Pixels outside the image are black, as in the official pipeline.
    """
    trans = get_affine_transform(center, scale, rot, output_size)
    crop = cv2.warpAffine(image, trans, (int(output_size[0]), int(output_size[1])), flags=cv2.INTER_LINEAR)
    return crop, trans


def normalize_image(crop_rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W) with ImageNet mean / std, the input the backbones expect."""
    x = crop_rgb.astype(np.float32) / 255.0
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def flip_joints(
    joints: np.ndarray, visible: np.ndarray, image_width: int, flip_pairs: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror keypoints (K, 2) of an image of ``image_width`` pixels and swap left/right pairs."""
    j = np.array(joints, dtype=np.float64, copy=True)
    v = np.array(visible, copy=True)
    j[:, 0] = image_width - j[:, 0] - 1
    for a, b in flip_pairs:
        j[[a, b]] = j[[b, a]]
        v[[a, b]] = v[[b, a]]
    return j * (v[:, None] > 0), v


def half_body_center_scale(
    joints: np.ndarray,
    visible: np.ndarray,
    upper_body: Sequence[int],
    lower_body: Sequence[int],
    aspect_ratio: float,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Center / scale of the upper or lower half of the visible keypoints (the half-body augmentation).

    Picks the upper half with probability 1/2 when it has more than two visible keypoints; returns None
    when the chosen half has fewer than two.
    """
    rand = rng.random() if rng is not None else np.random.rand()
    vis = np.asarray(visible) > 0
    upper = [i for i in upper_body if vis[i]]
    lower = [i for i in lower_body if vis[i]]
    if rand < 0.5 and len(upper) > 2:
        chosen = upper
    else:
        chosen = lower if len(lower) > 2 else upper
    if len(chosen) < 2:
        return None
    pts = np.asarray(joints, dtype=np.float64)[chosen]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    center = pts.mean(axis=0)
    w, h = hi - lo
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) / PIXEL_STD * 1.5
