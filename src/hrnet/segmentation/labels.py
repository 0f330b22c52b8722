"""Class tables of the segmentation datasets: names, colours, id maps and left/right flip pairs.

These are facts about the datasets (the Cityscapes ``labelId -> trainId`` table from the
cityscapesScripts definition, the 59 PASCAL-Context classes, the 20 LIP classes), kept as plain
tuples so every part of the task (datasets, loss, predict, legend) reads the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255


@dataclass(frozen=True)
class CityscapesLabel:
    """One row of the Cityscapes label definition: raw id, name, train id (255 = ignored), colour."""

    id: int
    name: str
    train_id: int
    color: tuple[int, int, int]


# The 34 raw ids of the gtFine ``_labelIds`` images (0..33) plus the licence plate (-1, never in a file).
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel(0, "unlabeled", 255, (0, 0, 0)),
    CityscapesLabel(1, "ego vehicle", 255, (0, 0, 0)),
    CityscapesLabel(2, "rectification border", 255, (0, 0, 0)),
    CityscapesLabel(3, "out of roi", 255, (0, 0, 0)),
    CityscapesLabel(4, "static", 255, (0, 0, 0)),
    CityscapesLabel(5, "dynamic", 255, (111, 74, 0)),
    CityscapesLabel(6, "ground", 255, (81, 0, 81)),
    CityscapesLabel(7, "road", 0, (128, 64, 128)),
    CityscapesLabel(8, "sidewalk", 1, (244, 35, 232)),
    CityscapesLabel(9, "parking", 255, (250, 170, 160)),
    CityscapesLabel(10, "rail track", 255, (230, 150, 140)),
    CityscapesLabel(11, "building", 2, (70, 70, 70)),
    CityscapesLabel(12, "wall", 3, (102, 102, 156)),
    CityscapesLabel(13, "fence", 4, (190, 153, 153)),
    CityscapesLabel(14, "guard rail", 255, (180, 165, 180)),
    CityscapesLabel(15, "bridge", 255, (150, 100, 100)),
    CityscapesLabel(16, "tunnel", 255, (150, 120, 90)),
    CityscapesLabel(17, "pole", 5, (153, 153, 153)),
    CityscapesLabel(18, "polegroup", 255, (153, 153, 153)),
    CityscapesLabel(19, "traffic light", 6, (250, 170, 30)),
    CityscapesLabel(20, "traffic sign", 7, (220, 220, 0)),
    CityscapesLabel(21, "vegetation", 8, (107, 142, 35)),
    CityscapesLabel(22, "terrain", 9, (152, 251, 152)),
    CityscapesLabel(23, "sky", 10, (70, 130, 180)),
    CityscapesLabel(24, "person", 11, (220, 20, 60)),
    CityscapesLabel(25, "rider", 12, (255, 0, 0)),
    CityscapesLabel(26, "car", 13, (0, 0, 142)),
    CityscapesLabel(27, "truck", 14, (0, 0, 70)),
    CityscapesLabel(28, "bus", 15, (0, 60, 100)),
    CityscapesLabel(29, "caravan", 255, (0, 0, 90)),
    CityscapesLabel(30, "trailer", 255, (0, 0, 110)),
    CityscapesLabel(31, "train", 16, (0, 80, 100)),
    CityscapesLabel(32, "motorcycle", 17, (0, 0, 230)),
    CityscapesLabel(33, "bicycle", 18, (119, 11, 32)),
    CityscapesLabel(-1, "license plate", 255, (0, 0, 142)),
)

CITYSCAPES_CLASSES: tuple[str, ...] = tuple(
    lab.name for lab in sorted((x for x in CITYSCAPES_LABELS if x.train_id != 255), key=lambda x: x.train_id)
)
CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    lab.color for lab in sorted((x for x in CITYSCAPES_LABELS if x.train_id != 255), key=lambda x: x.train_id)
)

# Per-class loss weights of the official HRNet Cityscapes training code (train-id order).
CITYSCAPES_CLASS_WEIGHTS: tuple[float, ...] = (
    0.8373,
    0.918,
    0.866,
    1.0345,
    1.0166,
    0.9969,
    0.9754,
    1.0489,
    0.8786,
    1.0023,
    0.9539,
    0.9843,
    1.1116,
    0.9037,
    1.0865,
    1.0955,
    1.0865,
    1.1529,
    1.0507,
)

# PASCAL-Context, 59 object/stuff classes (label values 1..59 in the PNGs; 0 is background).
PASCAL_CONTEXT_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bag",
    "bed",
    "bedclothes",
    "bench",
    "bicycle",
    "bird",
    "boat",
    "book",
    "bottle",
    "building",
    "bus",
    "cabinet",
    "car",
    "cat",
    "ceiling",
    "chair",
    "cloth",
    "computer",
    "cow",
    "cup",
    "curtain",
    "dog",
    "door",
    "fence",
    "floor",
    "flower",
    "food",
    "grass",
    "ground",
    "horse",
    "keyboard",
    "light",
    "motorbike",
    "mountain",
    "mouse",
    "person",
    "plate",
    "platform",
    "pottedplant",
    "road",
    "rock",
    "sheep",
    "shelves",
    "sidewalk",
    "sign",
    "sky",
    "snow",
    "sofa",
    "table",
    "track",
    "train",
    "tree",
    "truck",
    "tvmonitor",
    "wall",
    "water",
    "window",
    "wood",
)

# LIP human parsing, 20 classes (0 = background).
LIP_CLASSES: tuple[str, ...] = (
    "background",
    "hat",
    "hair",
    "glove",
    "sunglasses",
    "upper-clothes",
    "dress",
    "coat",
    "socks",
    "pants",
    "jumpsuits",
    "scarf",
    "skirt",
    "face",
    "left-arm",
    "right-arm",
    "left-leg",
    "right-leg",
    "left-shoe",
    "right-shoe",
)
# Classes that trade places when the image is mirrored.
LIP_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((14, 15), (16, 17), (18, 19))


def cityscapes_id_to_train_id() -> np.ndarray:
    """A 256-entry lookup table: raw ``labelId`` -> train id; ids outside 0..33 map to -1 (invalid)."""
    lut = np.full(256, -1, dtype=np.int64)
    for lab in CITYSCAPES_LABELS:
        if lab.id >= 0:
            lut[lab.id] = lab.train_id
    return lut


def default_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """Distinct colours for ``num_classes`` classes: the bit-interleaving scheme of PASCAL VOC colour maps."""
    colours = []
    for index in range(num_classes):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return colours


DATASET_PRESETS = ("cityscapes", "pascal_context59", "pascal_context60", "lip")


def dataset_classes(name: str) -> tuple[list[str], list[tuple[int, int, int]], list[tuple[int, int]]]:
    """Class names, colours and left/right flip pairs of a built-in dataset (one of ``DATASET_PRESETS``)."""
    if name == "cityscapes":
        return list(CITYSCAPES_CLASSES), [tuple(c) for c in CITYSCAPES_PALETTE], []
    if name in ("pascal_context59", "pascal_context60"):
        names = list(PASCAL_CONTEXT_CLASSES) if name.endswith("59") else ["background", *PASCAL_CONTEXT_CLASSES]
        return names, default_palette(len(names)), []
    if name == "lip":
        return list(LIP_CLASSES), default_palette(len(LIP_CLASSES)), [tuple(p) for p in LIP_FLIP_PAIRS]
    raise ValueError(f"unknown dataset preset {name!r}; choose from {list(DATASET_PRESETS)}")
