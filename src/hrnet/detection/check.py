"""``hrnet det check-data``: every problem of a COCO-format detection dataset counted at once.

The loader stops at the first broken annotation; this check walks the training and validation files and
records each problem (:class:`hrnet.datacheck.DataReport`): files that do not parse, annotations naming an
unknown image or category, malformed boxes, missing or unreadable images, image sizes that differ from the
JSON (errors); boxes without area or beyond their image, polygons that cannot be drawn, training images
without a usable annotation (warnings: skipped or clipped); crowd regions (notes: ignored in training).
The usability rule is the loader's own (:func:`~hrnet.detection.datasets.usable`). ``level="quick"``
(what training runs first) reads image headers only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hrnet.datacheck import DataReport, add_check_data_verb, finish_check
from hrnet.detection.config import DetConfig
from hrnet.detection.datasets import usable
from hrnet.engine.config import load_config
from hrnet.io import image_size
from hrnet.paths import under_root

LEVELS = ("quick", "full")


def _image_size(report: DataReport, file: Path, where: str, level: str) -> tuple[int, int] | None:
    report.checked["images"] += 1
    try:
        return image_size(file, decode=level == "full")
    except FileNotFoundError:
        report.add("missing image", str(file), f"named by {where}")
    except ValueError as err:
        report.add("unreadable image", str(file), f"{err} (named by {where})".split(": ", 1)[-1])
    return None


def _check_annotation(report: DataReport, ann: dict[str, Any], where: str, size: tuple[int, int] | None) -> None:
    x, y, w, h = (float(v) for v in ann["bbox"])
    if ann.get("iscrowd", 0):
        report.add("crowd region (ignored in training)", where, "", "note")
        return
    if not usable(ann):
        report.add("box without area (skipped)", where, f"bbox {ann['bbox']}, area {ann.get('area')}", "warning")
        return
    if size is not None and (x < -1 or y < -1 or x + w > size[0] + 1 or y + h > size[1] + 1):
        report.add(
            "box beyond its image (clipped)", where, f"bbox {ann['bbox']} in a {size[0]}x{size[1]} image", "warning"
        )
    segm = ann.get("segmentation")
    if isinstance(segm, list) and any(not isinstance(p, list) or len(p) < 6 or len(p) % 2 for p in segm):
        report.add(
            "polygon that cannot be drawn (dropped)", where, "fewer than 3 points or an odd coordinate count", "warning"
        )


def _check_file(report: DataReport, ann_file: Path, image_dir: Path, train: bool, level: str) -> list[int] | None:
    """Check one annotation file; returns its sorted category ids (None when it cannot be read)."""
    if not ann_file.is_file():
        report.add("missing annotation file", str(ann_file))
        return None
    try:
        data = json.loads(ann_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        report.add("unreadable annotation file", str(ann_file), str(err))
        return None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("categories"), list)
    ):
        report.add("not a COCO instances file", str(ann_file), "expected images / annotations / categories lists")
        return None
    cats = {c.get("id") for c in data["categories"] if isinstance(c, dict)}
    if not cats:
        report.add("no categories", str(ann_file))
    if not image_dir.is_dir():
        report.add("missing image folder", str(image_dir), f"for {ann_file}")
    sizes: dict[Any, tuple[int, int] | None] = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not {"id", "file_name", "width", "height"} <= set(im):
            report.add("bad image entry", f"{ann_file}: images[{i}]", "needs id, file_name, width and height")
            continue
        if im["id"] in sizes:
            report.add("duplicate image id", f"{ann_file}: image {im['id']}")
        size = (
            _image_size(report, image_dir / im["file_name"], f"{ann_file}: image {im['id']}", level)
            if image_dir.is_dir()
            else None
        )
        if size is not None and size != (int(im["width"]), int(im["height"])):
            report.add(
                "image size differs from the JSON",
                str(image_dir / im["file_name"]),
                f"file is {size[0]}x{size[1]}, the JSON says {im['width']}x{im['height']} (WxH)",
            )
        sizes[im["id"]] = size or (int(im["width"]), int(im["height"]))
    used: set[Any] = set()
    for ann in data.get("annotations") or []:
        report.checked["annotations"] += 1
        where = f"{ann_file}: annotation {ann.get('id', '?')}"
        if ann.get("image_id") not in sizes:
            report.add("annotation of an unknown image", where, f"image_id {ann.get('image_id')!r}")
            continue
        if ann.get("category_id") not in cats:
            report.add("annotation of an unknown category", where, f"category_id {ann.get('category_id')!r}")
            continue
        box = ann.get("bbox")
        if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, int | float) for v in box):
            report.add("malformed bbox", where, f"expected [x, y, w, h], got {box!r}")
            continue
        _check_annotation(report, ann, where, sizes[ann["image_id"]])
        if usable(ann):
            used.add(ann["image_id"])
    if train:
        for image_id in sizes:
            if image_id not in used:
                report.add(
                    "image without a usable annotation (skipped in training)",
                    f"{ann_file}: image {image_id}",
                    "",
                    "warning",
                )
    return sorted(c for c in cats if c is not None)


def check_det_data(cfg: DetConfig, level: str = "full") -> DataReport:
    """Check the training and validation files of ``cfg`` (see the module docstring)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    d = cfg.data
    splits = [(d.train_ann, d.train_images, True), (d.val_ann, d.val_images, False)]
    report = DataReport("det", sources=[str(under_root(d.root, a)) for a, _, _ in splits])
    categories = []
    seen: set[tuple[str, str]] = set()
    for ann, images, train in splits:
        if (ann, images) in seen:  # the same file for both splits (sample configs): checked once
            continue
        seen.add((ann, images))
        categories.append(_check_file(report, under_root(d.root, ann), under_root(d.root, images), train, level))
    if len(categories) == 2 and None not in categories and categories[0] != categories[1]:
        report.add(
            "categories differ between training and validation",
            str(under_root(d.root, d.val_ann)),
            f"{len(categories[0])} vs {len(categories[1])} categories",
        )
    return report


def cmd_check_data(args: Any) -> int:
    """``hrnet det check-data --config YAML``: exit 0 without errors, 1 with."""

    cfg = load_config(DetConfig, args.config, args.overrides)
    return finish_check(check_det_data(cfg, level="quick" if args.quick else "full"), args)


def add_check_data(sub: Any) -> Any:
    """Register ``check-data`` under ``hrnet det``."""
    return add_check_data_verb(
        sub,
        task="det",
        func=cmd_check_data,
        example_config="configs/det/faster_rcnn/w32_1x.yaml",
        what="COCO annotation files, boxes, polygons and images",
    )
