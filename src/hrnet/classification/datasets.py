"""Classification datasets: an ImageFolder tree (``root/<class>/<image>``) or a list file.

Errors that make a dataset wrong are raised at construction, naming the file or folder: a missing
root, a root without class folders, a class folder with no images, a list line that does not parse,
a label out of range. An image that cannot be decoded is only found when it is read; by default
(``bad_images="skip"``) it is logged with its path and dropped from the batch by :func:`collate_skip`,
which also counts it, so training goes on and evaluation reports how many images it could not score
(``skipped``). ``bad_images="error"`` raises :class:`hrnet.io.ImageReadError` instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from hrnet.io import IMAGE_SUFFIXES, ImageReadError, read_image

log = logging.getLogger(__name__)
BAD_IMAGE_POLICIES = ("skip", "error")


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


class ClassificationDataset(Dataset):
    """(image, label) pairs; ``transform`` maps a PIL RGB image to a tensor.

    ``__getitem__`` returns ``(tensor, label)``, or ``None`` for an unreadable image under the
    ``skip`` policy (see :func:`collate_skip`).
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path, int]],
        classes: Sequence[str],
        transform: Callable[[Image.Image], Any] | None = None,
        bad_images: str = "skip",
        source: str = "",
    ) -> None:
        if bad_images not in BAD_IMAGE_POLICIES:
            raise ValueError(f"bad_images must be one of {BAD_IMAGE_POLICIES}, got {bad_images!r}")
        if not samples:
            raise ValueError(f"{source or 'dataset'}: holds no images")
        self.samples = list(samples)
        self.classes = list(classes)
        self.transform = transform
        self.bad_images = bad_images
        self.source = source

    @property
    def targets(self) -> list[int]:
        """The label of every sample, in order."""
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Image.Image:
        """The PIL RGB image of sample ``index``; raises :class:`ImageReadError` naming the file."""
        return Image.fromarray(read_image(self.samples[index][0]))

    def __getitem__(self, index: int) -> tuple[Any, int] | None:
        path, label = self.samples[index]
        try:
            image = self.load(index)
        except ImageReadError as err:
            if self.bad_images == "error":
                raise
            log.warning("skipping unreadable image %s", err)
            return None
        return (self.transform(image) if self.transform is not None else image), label


def scan_image_folder(
    root: str | Path, classes: Sequence[str] | None = None
) -> tuple[list[tuple[Path, int]], list[str]]:
    """Samples and class names of ``root/<class>/**/<image>``; class index = position in sorted names.

    ``classes`` fixes the class list (e.g. a validation split must use the training split's): a class
    folder not in it is an error, a class of it without a folder is allowed (that class has no samples).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    folders = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not folders:
        raise ValueError(f"{root}: no class folders (expected the ImageFolder layout root/<class>/<image>)")
    names = list(classes) if classes is not None else folders
    index = {name: i for i, name in enumerate(names)}
    unknown = [f for f in folders if f not in index]
    if unknown:
        raise ValueError(f"{root}: class folders {unknown[:5]} are not among the model's {len(names)} classes")
    samples: list[tuple[Path, int]] = []
    for folder in folders:
        found = []
        for dirpath, dirnames, filenames in os.walk(root / folder, followlinks=True):
            dirnames.sort()
            found += [Path(dirpath) / f for f in sorted(filenames) if _is_image(f) and not f.startswith(".")]
        if not found:
            raise ValueError(f"{root / folder}: class folder holds no images (suffixes {', '.join(IMAGE_SUFFIXES)})")
        samples += [(p, index[folder]) for p in found]
    return samples, names


def scan_image_list(
    list_file: str | Path, root: str | Path | None = None, num_classes: int | None = None
) -> list[tuple[Path, int]]:
    """Samples of a list file: one ``relative/path label`` per line, relative to ``root`` (default: its folder)."""
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"{list_file}: image list not found")
    base = Path(root) if root is not None else list_file.parent
    samples: list[tuple[Path, int]] = []
    for lineno, raw in enumerate(list_file.read_text("utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{list_file}:{lineno}: expected '<image path> <class index>', got {raw!r}")
        label = int(parts[1])
        if label < 0 or (num_classes is not None and label >= num_classes):
            raise ValueError(f"{list_file}:{lineno}: class index {label} outside [0, {num_classes})")
        path = base / parts[0]
        if not path.is_file():
            raise FileNotFoundError(f"{list_file}:{lineno}: image {path} not found")
        samples.append((path, label))
    if not samples:
        raise ValueError(f"{list_file}: image list holds no images")
    return samples


def build_dataset(
    path: str | Path,
    transform: Callable[[Image.Image], Any] | None = None,
    classes: Sequence[str] | None = None,
    num_classes: int | None = None,
    bad_images: str = "skip",
) -> ClassificationDataset:
    """A folder gives an ImageFolder dataset, a file a list dataset (its classes are numbered 0..C-1)."""
    path = Path(path)
    if path.is_dir():
        samples, names = scan_image_folder(path, classes)
    else:
        samples = scan_image_list(path, num_classes=num_classes)
        count = num_classes if num_classes is not None else max(label for _, label in samples) + 1
        names = list(classes) if classes is not None else [str(i) for i in range(count)]
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(f"{path}: dataset has {len(names)} classes but the model has {num_classes}")
    return ClassificationDataset(samples, names, transform, bad_images, source=str(path))


def collate_skip(batch: list[tuple[Tensor, int] | None]) -> tuple[Tensor, Tensor, int]:
    """Stack the readable samples; returns ``(images, labels, number of skipped unreadable images)``."""
    good = [b for b in batch if b is not None]
    skipped = len(batch) - len(good)
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), skipped
    images = torch.stack([b[0] for b in good])
    labels = torch.tensor([b[1] for b in good], dtype=torch.long)
    return images, labels, skipped
