"""Top-down pose datasets: COCO keypoints (GT or detected person boxes) and MPII (official json).

Each item is one person crop: ``image`` (3, H, W) float, ImageNet-normalised; ``target`` (K, h, w)
Gaussian heatmaps and ``target_weight`` (K, 1); ``meta`` with what evaluation needs to put predictions
back in the image (``center``, ``scale``, ``image_id``, box ``score``, ``area``, ``index``).

Annotations are validated when the dataset is built, and errors name the file and the annotation id.
Person boxes that cannot give a crop (zero area, outside the image, no labelled keypoint for training,
crowd regions) are skipped, counted in :attr:`skipped` and logged once, as the official code skips them.

COCO-style files from other sources are taken as they come (:func:`read_coco_keypoints`, also used by
evaluation): a missing ``area`` is filled (segment area when there is a segmentation, else box w x h), a
missing ``iscrowd`` is 0, a missing annotation ``id`` is numbered, ``num_keypoints`` is recounted from the
visibility flags, and annotations of categories without keypoints are left out. Wrong types (keypoints
as strings, a bbox that is not four numbers, ...) are an error at load naming the annotation id.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch.utils.data import Dataset

from hrnet.io import image_size, read_image
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
from hrnet.pose.wholebody import NUM_WHOLEBODY, is_wholebody, merge_wholebody

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
    # "normal": the body recipe's clipped Gaussians above; "uniform": the official facial landmark recipe,
    # scale x U(1 - scale_factor, 1 + scale_factor) and rotation U(-rot_factor, rot_factor) degrees
    sampling: str = "normal"

    def __post_init__(self) -> None:
        if self.sampling not in ("normal", "uniform"):
            raise ValueError(f"augmentation sampling must be 'normal' or 'uniform', got {self.sampling!r}")


def read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"{path}: {what} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: {what} is not valid JSON ({err})") from err


# ----------------------------------------------------------------------------------------------------
# COCO-style keypoint files as other datasets ship them


def is_number(value: Any) -> bool:
    """A finite int or float (JSON numbers), not a bool or a numeric string."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def image_entry_problem(entry: Any) -> str | None:
    """What is wrong with one ``images[]`` entry, or None (shared by the loader and ``check-data``)."""
    if not isinstance(entry, dict):
        return f"is not a mapping: {str(entry)[:80]}"
    if "id" not in entry or "file_name" not in entry:
        return "needs 'id' and 'file_name'"
    if not isinstance(entry["id"], int) or isinstance(entry["id"], bool):
        return f"id {entry['id']!r} is not an integer"
    if not isinstance(entry["file_name"], str) or not entry["file_name"]:
        return f"file_name {entry['file_name']!r} is not a file name"
    for key in ("width", "height"):
        if key in entry and not (is_number(entry[key]) and entry[key] > 0):
            return f"{key} {entry[key]!r} is not a positive number"
    if "crowdIndex" in entry and not is_number(entry["crowdIndex"]):
        return f"crowdIndex {entry['crowdIndex']!r} is not a number"
    return None


def _first_non_number(values: list) -> tuple[int, Any] | None:
    for i, v in enumerate(values):
        if not is_number(v):
            return i, v
    return None


def annotation_problem(
    ann: Any, num_keypoints: int | None, image_ids: set[int] | dict, set_name: str | None = None
) -> str | None:
    """What is wrong with one ``annotations[]`` entry, or None: types, lengths, the image it refers to.

    ``num_keypoints`` None accepts any multiple of three. Fields that may be missing (area, iscrowd, id,
    num_keypoints, category_id) are only checked for their type when present.
    """
    if not isinstance(ann, dict):
        return f"is not a mapping: {str(ann)[:80]}"
    if "id" in ann and (not isinstance(ann["id"], int) or isinstance(ann["id"], bool)):
        return f"id {ann['id']!r} is not an integer"
    image_id = ann.get("image_id")
    if not isinstance(image_id, int) or isinstance(image_id, bool):
        return f"image_id {image_id!r} is not an integer"
    if image_id not in image_ids:
        return f"refers to unknown image_id {image_id}"
    kp = ann.get("keypoints")
    if not isinstance(kp, list):
        return "no keypoints" if kp is None else f"keypoints is a {type(kp).__name__}, not a list of numbers"
    if num_keypoints is not None and len(kp) != 3 * num_keypoints:
        of_set = f" of set {set_name!r}" if set_name else ""
        return (
            f"keypoints has {len(kp)} values, expected {3 * num_keypoints} (x, y, v for each of the "
            f"{num_keypoints} keypoints{of_set})"
        )
    if len(kp) % 3:
        return f"keypoints has {len(kp)} values, not a multiple of 3 (x, y, v per keypoint)"
    bad = _first_non_number(kp)
    if bad is not None:
        return f"keypoints hold {bad[1]!r} (a {type(bad[1]).__name__}) at position {bad[0]}; expected numbers"
    box = ann.get("bbox")
    if not isinstance(box, list | tuple) or len(box) != 4:
        return f"'bbox' must be [x, y, w, h], got {box!r}"
    bad = _first_non_number(list(box))
    if bad is not None:
        return f"bbox holds {bad[1]!r} at position {bad[0]}; expected four numbers [x, y, w, h]"
    if "area" in ann and not (is_number(ann["area"]) and ann["area"] >= 0):
        return f"area {ann['area']!r} is not a number >= 0"
    if "iscrowd" in ann and ann["iscrowd"] not in (0, 1):
        return f"iscrowd {ann['iscrowd']!r} is not 0 or 1"
    if "category_id" in ann and (not isinstance(ann["category_id"], int) or isinstance(ann["category_id"], bool)):
        return f"category_id {ann['category_id']!r} is not an integer"
    return None


