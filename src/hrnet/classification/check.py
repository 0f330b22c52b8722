"""``hrnet cls check-data``: every problem of a classification dataset counted at once.

ImageFolder trees (``root/<class>/<image>``): empty class folders, files that are not images, validation
classes the training split lacks, and (``level="full"``) images that cannot be decoded; list files
(``path class_index`` per line): lines that do not parse, class indices out of range, missing files.
A dataset with an empty class or an unreadable file trains anyway (the loader skips bad images), but the
model then never sees that class, so these are reported before training rather than discovered after it.
``level="quick"`` (what training runs first) checks the structure only and decodes nothing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hrnet.classification.config import ClsConfig
from hrnet.datacheck import DataReport, add_check_data_verb, finish_check
from hrnet.engine.config import load_config
from hrnet.io import IMAGE_SUFFIXES, ImageReadError, read_image

LEVELS = ("quick", "full")


def _decode(report: DataReport, path: Path, level: str) -> None:
    report.checked["images"] += 1
    if level != "full":
        return
    try:
        read_image(path)
    except ImageReadError as err:
        report.add("unreadable image", str(path), str(err).split(": ", 1)[-1])


def _check_folder(report: DataReport, root: Path, level: str, classes: list[str] | None) -> list[str]:
    """Check an ImageFolder tree; returns its class names (sorted folder names)."""
    folders = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not folders:
        report.add("no class folders", str(root), "expected the ImageFolder layout root/<class>/<image>")
        return []
    if classes is not None:
        for name in folders:
            if name not in classes:
                report.add(
                    "class not in the training split", str(root / name), f"the training split has no folder {name!r}"
                )
    for name in folders:
        images, others = [], []
        for dirpath, dirnames, filenames in os.walk(root / name, followlinks=True):
            dirnames.sort()
            for f in sorted(filenames):
                if f.startswith("."):
                    continue
                (images if f.lower().endswith(IMAGE_SUFFIXES) else others).append(Path(dirpath) / f)
        if not images:
            report.add("empty class", str(root / name), "the class folder holds no images")
        for other in others:
            report.add("not an image file (ignored)", str(other), f"suffix {other.suffix or '(none)'}", "note")
        for image in images:
            _decode(report, image, level)
    return folders


def _check_list(report: DataReport, list_file: Path, level: str, num_classes: int) -> None:
    seen: set[int] = set()
    for lineno, raw in enumerate(list_file.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{list_file}:{lineno}"
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            report.add("bad list line", where, f"expected '<image path> <class index>', got {raw!r}")
            continue
        label = int(parts[1])
        if not 0 <= label < num_classes:
            report.add("class index out of range", where, f"{label} outside [0, {num_classes})")
            continue
        seen.add(label)
        path = list_file.parent / parts[0]
        if not path.is_file():
            report.add("missing image", str(path), f"listed at {where}")
            continue
        _decode(report, path, level)
    missing = sorted(set(range(num_classes)) - seen)
    if missing:
        report.add(
            "empty class",
            str(list_file),
            f"{len(missing)} of {num_classes} classes have no image, e.g. {missing[:5]}",
            "warning",
        )


def check_cls_data(cfg: ClsConfig, level: str = "full") -> DataReport:
    """Check ``data.train`` and ``data.val`` of ``cfg`` (see the module docstring)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    d = cfg.data
    report = DataReport("cls", sources=[p for p in (d.train, d.val) if p])
    train_classes: list[str] | None = None
    for i, spec in enumerate(dict.fromkeys(p for p in (d.train, d.val) if p)):  # a split named twice: once
        path = Path(spec)
        if path.is_dir():
            names = _check_folder(report, path, level, train_classes)
            if i == 0:
                train_classes = names
                if names and len(names) != cfg.model.num_classes:
                    report.add(
                        "class count differs from the config",
                        str(path),
                        f"{len(names)} class folders, model.num_classes is {cfg.model.num_classes}",
                    )
        elif path.is_file():
            _check_list(report, path, level, cfg.model.num_classes)
        else:
            report.add("missing dataset", str(path), "neither a folder nor a list file")
    return report


def cmd_check_data(args: argparse.Namespace) -> int:
    """``hrnet cls check-data --config YAML``: exit 0 without errors, 1 with."""

    cfg = load_config(ClsConfig, args.config, args.overrides)
    return finish_check(check_cls_data(cfg, level="quick" if args.quick else "full"), args)


def add_check_data(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``check-data`` under ``hrnet cls``."""
    return add_check_data_verb(
        sub,
        task="cls",
        func=cmd_check_data,
        example_config="configs/cls/imagenet/hrnet_w18.yaml",
        what="class folders or list files, and unreadable images",
    )
