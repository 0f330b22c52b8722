"""``hrnet seg check-data``: every problem of a segmentation dataset counted at once.

For each split of the config: images without a mask, masks without an image, unreadable images or
masks, mask sizes that differ from their image, label values that are neither a class nor the ignore
index, masks that are all ignore, and a ``classes.yaml`` that disagrees with ``data.num_classes``. Label
values are mapped with the dataset's own lookup table (:func:`~hrnet.segmentation.datasets.apply_label_map`
rules), so what the check calls wrong is what training would stop on. Masks are always decoded (their
values are the point); ``level="quick"`` (what training runs first) reads image headers only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hrnet.datacheck import DataReport, add_check_data_verb, finish_check
from hrnet.engine.config import load_config
from hrnet.io import IMAGE_SUFFIXES, image_size
from hrnet.segmentation.config import SegConfig
from hrnet.segmentation.datasets import DATASETS, IGNORE_INDEX, identity_lut, read_classes_yaml, read_label

LEVELS = ("quick", "full")


def _folder_pairs(report: DataReport, root: Path, split: str) -> list[tuple[Path, Path]]:
    """(image, mask) pairs of the folder format (layout in :mod:`hrnet.segmentation.datasets`), recording
    images without a mask, masks without an image and names a split list gives that do not exist."""
    img_dir, mask_dir = root / "images", root / "masks"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            report.add("missing folder", str(d), f"the folder format needs {d.name}/")
    if not img_dir.is_dir():
        return []
    split_file = root / "splits" / f"{split}.txt"
    if split_file.is_file():
        images = []
        for stem in (ln.split()[0] for ln in split_file.read_text(encoding="utf-8").splitlines() if ln.strip()):
            found = [img_dir / f"{stem}{s}" for s in IMAGE_SUFFIXES if (img_dir / f"{stem}{s}").is_file()]
            if not found:
                report.add("missing image", str(img_dir / stem), f"listed in {split_file}")
            else:
                images.append(found[0])
    else:
        if (img_dir / split).is_dir():
            img_dir, mask_dir = img_dir / split, mask_dir / split
        images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if mask_dir.is_dir():
            stems = {p.stem for p in images}
            for mask in sorted(mask_dir.glob("*.png")):
                if mask.stem not in stems:
                    report.add("mask without image", str(mask), f"no image {mask.stem}.* in {img_dir}", "warning")
    if not images:
        report.add("no images", str(img_dir), f"split {split!r} has no images")
    pairs = []
    for image in images:
        mask = mask_dir / f"{image.stem}.png"
        if not mask.is_file():
            report.add("image without mask", str(image), f"expected {mask}")
        else:
            pairs.append((image, mask))
    return pairs


def _check_pair(report: DataReport, image: Path, mask: Path, lut: np.ndarray, num_classes: int, level: str) -> None:
    report.checked["images"] += 1
    try:
        size = image_size(image, decode=level == "full")
    except (OSError, ValueError) as err:
        report.add("unreadable image", str(image), str(err).split(": ", 1)[-1])
        size = None
    try:
        raw = read_label(mask)
    except (FileNotFoundError, ValueError) as err:
        report.add("unreadable mask", str(mask), str(err).split(": ", 1)[-1])
        return
    report.checked["masks"] += 1
    if size is not None and raw.shape != (size[1], size[0]):
        report.add(
            "mask size differs from image",
            str(mask),
            f"mask {raw.shape[1]}x{raw.shape[0]}, image {image.name} {size[0]}x{size[1]} (WxH)",
        )
    mapped = lut[raw]
    bad = mapped < 0
    if bad.any():
        values = np.unique(raw[bad])[:10].tolist()
        report.add(
            "label value outside the classes",
            str(mask),
            f"values {values} ({int(bad.sum())} pixels) are neither one of the {num_classes} classes "
            "nor the ignore index",
        )
    elif (mapped == IGNORE_INDEX).all():
        report.add("mask is all ignore", str(mask), "no labelled pixel (the image teaches nothing)", "warning")


def check_seg_data(cfg: SegConfig, level: str = "full") -> DataReport:
    """Check the training and validation splits of ``cfg`` (see the module docstring)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    d = cfg.data
    report = DataReport("seg", sources=[d.root])
    root = Path(d.root)
    splits = list(dict.fromkeys([d.train_split, d.val_split]))
    if d.dataset == "folder":
        try:
            spec = read_classes_yaml(root / "classes.yaml")
        except (FileNotFoundError, ValueError) as err:
            report.add("unusable classes.yaml", str(root / "classes.yaml"), str(err).split(": ", 1)[-1])
            return report
        if len(spec["names"]) != d.num_classes:
            report.add(
                "class count differs from the config",
                str(root / "classes.yaml"),
                f"{len(spec['names'])} names, data.num_classes is {d.num_classes}",
            )
        lut, num_classes = identity_lut(len(spec["names"]), spec["ignore_index"]), len(spec["names"])
        for split in splits:
            for image, mask in _folder_pairs(report, root, split):
                _check_pair(report, image, mask, lut, num_classes, level)
        return report
    if d.dataset not in DATASETS:
        report.add("unknown dataset", f"data.dataset={d.dataset}", f"expected one of {sorted(DATASETS)}")
        return report
    kwargs = {"label_suffix": d.label_suffix} if d.dataset == "cityscapes" else {}
    if d.dataset == "pascal_context":
        kwargs["num_classes"] = d.num_classes
    for split in splits:
        try:
            ds = DATASETS[d.dataset](d.root, split, **kwargs)
        except (FileNotFoundError, ValueError) as err:
            report.add("unusable split", f"{d.root} ({split})", str(err))
            continue
        for image, mask in ds.samples:
            _check_pair(report, image, mask, ds.label_lut, ds.num_classes, level)
    return report


def cmd_check_data(args: argparse.Namespace) -> int:
    """``hrnet seg check-data --config YAML``: exit 0 without errors, 1 with."""

    cfg = load_config(SegConfig, args.config, args.overrides)
    return finish_check(check_seg_data(cfg, level="quick" if args.quick else "full"), args)


def add_check_data(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``check-data`` under ``hrnet seg``."""
    return add_check_data_verb(
        sub,
        task="seg",
        func=cmd_check_data,
        example_config="configs/seg/cityscapes/w48.yaml",
        what="image / mask pairs, mask sizes and label values",
    )
