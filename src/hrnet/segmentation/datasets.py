"""Segmentation datasets: Cityscapes, PASCAL-Context, LIP and a generic folder format.

Folder layouts (``root`` is what the config's ``data.root`` names):

* **Cityscapes** (official): ``leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`` with
  ``gtFine/<split>/<city>/<name>_gtFine_labelIds.png``. Raw ids are mapped to the 19 train ids with the
  cityscapesScripts table (:data:`hrnet.segmentation.labels.CITYSCAPES_LABELS`); every other id becomes
  255 (ignored). ``label_suffix="labelTrainIds"`` reads ready-made train-id files instead.
* **PASCAL-Context** (the widely used 59/60-class export): ``JPEGImages/<id>.jpg``,
  ``SegmentationClassContext/<id>.png`` (8-bit, 0 = background, 1..59 = the classes of
  :data:`~hrnet.segmentation.labels.PASCAL_CONTEXT_CLASSES`), split lists ``train.txt`` / ``val.txt`` (one id a
  line) in ``root`` or ``root/ImageSets/SegmentationContext/``. With 59 classes the background is ignored
  (0 -> 255, c -> c - 1); with 60 classes 0 is the class "background" and values are kept.
* **LIP** (official): ``<split>_images/<id>.jpg`` + ``<split>_segmentations/<id>.png`` (8-bit, 0..19);
  an optional ``<split>_id.txt`` lists the ids, otherwise every image with a label is used. A horizontal
  flip swaps left/right arm, leg and shoe (14<->15, 16<->17, 18<->19).
* **Folder** (your own data): ``images/<stem>.<jpg|png|...>``, ``masks/<stem>.png`` and ``classes.yaml``
  with ``names: [...]``, optional ``colors: [[r, g, b], ...]`` and ``ignore_index`` (default 255). Optional
  ``splits/<split>.txt`` lists stems; without it, ``images/<split>/`` and ``masks/<split>/`` are tried,
  then every image in ``images/``.

Label files: 8-bit grayscale ("L") PNGs hold class values directly; palette ("P") PNGs are read as their
palette *indices* (how PASCAL-style masks store classes), never as colours; 16-bit PNGs are accepted when
every value fits in 0..255 and rejected with an error naming the file otherwise; RGB/RGBA labels are
rejected (convert colours to indices first). A label whose size differs from its image, a value that is
neither a class nor the ignore index, or a missing file raises ``ValueError``/``FileNotFoundError`` naming
the file(s) and the offending values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from hrnet.io import IMAGE_SUFFIXES, read_image
from hrnet.segmentation.labels import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    IGNORE_INDEX,
    LIP_CLASSES,
    LIP_FLIP_PAIRS,
    PASCAL_CONTEXT_CLASSES,
    cityscapes_id_to_train_id,
    default_palette,
)


class LabelError(ValueError):
    """A label file is unreadable, of the wrong kind or size, or holds values outside the classes."""


def read_label(path: str | Path) -> np.ndarray:
    """Read a label PNG as an int64 (H, W) array of raw values (palette PNGs -> indices; see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label file not found")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr", "HSV"):
                raise LabelError(
                    f"{path}: label image is {mode} (colour); expected a single-channel 8-bit class-index PNG "
                    "(grayscale or palette)"
                )
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise LabelError(f"{path}: cannot decode label image ({err})") from err
    if arr.ndim != 2:
        raise LabelError(f"{path}: expected a single-channel label, got array shape {arr.shape}")
    if mode == "F":
        raise LabelError(f"{path}: floating-point label image; expected integer class indices")
    if arr.dtype != np.uint8 and arr.dtype != bool:
        vmax, vmin = int(arr.max()), int(arr.min())
        if vmin < 0 or vmax > 255:
            raise LabelError(
                f"{path}: {mode} label with values up to {vmax} (min {vmin}); only values 0..255 are supported "
                "(16-bit labels are read when every value fits in 8 bits)"
            )
    return arr.astype(np.int64)


def apply_label_map(raw: np.ndarray, lut: np.ndarray, path: Path, num_classes: int) -> np.ndarray:
    """Map raw values through ``lut`` (-1 = invalid) and raise naming ``path`` and the bad raw values."""
    mapped = lut[raw]
    bad = mapped < 0
    if bad.any():
        values = np.unique(raw[bad])[:10].tolist()
        valid = np.flatnonzero(lut >= 0)
        raise LabelError(
            f"{path}: label values {values} ({int(bad.sum())} pixels) are neither one of the {num_classes} "
            f"classes nor ignored (valid raw values: {_ranges(valid)})"
        )
    return mapped


def _ranges(values: np.ndarray) -> str:
    """Compact text for sorted ints, e.g. ``0-18, 255``."""
    parts, start = [], None
    for i, v in enumerate(values.tolist()):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts)


