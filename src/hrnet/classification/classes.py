"""Class names: the 1000 ImageNet-1k classes shipped with the package, or a user's own list.

The shipped file ``imagenet_classes.txt`` holds one ``wnid<TAB>name`` line per class in the standard
sorted-wnid order (index 0 = n01440764 tench), the order of ImageNet folders, torchvision, timm and the
official HRNet checkpoints, so class index ``i`` of an ImageNet model is line ``i``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from hrnet.atomic import write_text

IMAGENET_NUM_CLASSES = 1000


def parse_class_lines(text: str, source: str) -> list[tuple[str, str]]:
    """Parse ``wnid<TAB>name`` or ``name`` lines into (id, name) pairs; ``source`` names the file in errors."""
    pairs: list[tuple[str, str]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\t" in line:
            key, name = (part.strip() for part in line.split("\t", 1))
        else:
            key, name = line, line
        if not name:
            raise ValueError(f"{source}:{lineno}: empty class name")
        pairs.append((key, name))
    if not pairs:
        raise ValueError(f"{source}: holds no class names")
    return pairs


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """The 1000 ImageNet-1k classes as (wnid, name), index = class index."""
    text = resources.files("hrnet.classification").joinpath("imagenet_classes.txt").read_text("utf-8")
    pairs = parse_class_lines(text, "imagenet_classes.txt")
    if len(pairs) != IMAGENET_NUM_CLASSES:
        raise RuntimeError(f"imagenet_classes.txt: expected 1000 classes, found {len(pairs)} (broken install?)")
    return tuple(pairs)


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names (human readable), index = class index."""
    return [name for _, name in imagenet_classes()]


def read_classes(path: str | Path) -> list[tuple[str, str]]:
    """(id, name) pairs from a text file: one class per line, ``name`` or ``id<TAB>name``, in index order.

    The id is what an ImageFolder calls the class (its folder name); without a tab it equals the name.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: class-name file not found")
    return parse_class_lines(path.read_text("utf-8"), str(path))


def read_class_names(path: str | Path) -> list[str]:
    """The readable class names of a class file (see :func:`read_classes`)."""
    return [name for _, name in read_classes(path)]


def write_classes(classes: list[tuple[str, str]], path: str | Path) -> None:
    """Write ``id<TAB>name`` lines atomically, so a trained model's classes travel with its weights."""

    for key, name in classes:
        if "\t" in key or "\n" in key or "\n" in name:
            raise ValueError(f"class id/name may not hold tabs or newlines: {key!r}, {name!r}")
    write_text(path, "".join(f"{key}\t{name}\n" for key, name in classes))
