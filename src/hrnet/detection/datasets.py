"""COCO-format instance data (any dataset in that format) for the detectors, and aspect-ratio grouped batches.

- Categories are sorted by id and numbered 1..K (0 is background); :attr:`CocoDetection.category_ids`
  maps a label back to the file's id for results (COCO's ids have gaps: 80 classes among 1..90).
- Boxes ``[x, y, w, h]`` become ``[x1, y1, x2, y2]`` clipped to the image; as mmdet, annotations with
  ``area <= 0`` or a side under one pixel are left out. Crowd regions (``iscrowd: 1``) are left out of the
  training targets (the COCO evaluation ignores matches to them instead).
- Masks come from polygons or RLE (compressed or not) through pycocotools; a training image without any
  usable annotation teaches nothing and is skipped (and counted in :attr:`CocoDetection.skipped`).
- :class:`GroupedBatches` makes batches of images of similar shape (torchvision's aspect-ratio groups), so
  padding to the batch's largest image wastes little; each item is one batch, which the engine's sampler
  then shards and shuffles like any dataset.

Errors name the annotation file and what is wrong with it.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hrnet.coco import coco_index
from hrnet.detection.transforms import TrainAugment, to_tensor
from hrnet.io import read_image
from hrnet.labels import flip_pairs_from_names, flip_permutation

log = logging.getLogger("hrnet.detection")


class AnnotationError(ValueError):
    """An annotation file is missing pieces or holds values that cannot be right."""


def read_coco_json(path: str | Path) -> dict[str, Any]:
    """Parse a COCO-format JSON and check the parts detection needs; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AnnotationError(f"{path}: not a readable JSON file ({err})") from err
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a COCO object with images / annotations / categories")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise AnnotationError(f"{path}: no '{key}' list (is this a COCO instances file?)")
    if not data["categories"]:
        raise AnnotationError(f"{path}: 'categories' is empty")
    data.setdefault("annotations", [])
    image_ids = set()
    for im in data["images"]:
        if not isinstance(im, dict) or not {"id", "file_name", "width", "height"} <= set(im):
            raise AnnotationError(f"{path}: image entry {im!r:.80} lacks id / file_name / width / height")
        image_ids.add(im["id"])
    cat_ids = {c["id"] for c in data["categories"]}
    for ann in data["annotations"]:
        where = f"{path}: annotation {ann.get('id', '?')}"
        if ann.get("image_id") not in image_ids:
            raise AnnotationError(f"{where} refers to image {ann.get('image_id')!r}, which is not in 'images'")
        if ann.get("category_id") not in cat_ids:
            raise AnnotationError(f"{where} has category {ann.get('category_id')!r}, which is not in 'categories'")
        box = ann.get("bbox")
        if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, int | float) for v in box):
            raise AnnotationError(f"{where}: bbox must be [x, y, w, h], got {box!r}")
    return data


def usable(ann: dict[str, Any]) -> bool:
    """A training annotation: not a crowd region, positive area, both sides at least one pixel."""
    _, _, w, h = ann["bbox"]
    return not ann.get("iscrowd", 0) and ann.get("area", w * h) > 0 and w >= 1 and h >= 1