def identity_lut(num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Lookup table keeping 0..C-1, sending the file's ignore value to 255, marking the rest invalid (-1).

    Inside the package the ignore index is always 255, whatever value the files use.
    """
    lut = np.full(256, -1, dtype=np.int64)
    lut[:num_classes] = np.arange(num_classes)
    lut[ignore_index] = IGNORE_INDEX
    return lut


class SegDataset(Dataset):
    """Base class: (image, label) file pairs -> validated arrays -> a transform -> a sample dict.

    A sample is ``{"image": (3,H,W) float, "label": (H,W) long, "index": int}``. ``transform(image, label,
    rng)`` receives a generator seeded from (seed, epoch, index) so augmentation is reproducible.
    ``repeat`` > 1 lists every file that many times per epoch (tiny datasets, smoke runs).
    """

    name = "segmentation"

    def __init__(
        self,
        samples: Sequence[tuple[Path, Path]],
        *,
        num_classes: int,
        class_names: Sequence[str],
        palette: Sequence[Sequence[int]] | None = None,
        label_lut: np.ndarray | None = None,
        flip_pairs: Sequence[Sequence[int]] = (),
        transform=None,
        seed: int = 0,
        repeat: int = 1,
    ):
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        self.samples = [(Path(i), Path(lb)) for i, lb in samples]
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self.palette = [tuple(int(v) for v in c) for c in (palette or default_palette(num_classes))]
        self.ignore_index = IGNORE_INDEX
        self.label_lut = identity_lut(num_classes) if label_lut is None else label_lut
        self.flip_pairs = [tuple(p) for p in flip_pairs]
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        self.repeat = repeat

    def __len__(self) -> int:
        return len(self.samples) * self.repeat

    def set_epoch(self, epoch: int) -> None:
        """Called by the engine so augmentation differs per epoch yet is reproducible."""
        self.epoch = int(epoch)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The RGB image (H,W,3) uint8 and train-id label (H,W) int64 of sample ``index``, validated."""
        image_path, label_path = self.samples[index % len(self.samples)]
        image = read_image(image_path)
        raw = read_label(label_path)
        if raw.shape != image.shape[:2]:
            raise LabelError(
                f"{label_path}: label size {raw.shape[1]}x{raw.shape[0]} (WxH) differs from image {image_path} "
                f"size {image.shape[1]}x{image.shape[0]}"
            )
        return image, apply_label_map(raw, self.label_lut, label_path, self.num_classes)

    def __getitem__(self, index: int) -> dict:
        image, label = self.load(index)
        if self.transform is None:
            return {"image": image, "label": label, "index": index}
        rng = np.random.default_rng([self.seed, self.epoch, index])
        x, y = self.transform(image, label, rng)
        return {"image": x, "label": y, "index": torch.tensor(index)}


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: {what} folder not found")
    return path


def _pair_or_raise(image: Path, label: Path) -> tuple[Path, Path]:
    if not label.is_file():
        raise FileNotFoundError(f"{label}: label file for image {image} not found")
    return image, label


class CityscapesDataset(SegDataset):
    """Cityscapes fine annotations, 19 train ids (see module doc for the layout)."""

    name = "cityscapes"

    def __init__(self, root: str | Path, split: str = "train", label_suffix: str = "labelIds", **kwargs):
        root = Path(root)
        img_dir = _require_dir(root / "leftImg8bit" / split, "Cityscapes image")
        samples = []
        for image in sorted(img_dir.glob("*/*_leftImg8bit.png")):
            stem = image.name[: -len("_leftImg8bit.png")]
            label = root / "gtFine" / split / image.parent.name / f"{stem}_gtFine_{label_suffix}.png"
            samples.append(_pair_or_raise(image, label))
        if not samples:
            raise FileNotFoundError(f"{img_dir}: no *_leftImg8bit.png images found")
        if label_suffix == "labelIds":
            lut = cityscapes_id_to_train_id()
        elif label_suffix == "labelTrainIds":
            lut = identity_lut(19)
        else:
            raise ValueError(f"label_suffix must be 'labelIds' or 'labelTrainIds', got {label_suffix!r}")
        super().__init__(
            samples,
            num_classes=19,
            class_names=CITYSCAPES_CLASSES,
            palette=CITYSCAPES_PALETTE,
            label_lut=lut,
            **kwargs,
        )


def _read_ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


class PascalContextDataset(SegDataset):
    """PASCAL-Context in 59-class (background ignored) or 60-class (background kept) mode."""

    name = "pascal_context"

    def __init__(self, root: str | Path, split: str = "train", num_classes: int = 59, **kwargs):
        root = Path(root)
        if num_classes not in (59, 60):
            raise ValueError(f"PASCAL-Context has 59 or 60 classes, got {num_classes}")
        candidates = [root / f"{split}.txt", root / "ImageSets" / "SegmentationContext" / f"{split}.txt"]
        split_file = next((p for p in candidates if p.is_file()), None)
        if split_file is None:
            raise FileNotFoundError(f"PASCAL-Context split list not found; looked for {[str(p) for p in candidates]}")
        img_dir = _require_dir(root / "JPEGImages", "PASCAL-Context image")
        lab_dir = _require_dir(root / "SegmentationClassContext", "PASCAL-Context label")
        samples = [_pair_or_raise(img_dir / f"{i}.jpg", lab_dir / f"{i}.png") for i in _read_ids(split_file)]
        lut = np.full(256, -1, dtype=np.int64)
        lut[IGNORE_INDEX] = IGNORE_INDEX
        if num_classes == 59:
            lut[0] = IGNORE_INDEX
            lut[1:60] = np.arange(59)
            names = PASCAL_CONTEXT_CLASSES
        else:
            lut[:60] = np.arange(60)
            names = ("background", *PASCAL_CONTEXT_CLASSES)
        super().__init__(samples, num_classes=num_classes, class_names=names, label_lut=lut, **kwargs)


class LIPDataset(SegDataset):
    """LIP human parsing, 20 classes with left/right swaps under flip."""

    name = "lip"

    def __init__(self, root: str | Path, split: str = "train", **kwargs):
        root = Path(root)
        img_dir = _require_dir(root / f"{split}_images", "LIP image")
        lab_dir = _require_dir(root / f"{split}_segmentations", "LIP label")
        id_file = root / f"{split}_id.txt"
        if id_file.is_file():
            samples = [_pair_or_raise(img_dir / f"{i}.jpg", lab_dir / f"{i}.png") for i in _read_ids(id_file)]
        else:
            samples = [
                (img, lab_dir / f"{img.stem}.png")
                for img in sorted(img_dir.iterdir())
                if img.suffix.lower() in IMAGE_SUFFIXES and (lab_dir / f"{img.stem}.png").is_file()
            ]
        if not samples:
            raise FileNotFoundError(f"{img_dir}: no images with labels in {lab_dir}")
        kwargs.setdefault("flip_pairs", LIP_FLIP_PAIRS)
        super().__init__(samples, num_classes=20, class_names=LIP_CLASSES, **kwargs)


def read_classes_yaml(path: str | Path) -> dict:
    """Parse a folder dataset's ``classes.yaml`` into ``{"names", "colors", "ignore_index"}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: classes file not found")
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict) or not isinstance(spec.get("names"), list) or not spec["names"]:
        raise ValueError(f"{path}: expected a mapping with a non-empty 'names' list")
    names = [str(n) for n in spec["names"]]
    colors = spec.get("colors")
    if colors is not None and (len(colors) != len(names) or any(len(c) != 3 for c in colors)):
        raise ValueError(f"{path}: 'colors' must hold one [r, g, b] per class ({len(names)})")
    ignore = int(spec.get("ignore_index", IGNORE_INDEX))
    if not len(names) <= ignore <= 255:
        raise ValueError(f"{path}: ignore_index {ignore} must lie in {len(names)}..255 (not a class index)")
    unknown = set(spec) - {"names", "colors", "ignore_index"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; valid: names, colors, ignore_index")
    return {"names": names, "colors": colors, "ignore_index": ignore}


class FolderDataset(SegDataset):
    """Bring-your-own data: ``images/`` + ``masks/`` + ``classes.yaml`` (see module doc)."""

    name = "folder"

    def __init__(self, root: str | Path, split: str = "train", **kwargs):
        root = Path(root)
        spec = read_classes_yaml(root / "classes.yaml")
        img_dir = _require_dir(root / "images", "image")
        mask_dir = _require_dir(root / "masks", "mask")
        split_file = root / "splits" / f"{split}.txt"
        if split_file.is_file():
            stems = _read_ids(split_file)
            images = []
            for stem in stems:
                found = [img_dir / f"{stem}{s}" for s in IMAGE_SUFFIXES if (img_dir / f"{stem}{s}").is_file()]
                if not found:
                    raise FileNotFoundError(f"{img_dir}: no image for '{stem}' listed in {split_file}")
                images.append(found[0])
        else:
            if (img_dir / split).is_dir():
                img_dir, mask_dir = img_dir / split, mask_dir / split
            images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise FileNotFoundError(f"{img_dir}: no images found")
        samples = [_pair_or_raise(img, mask_dir / f"{img.stem}.png") for img in images]
        super().__init__(
            samples,
            num_classes=len(spec["names"]),
            class_names=spec["names"],
            palette=spec["colors"],
            label_lut=identity_lut(len(spec["names"]), spec["ignore_index"]),
            **kwargs,
        )


DATASETS = {
    "cityscapes": CityscapesDataset,
    "pascal_context": PascalContextDataset,
    "lip": LIPDataset,
    "folder": FolderDataset,
}
