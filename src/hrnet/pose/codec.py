"""Heatmap codec: keypoints <-> Gaussian heatmaps, and heatmaps -> keypoints in image pixels.

Encoding puts an unnormalised Gaussian (sigma 2 heatmap pixels, cut at 3 sigma) at each keypoint's
rounded heatmap location, as the official code does; keypoints off the heatmap get weight 0. Decoding
takes the argmax and moves it a quarter pixel toward the higher neighbour (the standard HRNet rule) or,
with ``dark=True``, refines it with the second-order Taylor expansion of the log-heatmap (DARK, Zhang
et al. 2020). Both then map back to the image through the inverse crop transform.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from hrnet.labels import flip_permutation
from hrnet.pose.transforms import affine_points, get_affine_transform


class HeatmapCodec:
    """Targets for training and decoding for testing; sizes are (w, h) like the official configs.

    ``dark`` picks the decoding rule (DARK refinement instead of the quarter-pixel step) once, where the
    codec is made from the test settings, so every decode of one estimator or evaluation agrees.
    """

    def __init__(
        self,
        input_size: Sequence[int] = (192, 256),
        heatmap_size: Sequence[int] | None = None,
        sigma: float = 2.0,
        dark: bool = False,
    ) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        if heatmap_size is None:
            heatmap_size = (self.input_size[0] // 4, self.input_size[1] // 4)
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        if min(self.input_size + self.heatmap_size) <= 0 or sigma <= 0:
            raise ValueError(f"bad codec sizes {self.input_size}/{self.heatmap_size} or sigma {sigma}")
        self.sigma = float(sigma)
        self.dark = bool(dark)

    @property
    def stride(self) -> np.ndarray:
        """Input pixels per heatmap pixel along (x, y)."""
        return np.array(self.input_size, dtype=np.float64) / np.array(self.heatmap_size, dtype=np.float64)

    def encode(
        self, keypoints: np.ndarray, visible: np.ndarray, joint_weights: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (K, 2) in input-crop pixels and visibility (K,) -> target (K, h, w), weight (K, 1).

        A keypoint whose 3-sigma window misses the heatmap, or that is not labelled, gets weight 0.
        """
        kpts = np.asarray(keypoints, dtype=np.float64)
        vis = np.asarray(visible, dtype=np.float64).reshape(-1)
        k = kpts.shape[0]
        w, h = self.heatmap_size
        radius = self.sigma * 3
        target = np.zeros((k, h, w), dtype=np.float32)
        weight = (vis > 0).astype(np.float32)
        xs = np.arange(w, dtype=np.float64)
        ys = np.arange(h, dtype=np.float64)
        mu = np.floor(kpts / self.stride + 0.5)
        for j in range(k):
            if weight[j] == 0:
                continue
            mx, my = mu[j]
            if mx - radius >= w or my - radius >= h or mx + radius + 1 < 0 or my + radius + 1 < 0:
                weight[j] = 0
                continue
            gx = np.exp(-((xs - mx) ** 2) / (2 * self.sigma**2)) * (np.abs(xs - mx) <= radius)
            gy = np.exp(-((ys - my) ** 2) / (2 * self.sigma**2)) * (np.abs(ys - my) <= radius)
            target[j] = np.outer(gy, gx)
        if joint_weights is not None:
            weight = weight * np.asarray(joint_weights, dtype=np.float32)
        return target, weight[:, None]

    def with_dark(self, dark: bool) -> HeatmapCodec:
        """The same codec decoding with (or without) DARK: a dataset's codec turned into a test-time one."""
        return HeatmapCodec(self.input_size, self.heatmap_size, self.sigma, dark=dark)

    def decode(
        self, heatmaps: np.ndarray | torch.Tensor, centers: np.ndarray, scales: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps (N, K, h, w) + crop centers / scales (N, 2) -> coords (N, K, 2) in image pixels, maxvals (N, K)."""
        hm = heatmaps.detach().float().cpu().numpy() if isinstance(heatmaps, torch.Tensor) else np.asarray(heatmaps)
        hm = hm.astype(np.float32, copy=False)
        coords, maxvals = heatmap_to_coords(hm, dark=self.dark, sigma=self.sigma)
        centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
        scales = np.asarray(scales, dtype=np.float64).reshape(-1, 2)
        out = np.zeros_like(coords)
        for i in range(coords.shape[0]):
            inv = get_affine_transform(centers[i], scales[i], 0.0, self.heatmap_size, inv=True)
            out[i] = affine_points(coords[i], inv)
        return out, maxvals


def argmax_coords(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer argmax (x, y) of each heatmap (N, K, h, w) and its value; (0, 0) where the max is <= 0."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = flat.argmax(axis=2)
    maxvals = flat.max(axis=2)
    coords = np.stack([idx % w, idx // w], axis=2).astype(np.float64)
    coords *= (maxvals > 0)[..., None]
    return coords, maxvals


def heatmap_to_coords(heatmaps: np.ndarray, dark: bool = False, sigma: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel keypoint locations in heatmap pixels (N, K, 2) and their scores (N, K)."""
    coords, maxvals = argmax_coords(heatmaps)
    n, k, h, w = heatmaps.shape
    if dark:
        return _dark_refine(heatmaps, coords, sigma), maxvals
    for i in range(n):
        for j in range(k):
            px, py = int(coords[i, j, 0]), int(coords[i, j, 1])
            hm = heatmaps[i, j]
            if 0 < px < w - 1 and 0 < py < h - 1:
                diff = np.array([hm[py, px + 1] - hm[py, px - 1], hm[py + 1, px] - hm[py - 1, px]])
                coords[i, j] += np.sign(diff) * 0.25
    return coords, maxvals


def _dark_refine(heatmaps: np.ndarray, coords: np.ndarray, sigma: float) -> np.ndarray:
    """DARK: smooth each heatmap (keeping its peak), take logs, and step by -H^{-1} g at the argmax."""
    n, k, h, w = heatmaps.shape
    ksize = int(2 * round(3 * sigma) + 1) | 1
    out = coords.copy()
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j].astype(np.float64)
            peak = hm.max()
            if peak <= 0:
                continue
            blur = cv2.GaussianBlur(hm, (ksize, ksize), 0)
            blur *= peak / max(blur.max(), 1e-12)
            lg = np.log(np.maximum(blur, 1e-10))
            px, py = int(coords[i, j, 0]), int(coords[i, j, 1])
            if not (1 < px < w - 2 and 1 < py < h - 2):
                continue
            dx = 0.5 * (lg[py, px + 1] - lg[py, px - 1])
            dy = 0.5 * (lg[py + 1, px] - lg[py - 1, px])
            dxx = 0.25 * (lg[py, px + 2] - 2 * lg[py, px] + lg[py, px - 2])
            dyy = 0.25 * (lg[py + 2, px] - 2 * lg[py, px] + lg[py - 2, px])
            dxy = 0.25 * (lg[py + 1, px + 1] - lg[py - 1, px + 1] - lg[py + 1, px - 1] + lg[py - 1, px - 1])
            hess = np.array([[dxx, dxy], [dxy, dyy]])
            if abs(np.linalg.det(hess)) < 1e-12:
                continue
            step = -np.linalg.solve(hess, np.array([dx, dy]))
            if np.all(np.abs(step) < 1.5):  # a far step means a flat or odd peak: keep the argmax
                out[i, j] += step
    return out


def flip_back(heatmaps: torch.Tensor, flip_pairs: Sequence[tuple[int, int]], shift: bool = True) -> torch.Tensor:
    """Heatmaps predicted on a mirrored crop -> heatmaps of the original crop.

    Mirrors along x, swaps left/right channels, and (``shift``) moves the result one pixel to the right:
    mirroring maps pixel x to w - 1 - x, but the crop's flip is about its geometric centre, so without the
    shift the flipped prediction sits one heatmap pixel off (the official code's fix).
    """
    out = heatmaps.flip(-1)[:, flip_permutation(heatmaps.shape[1], flip_pairs)]
    if shift:
        out = out.clone()
        out[..., 1:] = out[..., :-1].clone()
    return out