def segmentation_area(seg: Any) -> float | None:
    """Area of a COCO segmentation: polygons by the shoelace formula (how COCO's own ``area`` values were
    made), RLE by its pixel count; None when there is none or it cannot be read."""
    if isinstance(seg, list) and seg:
        total = 0.0
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2 or _first_non_number(poly):
                return None
            xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
            x, y = xy[:, 0], xy[:, 1]
            total += 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
        return total
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        try:
            rle = mask_utils.frPyObjects(seg, *seg["size"]) if isinstance(seg["counts"], list) else seg
            return float(mask_utils.area(rle))
        except (TypeError, ValueError, KeyError):
            return None
    return None


@dataclass
class CocoKeypointFile:
    """A COCO-style keypoint file after :func:`read_coco_keypoints`: the completed ``data`` (ready for
    pycocotools), its images by id, and how many of each field had to be filled in."""

    path: Path
    data: dict
    images: dict[int, dict]
    category_ids: list[int]
    filled: Counter[str] = field(default_factory=Counter)
    other_category: int = 0


def read_coco_keypoints(
    path: str | Path,
    num_keypoints: int | None = None,
    what: str = "keypoint annotation file",
    set_name: str | None = None,
) -> CocoKeypointFile:
    """Read, validate and complete a COCO-style keypoint file (see the module docstring).

    The first wrong entry raises ``ValueError`` naming the file and the annotation (or image) id;
    duplicate image or annotation ids are errors too (pycocotools would silently keep only one of them).
    """
    path = Path(path)
    return complete_coco_keypoints(read_json(path, what), path, num_keypoints, set_name)


def complete_coco_keypoints(
    data: Any, path: str | Path, num_keypoints: int | None = None, set_name: str | None = None
) -> CocoKeypointFile:
    """:func:`read_coco_keypoints` on already parsed JSON (edited in place); ``path`` names it in errors."""
    path = Path(path)
    if num_keypoints == NUM_WHOLEBODY and is_wholebody(data):
        merge_wholebody(data, str(path))  # COCO-WholeBody keeps its parts in separate fields
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise ValueError(f"{path}: not a COCO annotation file (needs 'images' and 'annotations' lists)")
    images: dict[int, dict] = {}
    for i, entry in enumerate(data["images"]):
        problem = image_entry_problem(entry)
        if problem is not None:
            raise ValueError(f"{path}: image entry {i}: {problem}")
        if entry["id"] in images:
            raise ValueError(
                f"{path}: image id {entry['id']} is used twice ({images[entry['id']]['file_name']}, "
                f"{entry['file_name']})"
            )
        images[entry["id"]] = entry
    cats = data.get("categories") if isinstance(data.get("categories"), list) else []
    kp_cats = [c["id"] for c in cats if isinstance(c, dict) and c.get("keypoints") and "id" in c]
    if not cats:
        cats = [{"id": 1, "name": "person"}]
        data["categories"] = cats
    default_cat = kp_cats[0] if len(kp_cats) == 1 else (cats[0].get("id", 1) if len(cats) == 1 else None)
    out = CocoKeypointFile(path, data, images, kp_cats or [c.get("id") for c in cats if isinstance(c, dict)])
    kept, seen_ids = [], set()
    for i, ann in enumerate(data["annotations"]):
        aid = ann.get("id", f"#{i} (no id)") if isinstance(ann, dict) else f"#{i}"
        if isinstance(ann, dict) and kp_cats and ann.get("category_id", default_cat) not in kp_cats:
            out.other_category += 1
            continue
        problem = annotation_problem(ann, num_keypoints, images, set_name)
        if problem is not None:
            raise ValueError(f"{path}: annotation id {aid}: {problem}")
        if "id" in ann:
            if ann["id"] in seen_ids:
                raise ValueError(f"{path}: annotation id {ann['id']} is used twice")
            seen_ids.add(ann["id"])
        kept.append(ann)
    next_id = max(seen_ids, default=0) + 1
    for ann in kept:
        if "id" not in ann:
            ann["id"] = next_id
            next_id += 1
            out.filled["id"] += 1
        if "category_id" not in ann:
            if default_cat is None:
                raise ValueError(
                    f"{path}: annotation id {ann['id']} has no category_id and the file has several categories"
                )
            ann["category_id"] = default_cat
            out.filled["category_id"] += 1
        if "iscrowd" not in ann:
            ann["iscrowd"] = 0
            out.filled["iscrowd"] += 1
        if "area" not in ann:
            area = segmentation_area(ann.get("segmentation"))
            ann["area"] = area if area is not None else float(ann["bbox"][2]) * float(ann["bbox"][3])
            out.filled["area (from the segmentation)" if area is not None else "area (box w x h)"] += 1
        labelled = sum(1 for v in ann["keypoints"][2::3] if v > 0)
        if ann.get("num_keypoints") != labelled:
            out.filled["num_keypoints" if "num_keypoints" not in ann else "num_keypoints (recounted)"] += 1
            ann["num_keypoints"] = labelled
    data["annotations"] = kept
    if out.filled:
        log.info(
            "%s: filled in %s", path, ", ".join(f"{what} for {n} annotations" for what, n in sorted(out.filled.items()))
        )
    return out


