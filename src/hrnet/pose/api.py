"""Python API: ``PoseEstimator(model_or_name, weights=...)(image, boxes)`` -> :class:`PoseResult`.

Boxes are (N, 4) or (N, 5) **x1, y1, x2, y2[, score]** in image pixels, like torchvision detectors.
Without boxes, a ``detector`` (any callable image_rgb -> (N, 5) xyxy + score, e.g.
``hrnet.pose.detector.PersonDetector``) supplies them; without either, the whole image is one person.
The crops, flip test and decoding are those of evaluation (:func:`hrnet.pose.inference.predict_crops`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hrnet import atomic
from hrnet.io import as_rgb_array
from hrnet.pose.codec import HeatmapCodec
from hrnet.pose.inference import crop_people, predict_crops
from hrnet.pose.keypoints import COCO_KEYPOINTS, KeypointSet, load_keypoint_set


def write_json(obj: Any, path: str | Path) -> Path:
    """Write JSON atomically (temp file + os.replace), creating the folder."""
    return atomic.write_json(path, obj, indent=1)


def as_xyxy_boxes(boxes: Any) -> np.ndarray:
    """Validate boxes -> float (N, 5) x1, y1, x2, y2, score (score 1 when not given)."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 5))
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] not in (4, 5):
        raise ValueError(f"boxes must be (N, 4) or (N, 5) x1, y1, x2, y2[, score], got shape {b.shape}")
    if b.shape[1] == 4:
        b = np.concatenate([b, np.ones((len(b), 1))], axis=1)
    bad = np.nonzero((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))[0]
    if len(bad):
        raise ValueError(f"boxes must be x1, y1, x2, y2 with x2 > x1 and y2 > y1; box {int(bad[0])} is "
                         f"{b[bad[0], :4].tolist()}")
    return b


@dataclass
class PoseResult:
    """Poses of one image: ``keypoints`` (N, K, 2) as (x, y) pixels, ``scores`` (N, K), ``boxes`` (N, 4)
    x1, y1, x2, y2 and ``box_scores`` (N,)."""

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    keypoint_set: KeypointSet = field(default_factory=lambda: COCO_KEYPOINTS)

    def __len__(self) -> int:
        return len(self.keypoints)

    def to_json(self, image_id: int | str = 0, category_id: int = 1) -> list[dict]:
        """COCO keypoint results: one dict per person with ``keypoints`` [x, y, score]*K, ``score``
        (box score x mean keypoint score above 0.2, as in evaluation) and ``bbox`` [x, y, w, h]."""
        from hrnet.pose.evaluation import rescore

        person = rescore(self.scores, self.box_scores) if len(self) else np.zeros(0)
        out = []
        for i in range(len(self)):
            kp = np.concatenate([self.keypoints[i], self.scores[i][:, None]], axis=1).reshape(-1)
            x1, y1, x2, y2 = self.boxes[i]
            out.append({"image_id": image_id, "category_id": category_id,
                        "keypoints": [round(float(v), 3) for v in kp], "score": float(person[i]),
                        "bbox": [round(float(v), 2) for v in (x1, y1, x2 - x1, y2 - y1)]})
        return out

    def plot(self, image: str | Path | np.ndarray, kpt_thr: float = 0.3, show_boxes: bool = True) -> np.ndarray:
        """RGB uint8 copy of ``image`` with the skeletons drawn (``hrnet.pose.visualize.draw_poses``)."""
        from hrnet.pose.visualize import draw_poses

        rgb = as_rgb_array(image)
        return draw_poses(rgb, self.keypoints, self.scores, self.keypoint_set.skeleton,
                          boxes=self.boxes if show_boxes else None, kpt_thr=kpt_thr)


class PoseEstimator:
    """Top-down pose estimation with an HRNet: ``PoseEstimator('pose_hrnet_w32', weights='w.safetensors')``.

    ``model_or_name``: a zoo name (built with one heatmap per keypoint of ``keypoint_set``) or a module.
    ``input_size`` is (w, h) of the crop; ``flip_test`` and ``dark`` as in evaluation.
    """

    def __init__(self, model_or_name: str | nn.Module, weights: str | Path | None = None,
                 keypoint_set: KeypointSet | str = COCO_KEYPOINTS, input_size: tuple[int, int] = (192, 256),
                 device: str = "cpu", flip_test: bool = True, dark: bool = False,
                 detector: Callable[[np.ndarray], np.ndarray] | None = None, batch_size: int = 32) -> None:
        self.keypoint_set = load_keypoint_set(keypoint_set)
        if isinstance(model_or_name, str):
            from hrnet.models.zoo import create_model

            model = create_model(model_or_name, num_joints=self.keypoint_set.num_keypoints)
        else:
            model = model_or_name
        if weights is not None:
            from hrnet.pose.model import load_pose_weights

            load_pose_weights(model, weights, strict=True)
        k = getattr(model, "num_joints", self.keypoint_set.num_keypoints)
        if k != self.keypoint_set.num_keypoints:
            raise ValueError(f"model predicts {k} keypoints but keypoint set {self.keypoint_set.name!r} has "
                             f"{self.keypoint_set.num_keypoints}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.codec = HeatmapCodec(input_size)
        self.flip_test = flip_test
        self.dark = dark
        self.detector = detector
        self.batch_size = batch_size

    def __call__(self, image: str | Path | np.ndarray, boxes: Any = None,
                 detector: Callable[[np.ndarray], np.ndarray] | None = None) -> PoseResult:
        """Poses in ``image`` (path or RGB array; grayscale / RGBA converted) for ``boxes`` (xyxy[, score])."""
        rgb = as_rgb_array(image)
        detector = detector or self.detector
        if boxes is None:
            if detector is not None:
                boxes = detector(rgb)
            else:
                h, w = rgb.shape[:2]
                boxes = [[0, 0, w - 1, h - 1, 1.0]]
        b = as_xyxy_boxes(boxes)
        k = self.keypoint_set.num_keypoints
        kpts, scores = np.zeros((0, k, 2)), np.zeros((0, k))
        for start in range(0, len(b), self.batch_size):
            chunk = b[start:start + self.batch_size]
            crops, centers, scales = crop_people(rgb, chunk[:, :4], self.codec.input_size)
            kp, sc = predict_crops(self.model, crops, centers, scales, self.codec, self.keypoint_set.flip_pairs,
                                   flip_test=self.flip_test, dark=self.dark)
            kpts, scores = np.concatenate([kpts, kp]), np.concatenate([scores, sc])
        return PoseResult(kpts, scores, b[:, :4].copy(), b[:, 4].copy(), self.keypoint_set)