def _valid_polygons(segm: Any) -> Any:
    """Drop polygons pycocotools cannot rasterise (fewer than 3 points or an odd coordinate count)."""
    if isinstance(segm, list):
        return [p for p in segm if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
    return segm


class CocoDetection(Dataset):
    """Images and instance targets of a COCO-format file; items are ``(image (3, H, W) in [0, 1], target)``.

    ``target``: ``boxes`` (N, 4) xyxy, ``labels`` (N,) in 1..K, ``image_id``, ``area``, ``iscrowd``, and
    ``masks`` (N, H, W) uint8 when ``masks``, ``keypoints`` (N, K, 3) when ``keypoints``.
    ``train`` enables the flip and, with ``skip_empty`` (default: ``train``), skips unusable images.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        *,
        train: bool = False,
        masks: bool = True,
        keypoints: bool = False,
        flip_prob: float = 0.5,
        skip_empty: bool | None = None,
    ) -> None:
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"{self.image_dir}: image folder not found (for {self.ann_file})")
        data = read_coco_json(self.ann_file)
        self.coco = coco_index(data)
        cats = sorted(data["categories"], key=lambda c: c["id"])
        self.category_ids = [int(c["id"]) for c in cats]
        self.class_names = [str(c.get("name", c["id"])) for c in cats]
        self.cat_to_label = {cid: i + 1 for i, cid in enumerate(self.category_ids)}
        self.keypoint_names: list[str] = list(cats[0].get("keypoints", [])) if keypoints else []
        if keypoints and not self.keypoint_names:
            raise AnnotationError(f"{self.ann_file}: keypoints requested but the category has no 'keypoints' names")
        self.masks, self.keypoints, self.train = masks, keypoints, train
        names = self.keypoint_names
        kpt_flip = flip_permutation(len(names), flip_pairs_from_names(names)) if keypoints else None
        self.augment = TrainAugment(flip_prob, kpt_flip) if train else None
        ids = [int(im["id"]) for im in data["images"]]
        if skip_empty if skip_empty is not None else train:
            kept = [i for i in ids if self._has_usable(i)]
            self.skipped = len(ids) - len(kept)
            if self.skipped:
                log.info(
                    "%s: %d of %d images have no usable annotation; skipped for training",
                    self.ann_file,
                    self.skipped,
                    len(ids),
                )
            ids = kept
        else:
            self.skipped = 0
        if not ids:
            raise AnnotationError(f"{self.ann_file}: no image with a usable annotation")
        self.image_ids = ids

    def _has_usable(self, image_id: int) -> bool:
        anns = [a for a in self.coco.imgToAnns.get(image_id, []) if usable(a)]
        if self.keypoints:
            return any(a.get("num_keypoints", 0) > 0 for a in anns)
        return bool(anns)

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    def image_info(self, index: int) -> dict[str, Any]:
        return self.coco.imgs[self.image_ids[index]]

    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, from the JSON (no image is opened)."""
        return [self.image_info(i)["width"] / self.image_info(i)["height"] for i in range(len(self))]

    def target(self, index: int) -> dict[str, Tensor]:
        """The target of image ``index`` at its original size (no augmentation)."""
        info = self.image_info(index)
        h, w = int(info["height"]), int(info["width"])
        anns = [a for a in self.coco.imgToAnns.get(info["id"], []) if usable(a)]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        anns = [a for a, k in zip(anns, keep.tolist()) if k]
        out = {
            "boxes": boxes[keep],
            "labels": torch.tensor([self.cat_to_label[a["category_id"]] for a in anns], dtype=torch.int64),
            "image_id": torch.tensor(int(info["id"])),
            "area": torch.tensor([float(a.get("area", 0.0)) for a in anns], dtype=torch.float32),
            "iscrowd": torch.zeros(len(anns), dtype=torch.int64),
        }
        if self.masks:
            out["masks"] = self._masks(anns, h, w)
        if self.keypoints:
            k = len(self.keypoint_names)
            kp = [a.get("keypoints") or [0.0] * 3 * k for a in anns]
            out["keypoints"] = torch.tensor(kp, dtype=torch.float32).reshape(-1, k, 3)
        return out

    def _masks(self, anns: list[dict[str, Any]], h: int, w: int) -> Tensor:
        masks = np.zeros((len(anns), h, w), dtype=np.uint8)
        for j, a in enumerate(anns):
            segm = _valid_polygons(a.get("segmentation"))
            if not segm:  # no usable outline: the box is the best mask there is
                x, y, bw, bh = a["bbox"]
                masks[j, int(y) : int(math.ceil(y + bh)), int(x) : int(math.ceil(x + bw))] = 1
                continue
            masks[j] = self.coco.annToMask({**a, "segmentation": segm})
        return torch.from_numpy(masks)

    def load_image(self, index: int) -> Tensor:
        info = self.image_info(index)
        image = read_image(self.image_dir / info["file_name"])
        if image.shape[:2] != (info["height"], info["width"]):
            raise AnnotationError(
                f"{self.ann_file}: image {info['file_name']} is {image.shape[1]}x{image.shape[0]}, "
                f"the file says {info['width']}x{info['height']}"
            )
        return to_tensor(image)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        image, target = self.load_image(index), self.target(index)
        if self.augment is not None:
            image, target = self.augment(image, target)
        return image, target


def collate(samples: Sequence[tuple[Tensor, dict[str, Tensor]]]) -> dict[str, Any]:
    """A list of (image, target) -> ``{"image_ids": (N,), "images": [...], "targets": [...]}`` (sizes differ)."""
    return {
        "image_ids": torch.stack([t["image_id"] for _, t in samples]),
        "images": [im for im, _ in samples],
        "targets": [t for _, t in samples],
    }


def aspect_ratio_groups(ratios: Sequence[float], k: int = 3) -> list[int]:
    """Group of each width / height ratio: the bins ``2 ** linspace(-1, 1, 2k + 1)`` (torchvision); k=0 -> one."""
    if k <= 0:
        return [0] * len(ratios)
    bins = sorted((2 ** np.linspace(-1, 1, 2 * k + 1)).tolist())
    return [bisect.bisect_right(bins, r) for r in ratios]


class GroupedBatches(Dataset):
    """Batches of ``batch_size`` images from one aspect-ratio group; item ``i`` is batch ``i`` (collated).

    The number of batches per group is fixed, so the engine's sampler sees a dataset of constant length;
    which images form each batch is redrawn every epoch (:meth:`set_epoch`, seeded by ``seed`` and the epoch).
    """

    def __init__(self, dataset: CocoDetection, batch_size: int, group_factor: int = 3, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        groups = aspect_ratio_groups(dataset.aspect_ratios(), group_factor)
        self.members: dict[int, list[int]] = {}
        for i, g in enumerate(groups):
            self.members.setdefault(g, []).append(i)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for g in sorted(self.members):
            idx = np.asarray(self.members[g])[rng.permutation(len(self.members[g]))].tolist()
            batches += [idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return collate([self.dataset[i] for i in self.batches[index]])


def unwrap_batch(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The engine's ``collate_fn`` for :class:`GroupedBatches` (loader batch size 1: one ready batch)."""
    if len(items) != 1:
        raise ValueError(f"grouped batches are loaded one at a time (loader batch size 1), got {len(items)}")
    return items[0]