class TopDownDataset(Dataset):
    """Shared crop / augment / encode logic; subclasses fill :attr:`records`."""

    def __init__(
        self,
        keypoint_set: KeypointSet | str,
        input_size: tuple[int, int],
        heatmap_size=None,
        sigma: float = 2.0,
        train: bool = False,
        augment: PoseAugment | None = None,
        use_joint_weights: bool = False,
    ) -> None:
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
            log.warning(
                "%s: skipped %d person boxes (%s); %d left",
                source,
                sum(self.skipped.values()),
                detail,
                len(self.records),
            )

    def __len__(self) -> int:
        return len(self.records)

    def _augment(
        self, image: np.ndarray, joints: np.ndarray, visible: np.ndarray, center: np.ndarray, scale: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        aug, ks = self.augment, self.keypoint_set
        rot = 0.0
        if (
            aug.half_body_prob > 0
            and (visible > 0).sum() > aug.num_joints_half_body
            and np.random.rand() < aug.half_body_prob
        ):
            half = half_body_center_scale(joints, visible, ks.upper_body, ks.lower_body, self.aspect_ratio)
            if half is not None:
                center, scale = half
        sf, rf = aug.scale_factor, aug.rot_factor
        if aug.sampling == "uniform":
            scale = scale * np.random.uniform(1 - sf, 1 + sf)
        else:
            scale = scale * np.clip(np.random.randn() * sf + 1, 1 - sf, 1 + sf)
        if np.random.rand() <= aug.rot_prob:
            rot = float(
                np.random.uniform(-rf, rf)
                if aug.sampling == "uniform"
                else np.clip(np.random.randn() * rf, -rf * 2, rf * 2)
            )
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
        return {
            "image": torch.from_numpy(normalize_image(crop)),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(target_weight),
            "meta": meta,
        }


def _image_size(entry: dict, file: Path) -> tuple[int, int]:
    """(width, height) from the annotation, or from the image header when the annotation lacks it."""
    if "width" in entry and "height" in entry:
        return int(entry["width"]), int(entry["height"])
    return image_size(file)


class CocoKeypoints(TopDownDataset):
    """COCO-format keypoint annotations; person boxes from the ground truth or a detections file.

    ``boxes="gt"`` uses the annotated boxes (clipped to the image, as the official loader does);
    otherwise ``boxes`` is a COCO results file of person detections
    (``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``) filtered by ``det_score_thr``.
    Training skips people without labelled keypoints.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        keypoint_set: KeypointSet | str = COCO_KEYPOINTS,
        input_size: tuple[int, int] = (192, 256),
        train: bool = False,
        boxes: str | Path = "gt",
        det_score_thr: float = 0.0,
        heatmap_size=None,
        sigma: float = 2.0,
        augment: PoseAugment | None = None,
        use_joint_weights: bool = False,
        padding: float = 1.25,
        check_files: bool = True,
    ) -> None:
        super().__init__(keypoint_set, input_size, heatmap_size, sigma, train, augment, use_joint_weights)
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        self.padding = padding
        k = self.keypoint_set.num_keypoints
        self.coco = read_coco_keypoints(self.ann_file, k, set_name=self.keypoint_set.name)
        self.images: dict[int, dict] = self.coco.images
        self.gt_by_image: dict[int, list[dict]] = {i: [] for i in self.images}
        for ann in self.coco.data["annotations"]:
            self.gt_by_image[ann["image_id"]].append(ann)
        self.outside_keypoints = 0  # labelled keypoints outside their image (they give no target)
        self._outside_example = ""
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
                raise FileNotFoundError(
                    f"{len(missing)} images named in {self.ann_file} are missing: {', '.join(missing[:3])}{more}"
                )
        self._report_skips(source)
        if self.outside_keypoints:
            log.warning(
                "%s: %d labelled keypoints lie outside their image (e.g. %s); they give no heatmap target "
                "(run `hrnet pose check-data` for the list)",
                self.ann_file,
                self.outside_keypoints,
                self._outside_example,
            )

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
                labelled = kp[:, 2] > 0
                outside = labelled & ((kp[:, 0] < 0) | (kp[:, 1] < 0) | (kp[:, 0] > width) | (kp[:, 1] > height))
                if outside.any():
                    self.outside_keypoints += int(outside.sum())
                    self._outside_example = self._outside_example or f"annotation id {ann.get('id')}"
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
                self.records.append(
                    {
                        "file": file,
                        "image_id": image_id,
                        "ann_id": int(ann.get("id", -1)),
                        "center": center,
                        "scale": scale,
                        "joints": kp[:, :2].copy(),
                        "visible": (kp[:, 2] > 0).astype(np.float64),
                        "score": 1.0,
                        "area": float(scale[0] * scale[1] * 200.0**2),
                        "box": [x1, y1, x2 - x1, y2 - y1],
                    }
                )

    def _load_det_boxes(self, path: Path, thr: float) -> None:
        dets = read_json(path, "person detections file")
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
            self.records.append(
                {
                    "file": self._file(image_id),
                    "image_id": image_id,
                    "ann_id": -1,
                    "center": center,
                    "scale": scale,
                    "joints": np.zeros((k, 2)),
                    "visible": np.zeros(k),
                    "score": score,
                    "area": float(scale[0] * scale[1] * 200.0**2),
                    "box": [x, y, w, h],
                }
            )
        if not self.records:
            raise ValueError(f"{path}: no person box left after filtering ({dict(self.skipped)})")


class MPIIKeypoints(TopDownDataset):
    """MPII in the HRNet / Simple Baselines json format: ``[{"image", "center", "scale", "joints", "joints_vis"}]``.

    Coordinates are MATLAB 1-based in the file and shifted to 0-based here; the person box is the
    official one (center moved 15 * scale px down, scale x 1.25). An optional ``headbox`` [[x1, y1],
    [x2, y2]] per entry gives the PCKh head size (0.6 x its diagonal); without it the head size is
    the upper-neck to head-top distance.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        keypoint_set: KeypointSet | str = MPII_KEYPOINTS,
        input_size: tuple[int, int] = (256, 256),
        train: bool = False,
        heatmap_size=None,
        sigma: float = 2.0,
        augment: PoseAugment | None = None,
        use_joint_weights: bool = False,
        check_files: bool = True,
    ) -> None:
        super().__init__(keypoint_set, input_size, heatmap_size, sigma, train, augment, use_joint_weights)
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        data = read_json(self.ann_file, "MPII annotation file")
        if not isinstance(data, list):
            raise ValueError(f"{self.ann_file}: MPII annotations must be a list of people")
        k = self.keypoint_set.num_keypoints
        names = self.keypoint_set.names
        neck, top = (
            (names.index("upper_neck"), names.index("head_top"))
            if {"upper_neck", "head_top"} <= set(names)
            else (None, None)
        )
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
            self.records.append(
                {
                    "file": self.image_dir / entry["image"],
                    "image_id": image_id,
                    "ann_id": i,
                    "center": center,
                    "scale": scale,
                    "joints": joints,
                    "visible": (vis > 0).astype(np.float64),
                    "score": 1.0,
                    "area": float(scale[0] * scale[1] * 200.0**2),
                    "head_size": head,
                }
            )
        if check_files:
            missing = sorted({str(r["file"]) for r in self.records if not Path(r["file"]).is_file()})
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} images named in {self.ann_file} are missing: {', '.join(missing[:3])}"
                )
        self._report_skips(str(self.ann_file))

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Joints (N, K, 2), visibility (N, K) and PCKh head sizes (N,) of every record, for :func:`pckh`."""
        joints = np.stack([r["joints"] for r in self.records])
        vis = np.stack([r["visible"] for r in self.records])
        heads = np.array([r["head_size"] for r in self.records])
        return joints, vis, heads
