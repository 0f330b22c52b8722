"""Top-down pose datasets: COCO keypoints (GT or detected person boxes) and MPII (official json).

Each item is one person crop: ``image`` (3, H, W) float, ImageNet-normalised; ``target`` (K, h, w)
Gaussian heatmaps and ``target_weight`` (K, 1); ``meta`` with what evaluation needs to put predictions
back in the image (``center``, ``scale``, ``image_id``, box ``score``, ``area``, ``index``).

Annotations are validated when the dataset is built, and errors name the file and the annotation id.
Person boxes that cannot give a crop (zero area, outside the image, no labelled keypoint for training,
crowd regions) are skipped, counted in :attr:`skipped` and logged once, as the official code skips them.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from hrnet.io import read_image
from hrnet.pose.codec import HeatmapCodec
from hrnet.pose.keypoints import COCO_KEYPOINTS, MPII_KEYPOINTS, KeypointSet, load_keypoint_set
from hrnet.pose.transforms import (
    affine_points,
    box_to_center_scale,
    flip_joints,
    half_body_center_scale,
    normalize_image,
    warp_image,
)

log = logging.getLogger("hrnet.pose")


@dataclass
class PoseAugment:
    """Training augmentation of the official recipe (rotation, scale, flip, half body)."""

    rot_factor: float = 45.0  # rotation = clip(N(0, rot_factor), -2 rot_factor, 2 rot_factor) degrees
    rot_prob: float = 0.6
    scale_factor: float = 0.35  # scale x clip(N(1, scale_factor), 1 - f, 1 + f): 0.65 to 1.35
    flip: bool = True
    half_body_prob: float = 0.3
    num_joints_half_body: int = 8


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"{path}: {what} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: {what} is not valid JSON ({err})") from err


class TopDownDataset(Dataset):
    """Shared crop / augment / encode logic; subclasses fill :attr:`records`."""

    def __init__(self, keypoint_set: KeypointSet | str, input_size: tuple[int, int], heatmap_size=None,
                 sigma: float = 2.0, train: bool = False, augment: PoseAugment | None = None,
                 use_joint_weights: bool = False) -> None:
        self.keypoint_set = load_keypoint_set(keypoint_set)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.aspect_ratio = self.input_size[0] / self.input_size[1]
        self.codec = HeatmapCodec(self.input_size, heatmap_size, sigma)
        self.train = train
        self.augment = augment if augment is not None else PoseAugment()
        self.use_joint_weights = use_joint_weights
        self.records: list[dict[str, Any]] = []
        self.skipped: Counter[str] = Counter()

    def _report_skips(self, source: str) -> None:
        if self.skipped:
            detail = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
            log.warning("%s: skipped %d person boxes (%s); %d left", source, sum(self.skipped.values()), detail,
                        len(self.records))

    def __len__(self) -> int:
        return len(self.records)

    def _augment(self, image: np.ndarray, joints: np.ndarray, visible: np.ndarray, center: np.ndarray,
                 scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        aug, ks = self.augment, self.keypoint_set
        rot = 0.0
        if aug.half_body_prob > 0 and (visible > 0).sum() > aug.num_joints_half_body \
                and np.random.rand() < aug.half_body_prob:
            half = half_body_center_scale(joints, visible, ks.upper_body, ks.lower_body, self.aspect_ratio)
            if half is not None:
                center, scale = half
        sf, rf = aug.scale_factor, aug.rot_factor
        scale = scale * np.clip(np.random.randn() * sf + 1, 1 - sf, 1 + sf)
        if np.random.rand() <= aug.rot_prob:
            rot = float(np.clip(np.random.randn() * rf, -rf * 2, rf * 2))
        if aug.flip and np.random.rand() <= 0.5:
            image = image[:, ::-1]
            joints, visible = flip_joints(joints, visible, image.shape[1], ks.flip_pairs)
            center = center.copy()
            center[0] = image.shape[1] - center[0] - 1
        return image, joints, visible, center, scale, rot

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        image = read_image(rec["file"])
        joints = rec["joints"].copy()
        visible = rec["visible"].copy()
        center, scale = rec["center"].copy(), rec["scale"].copy()
        rot = 0.0
        if self.train:
            image, joints, visible, center, scale, rot = self._augment(image, joints, visible, center, scale)
        crop, trans = warp_image(np.ascontiguousarray(image), center, scale, rot, self.input_size)
        joints_in = affine_points(joints, trans)
        weights = self.keypoint_set.weights() if self.use_joint_weights else None
        target, target_weight = self.codec.encode(joints_in, visible, weights)
        meta = {
            "index": index,
            "image_id": int(rec["image_id"]),
            "ann_id": int(rec.get("ann_id", -1)),
            "center": center.astype(np.float64),
            "scale": scale.astype(np.float64),
            "rotation": float(rot),
            "score": float(rec["score"]),
            "area": float(rec["area"]),
        }
        return {"image": torch.from_numpy(normalize_image(crop)), "target": torch.from_numpy(target),
                "target_weight": torch.from_numpy(target_weight), "meta": meta}


def _image_size(entry: dict, file: Path) -> tuple[int, int]:
    """(width, height) from the annotation, or from the image header when the annotation lacks it."""
    if "width" in entry and "height" in entry:
        return int(entry["width"]), int(entry["height"])
    try:
        with Image.open(file) as im:
            return im.size
    except (OSError, ValueError) as err:
        raise ValueError(f"{file}: cannot read image size ({err})") from err


class CocoKeypoints(TopDownDataset):
    """COCO-format keypoint annotations; person boxes from the ground truth or a detections file.

    ``boxes="gt"`` uses the annotated boxes (clipped to the image, as the official loader does);
    otherwise ``boxes`` is a COCO results file of person detections
    (``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``) filtered by ``det_score_thr``.
    Training skips people without labelled keypoints.
    """

    def __init__(self, ann_file: str | Path, image_dir: str | Path, keypoint_set: KeypointSet | str = COCO_KEYPOINTS,
                 input_size: tuple[int, int] = (192, 256), train: bool = False, boxes: str | Path = "gt",
                 det_score_thr: float = 0.0, heatmap_size=None, sigma: float = 2.0,
                 augment: PoseAugment | None = None, use_joint_weights: bool = False, padding: float = 1.25,
                 check_files: bool = True) -> None:
        super().__init__(keypoint_set, input_size, heatmap_size, sigma, train, augment, use_joint_weights)
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        self.padding = padding
        data = _read_json(self.ann_file, "keypoint annotation file")
        if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
            raise ValueError(f"{self.ann_file}: not a COCO annotation file (needs 'images' and 'annotations')")
        self.images: dict[int, dict] = {}
        for entry in data["images"]:
            if "id" not in entry or "file_name" not in entry:
                raise ValueError(f"{self.ann_file}: image entry without 'id' / 'file_name': {entry}")
            self.images[int(entry["id"])] = entry
        k = self.keypoint_set.num_keypoints
        self.gt_by_image: dict[int, list[dict]] = {i: [] for i in self.images}
        for ann in data["annotations"]:
            kp = ann.get("keypoints")
            aid = ann.get("id", "?")
            if kp is None or len(kp) != 3 * k:
                got = "no keypoints" if kp is None else f"{len(kp)} values"
                raise ValueError(f"{self.ann_file}: annotation id {aid}: keypoints has {got}, expected {3 * k} "
                                 f"(x, y, v for each of the {k} keypoints of set {self.keypoint_set.name!r})")
            if int(ann.get("image_id", -1)) not in self.images:
                raise ValueError(f"{self.ann_file}: annotation id {aid} refers to unknown image_id "
                                 f"{ann.get('image_id')}")
            if "bbox" not in ann or len(ann["bbox"]) != 4:
                raise ValueError(f"{self.ann_file}: annotation id {aid}: 'bbox' must be [x, y, w, h]")
            self.gt_by_image[int(ann["image_id"])].append(ann)
        if boxes == "gt":
            self._load_gt_boxes()
            source = str(self.ann_file)
        else:
            self.det_file = Path(boxes)
            self._load_det_boxes(self.det_file, det_score_thr)
            source = str(self.det_file)
        if check_files:
            missing = sorted({str(r["file"]) for r in self.records if not Path(r["file"]).is_file()})
            if missing:
                more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
                raise FileNotFoundError(f"{len(missing)} images named in {self.ann_file} are missing: "
                                        f"{', '.join(missing[:3])}{more}")
        self._report_skips(source)

    def _file(self, image_id: int) -> Path:
        return self.image_dir / self.images[image_id]["file_name"]

    def _load_gt_boxes(self) -> None:
        k = self.keypoint_set.num_keypoints
        for image_id, anns in self.gt_by_image.items():
            file = self._file(image_id)
            width = height = None
            for ann in anns:
                if ann.get("iscrowd", 0):
                    self.skipped["crowd"] += 1
                    continue
                kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(k, 3)
                if (kp[:, 2] > 0).sum() == 0:
                    self.skipped["without labelled keypoints"] += 1
                    continue
                if width is None:
                    width, height = _image_size(self.images[image_id], file)
                x, y, w, h = (float(v) for v in ann["bbox"])
                x1, y1 = max(0.0, x), max(0.0, y)
                x2, y2 = min(width - 1.0, x1 + max(0.0, w - 1)), min(height - 1.0, y1 + max(0.0, h - 1))
                if w <= 0 or h <= 0:
                    self.skipped["zero-area box"] += 1
                    continue
                if x2 < x1 or y2 < y1 or (x2 - x1) * (y2 - y1) <= 0:
                    self.skipped["box outside the image"] += 1
                    continue
                center, scale = box_to_center_scale([x1, y1, x2 - x1, y2 - y1], self.aspect_ratio, self.padding)
                self.records.append({
                    "file": file, "image_id": image_id, "ann_id": int(ann.get("id", -1)), "center": center,
                    "scale": scale, "joints": kp[:, :2].copy(), "visible": (kp[:, 2] > 0).astype(np.float64),
                    "score": 1.0, "area": float(scale[0] * scale[1] * 200.0**2), "box": [x1, y1, x2 - x1, y2 - y1],
                })

    def _load_det_boxes(self, path: Path, thr: float) -> None:
        dets = _read_json(path, "person detections file")
        if not isinstance(dets, list):
            raise ValueError(f"{path}: detections must be a list of {{image_id, bbox, score}} (COCO results)")
        if not dets:
            raise ValueError(f"{path}: the detections file holds no boxes; use boxes='gt' or another file")
        k = self.keypoint_set.num_keypoints
        sizes: dict[int, tuple[int, int]] = {}
        for i, det in enumerate(dets):
            if not isinstance(det, dict) or "image_id" not in det or "bbox" not in det:
                raise ValueError(f"{path}: entry {i} lacks 'image_id' / 'bbox': {det!r}")
            if int(det.get("category_id", 1)) != 1:
                self.skipped["not a person"] += 1
                continue
            score = float(det.get("score", 1.0))
            if score < thr:
                self.skipped[f"score below {thr}"] += 1
                continue
            image_id = int(det["image_id"])
            if image_id not in self.images:
                self.skipped["unknown image_id"] += 1
                continue
            x, y, w, h = (float(v) for v in det["bbox"])
            if w <= 0 or h <= 0:
                self.skipped["zero-area box"] += 1
                continue
            if image_id not in sizes:
                sizes[image_id] = _image_size(self.images[image_id], self._file(image_id))
            width, height = sizes[image_id]
            if x >= width or y >= height or x + w <= 0 or y + h <= 0:
                self.skipped["box outside the image"] += 1
                continue
            center, scale = box_to_center_scale([x, y, w, h], self.aspect_ratio, self.padding)
            self.records.append({
                "file": self._file(image_id), "image_id": image_id, "ann_id": -1, "center": center, "scale": scale,
                "joints": np.zeros((k, 2)), "visible": np.zeros(k), "score": score,
                "area": float(scale[0] * scale[1] * 200.0**2), "box": [x, y, w, h],
            })
        if not self.records:
            raise ValueError(f"{path}: no person box left after filtering ({dict(self.skipped)})")


class MPIIKeypoints(TopDownDataset):
    """MPII in the HRNet / Simple Baselines json format: ``[{"image", "center", "scale", "joints", "joints_vis"}]``.

    Coordinates are MATLAB 1-based in the file and shifted to 0-based here; the person box is the
    official one (center moved 15 * scale px down, scale x 1.25). An optional ``headbox`` [[x1, y1],
    [x2, y2]] per entry gives the PCKh head size (0.6 x its diagonal); without it the head size is
    the upper-neck to head-top distance.
    """

    def __init__(self, ann_file: str | Path, image_dir: str | Path, keypoint_set: KeypointSet | str = MPII_KEYPOINTS,
                 input_size: tuple[int, int] = (256, 256), train: bool = False, heatmap_size=None,
                 sigma: float = 2.0, augment: PoseAugment | None = None, use_joint_weights: bool = False,
                 check_files: bool = True) -> None:
        super().__init__(keypoint_set, input_size, heatmap_size, sigma, train, augment, use_joint_weights)
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        data = _read_json(self.ann_file, "MPII annotation file")
        if not isinstance(data, list):
            raise ValueError(f"{self.ann_file}: MPII annotations must be a list of people")
        k = self.keypoint_set.num_keypoints
        names = self.keypoint_set.names
        neck, top = (names.index("upper_neck"), names.index("head_top")) if {"upper_neck", "head_top"} <= set(
            names) else (None, None)
        image_ids: dict[str, int] = {}
        for i, entry in enumerate(data):
            where = f"{self.ann_file}: entry {i} ({entry.get('image', '?') if isinstance(entry, dict) else '?'})"
            if not isinstance(entry, dict) or not {"image", "center", "scale"} <= set(entry):
                raise ValueError(f"{where}: needs 'image', 'center' and 'scale'")
            joints = np.asarray(entry.get("joints", np.zeros((k, 2))), dtype=np.float64)
            vis = np.asarray(entry.get("joints_vis", np.zeros(k)), dtype=np.float64).reshape(-1)
            if joints.shape != (k, 2) or vis.shape != (k,):
                raise ValueError(f"{where}: joints {joints.shape} / joints_vis {vis.shape}, expected ({k}, 2) / ({k},)")
            s = float(entry["scale"])
            if s <= 0:
                self.skipped["zero-area box"] += 1
                continue
            center = np.asarray(entry["center"], dtype=np.float64) - 1
            center[1] += 15 * s
            s *= 1.25
            scale = np.array([s * self.aspect_ratio, s])
            joints = joints - 1
            if "headbox" in entry:
                hb = np.asarray(entry["headbox"], dtype=np.float64).reshape(2, 2)
                head = 0.6 * float(np.linalg.norm(hb[1] - hb[0]))
            elif neck is not None and vis[neck] > 0 and vis[top] > 0:
                head = float(np.linalg.norm(joints[top] - joints[neck]))
            else:
                head = 0.0
            image_id = image_ids.setdefault(entry["image"], len(image_ids))
            self.records.append({
                "file": self.image_dir / entry["image"], "image_id": image_id, "ann_id": i, "center": center,
                "scale": scale, "joints": joints, "visible": (vis > 0).astype(np.float64), "score": 1.0,
                "area": float(scale[0] * scale[1] * 200.0**2), "head_size": head,
            })
        if check_files:
            missing = sorted({str(r["file"]) for r in self.records if not Path(r["file"]).is_file()})
            if missing:
                raise FileNotFoundError(f"{len(missing)} images named in {self.ann_file} are missing: "
                                        f"{', '.join(missing[:3])}")
        self._report_skips(str(self.ann_file))

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Joints (N, K, 2), visibility (N, K) and PCKh head sizes (N,) of every record, for :func:`pckh`."""
        joints = np.stack([r["joints"] for r in self.records])
        vis = np.stack([r["visible"] for r in self.records])
        heads = np.array([r["head_size"] for r in self.records])
        return joints, vis, heads
