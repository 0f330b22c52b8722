"""``hrnet pose check-data``: every problem of a pose dataset counted at once, before training meets it.

The dataset loader stops at the first wrong annotation; this check walks the whole training and
validation data and records each problem (:class:`hrnet.datacheck.DataReport`): annotation files that do
not parse, wrong or duplicate entries, missing or unreadable images, image sizes that differ from the
JSON, keypoints outside their image, boxes outside or without area, empty images. The per-annotation
rules are the loader's own (:func:`~hrnet.pose.datasets.annotation_problem`), so the check and training
cannot disagree. ``level="quick"`` (what training runs first) reads image headers only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from hrnet.datacheck import DataReport, add_check_data_verb, finish_check
from hrnet.engine.config import load_config
from hrnet.io import image_size
from hrnet.paths import under_root
from hrnet.pose.config import PoseConfig, resolve_keypoint_set
from hrnet.pose.datasets import annotation_problem, image_entry_problem, is_number, read_json
from hrnet.pose.keypoints import KeypointSet
from hrnet.pose.landmarks import read_face_csv

LEVELS = ("quick", "full")


def _check_image_file(
    report: DataReport, file: Path, where: str, expected: tuple[Any, Any] | None, level: str
) -> tuple[float, float] | None:
    """Size of ``file`` (or None when it cannot be read), recording missing / unreadable / size mismatch."""
    report.checked["images"] += 1
    try:
        size = image_size(file, decode=level == "full")
    except FileNotFoundError:
        report.add("missing image", str(file), f"named by {where}")
        return None
    except ValueError as err:
        report.add("unreadable image", str(file), f"{err} (named by {where})".split(": ", 1)[-1])
        return None
    if expected is not None and None not in expected and (int(expected[0]), int(expected[1])) != size:
        report.add(
            "image size differs from the JSON",
            str(file),
            f"file is {size[0]}x{size[1]}, {where} says {int(expected[0])}x{int(expected[1])} (WxH)",
        )
    return float(size[0]), float(size[1])


def _check_person(report: DataReport, ann: dict, where: str, size: tuple[float, float] | None) -> None:
    """Keypoints and box of one well-formed annotation against its image size."""
    kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    labelled = kp[:, 2] > 0
    if not labelled.any():
        report.add("no labelled keypoints (skipped in training)", where, "", "note")
    x, y, w, h = (float(v) for v in ann["bbox"])
    if w <= 0 or h <= 0:
        report.add("box without area", where, f"bbox {ann['bbox']} has w or h <= 0", "warning")
    if "area" not in ann:
        report.add("area missing (filled in)", where, "", "note")
    if "iscrowd" not in ann:
        report.add("iscrowd missing (taken as 0)", where, "", "note")
    if size is None:
        return
    width, height = size
    out = labelled & ((kp[:, 0] < 0) | (kp[:, 1] < 0) | (kp[:, 0] > width) | (kp[:, 1] > height))
    if out.any():
        worst = kp[np.flatnonzero(out)[0], :2]
        report.add(
            "keypoint outside image",
            where,
            f"{int(out.sum())} labelled keypoints outside the {width:g}x{height:g} image, e.g. "
            f"({worst[0]:g}, {worst[1]:g}); they give no training target",
            "warning",
        )
    if w > 0 and h > 0:
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            report.add(
                "box outside image",
                where,
                f"bbox {ann['bbox']} lies outside the {width:g}x{height:g} image (skipped in training)",
                "warning",
            )
        elif x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
            report.add("box partly outside image (clipped)", where, f"bbox {ann['bbox']}", "note")


def check_coco_split(
    report: DataReport, ann_file: Path, image_dir: Path, keypoint_set: KeypointSet | None, level: str = "full"
) -> None:
    """Check one COCO-style keypoint file and its images into ``report``."""
    report.sources.append(str(ann_file))
    try:
        data = read_json(ann_file, "keypoint annotation file")
    except (FileNotFoundError, ValueError) as err:
        report.add("unreadable annotation file", str(ann_file), str(err).split(": ", 1)[-1])
        return
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        report.add("unreadable annotation file", str(ann_file), "not a COCO file (needs 'images' and 'annotations')")
        return
    k = keypoint_set.num_keypoints if keypoint_set is not None else None
    name = keypoint_set.name if keypoint_set is not None else None
    images: dict[int, dict] = {}
    for i, entry in enumerate(data["images"]):
        report.checked["image entries"] += 1
        problem = image_entry_problem(entry)
        if problem is not None:
            report.add("bad image entry", f"{ann_file}: images[{i}]", problem)
        elif entry["id"] in images:
            report.add(
                "duplicate image id",
                f"{ann_file}: image id {entry['id']}",
                f"used by {images[entry['id']]['file_name']} and {entry['file_name']}",
            )
        else:
            images[entry["id"]] = entry
    cats = [c for c in data.get("categories") or [] if isinstance(c, dict)]
    kp_cats = {c.get("id") for c in cats if c.get("keypoints")}
    default_cat = next(iter(kp_cats)) if len(kp_cats) == 1 else None
    people: dict[int, list[tuple[dict, str]]] = {i: [] for i in images}
    seen: set[int] = set()
    for i, ann in enumerate(data["annotations"]):
        aid = ann.get("id", f"#{i} (no id)") if isinstance(ann, dict) else f"#{i}"
        where = f"{ann_file}: annotation id {aid}"
        if isinstance(ann, dict) and kp_cats and ann.get("category_id", default_cat) not in kp_cats:
            continue
        report.checked["annotations"] += 1
        problem = annotation_problem(ann, k, images, name)
        if problem is not None:
            report.add("bad annotation", where, problem)
            continue
        if "id" in ann:
            if ann["id"] in seen:
                report.add("duplicate annotation id", where, "the id is used by an earlier annotation")
                continue
            seen.add(ann["id"])
        people[ann["image_id"]].append((ann, where))
    for image_id, entry in images.items():
        file = image_dir / entry["file_name"]
        where = f"{ann_file} (image id {image_id})"
        size = _check_image_file(
            report,
            file,
            where,
            (entry.get("width"), entry.get("height")) if "width" in entry and "height" in entry else None,
            level,
        )
        if size is None and is_number(entry.get("width")) and is_number(entry.get("height")):
            size = (float(entry["width"]), float(entry["height"]))
        if not people[image_id]:
            report.add("empty image (no annotated person)", str(file), f"image id {image_id}", "note")
        for ann, ann_where in people[image_id]:
            _check_person(report, ann, f"{ann_where} ({entry['file_name']})", size)


def check_mpii_split(
    report: DataReport, ann_file: Path, image_dir: Path, keypoint_set: KeypointSet, level: str = "full"
) -> None:
    """Check an MPII json (HRNet format) and its images: entries, files, joints outside the image."""
    report.sources.append(str(ann_file))
    try:
        data = read_json(ann_file, "MPII annotation file")
    except (FileNotFoundError, ValueError) as err:
        report.add("unreadable annotation file", str(ann_file), str(err).split(": ", 1)[-1])
        return
    if not isinstance(data, list):
        report.add("unreadable annotation file", str(ann_file), "MPII annotations must be a list of people")
        return
    k = keypoint_set.num_keypoints
    sizes: dict[str, tuple[float, float] | None] = {}
    for i, entry in enumerate(data):
        report.checked["annotations"] += 1
        where = f"{ann_file}: entry {i}"
        if not isinstance(entry, dict) or not {"image", "center", "scale"} <= set(entry):
            report.add("bad annotation", where, "needs 'image', 'center' and 'scale'")
            continue
        try:
            joints = np.asarray(entry.get("joints", np.zeros((k, 2))), dtype=np.float64) - 1
            vis = np.asarray(entry.get("joints_vis", np.zeros(k)), dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            report.add("bad annotation", where, f"joints / joints_vis are not numbers ({err})")
            continue
        if joints.shape != (k, 2) or vis.shape != (k,):
            report.add("bad annotation", where, f"joints {joints.shape} / joints_vis {vis.shape}, expected ({k}, 2)")
            continue
        name = str(entry["image"])
        if name not in sizes:
            sizes[name] = _check_image_file(report, image_dir / name, where, None, level)
        size = sizes[name]
        if size is not None:
            out = (vis > 0) & (
                (joints[:, 0] < 0) | (joints[:, 1] < 0) | (joints[:, 0] > size[0]) | (joints[:, 1] > size[1])
            )
            if out.any():
                report.add(
                    "keypoint outside image",
                    f"{where} ({name})",
                    f"{int(out.sum())} visible joints outside the image",
                    "warning",
                )


def check_face_csv(report: DataReport, ann_file: Path, image_dir: Path, ks: KeypointSet, level: str) -> None:
    """An official landmark CSV: the file's rows (the loader's reader, so both agree) and every image."""
    try:
        rows = read_face_csv(ann_file, ks.num_keypoints)
    except (FileNotFoundError, ValueError) as err:
        report.add("annotation file unusable", str(ann_file), str(err).removeprefix(f"{ann_file}: "))
        return
    report.checked["annotations"] += len(rows)
    for name in sorted({r["file_name"] for r in rows}):
        _check_image_file(report, image_dir / name, str(ann_file), None, level)


def check_pose_data(cfg: PoseConfig, keypoint_set: KeypointSet | None = None, level: str = "full") -> DataReport:
    """Check the training and validation data of ``cfg`` (one pass when both name the same files)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    report = DataReport("pose")
    d = cfg.data
    ks = keypoint_set
    if ks is None:
        try:
            ks = resolve_keypoint_set(d)
        except (FileNotFoundError, ValueError) as err:
            report.add("keypoint set unusable", f"data.keypoint_set={d.keypoint_set}", str(err))
    splits = []
    for ann, images in ((d.train_ann, d.train_images), (d.val_ann, d.val_images)):
        pair = (under_root(d.root, ann), under_root(d.root, images))
        if pair not in splits:
            splits.append(pair)
    for ann_file, image_dir in splits:
        if d.dataset == "mpii":
            if ks is not None:
                check_mpii_split(report, ann_file, image_dir, ks, level)
        elif d.dataset == "face" and ann_file.suffix.lower() == ".csv":
            if ks is not None:
                check_face_csv(report, ann_file, image_dir, ks, level)
        else:
            check_coco_split(report, ann_file, image_dir, ks, level)
    return report


def cmd_check_data(args: argparse.Namespace) -> int:
    """``hrnet pose check-data --config YAML``: exit 0 without errors, 1 with (the table says which)."""

    cfg = load_config(PoseConfig, args.config, args.overrides)
    return finish_check(check_pose_data(cfg, level="quick" if args.quick else "full"), args)


def add_check_data(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``check-data`` under ``hrnet pose``."""
    return add_check_data_verb(
        sub,
        task="pose",
        func=cmd_check_data,
        example_config="configs/pose/sample/tiny.yaml",
        what="annotation files, images and their sizes, keypoints and boxes",
    )
