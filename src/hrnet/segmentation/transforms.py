"""Image/label transforms for segmentation: pure functions on numpy arrays, plus the two pipelines.

Training follows the official HRNet recipe: (optional fixed resize) -> random scale of the long side ->
pad to the crop size (image with 0, label with the ignore index) -> random crop -> random horizontal
flip (swapping left/right classes, e.g. LIP arms/legs/shoes) -> ImageNet normalisation. Evaluation only
resizes (optionally) and normalises; the label keeps its original size so metrics are measured at the
resolution of the annotation. Randomness comes from an explicit ``numpy.random.Generator`` so a dataset
can make augmentation a pure function of (seed, epoch, index).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from hrnet.io import IMAGENET_MEAN, IMAGENET_STD


def resize_pair(image: np.ndarray, label: np.ndarray | None, size_hw: Sequence[int]):
    """Resize an image bilinearly and its label with nearest neighbour to ``(H, W)``."""
    h, w = int(size_hw[0]), int(size_hw[1])
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    if label is not None:
        label = cv2.resize(label.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return image, label


def pad_pair(image: np.ndarray, label: np.ndarray, size_hw: Sequence[int], ignore_index: int):
    """Pad bottom/right up to at least ``size_hw``: image with 0, label with ``ignore_index``."""
    h, w = label.shape
    ph, pw = max(int(size_hw[0]) - h, 0), max(int(size_hw[1]) - w, 0)
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        label = np.pad(label, ((0, ph), (0, pw)), constant_values=ignore_index)
    return image, label


def random_crop(image: np.ndarray, label: np.ndarray, size_hw: Sequence[int], rng: np.random.Generator):
    """Crop a random ``size_hw`` window (inputs must be at least that large; pad first)."""
    ch, cw = int(size_hw[0]), int(size_hw[1])
    h, w = label.shape
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    return image[y : y + ch, x : x + cw], label[y : y + ch, x : x + cw]


def hflip_label(label: np.ndarray, flip_pairs: Sequence[Sequence[int]] = ()) -> np.ndarray:
    """Mirror a label map and swap the left/right classes given by ``flip_pairs``."""
    out = label[:, ::-1].copy()
    if flip_pairs:
        swapped = out.copy()
        for a, b in flip_pairs:
            swapped[out == a] = b
            swapped[out == b] = a
        out = swapped
    return out


def to_tensor(image: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> normalised float tensor (3, H, W)."""
    x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


@dataclass
class TrainTransform:
    """The official training augmentation; ``crop_size`` and ``resize_to`` are (H, W).

    ``base_size`` > 0 sets the long side at scale 1 (Cityscapes 2048); 0 keeps the image size.
    """

    crop_size: Sequence[int]
    base_size: int = 0
    scale_range: Sequence[float] = (0.5, 2.0)
    flip: bool = True
    flip_pairs: Sequence[Sequence[int]] = ()
    resize_to: Sequence[int] | None = None
    ignore_index: int = 255
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        if self.resize_to:
            image, label = resize_pair(image, label, self.resize_to)
        lo, hi = float(self.scale_range[0]), float(self.scale_range[1])
        scale = lo if hi <= lo else float(rng.uniform(lo, hi))
        h, w = label.shape
        long_side = (self.base_size if self.base_size > 0 else max(h, w)) * scale
        ratio = long_side / max(h, w)
        if abs(ratio - 1.0) > 1e-9:
            image, label = resize_pair(image, label, (max(1, round(h * ratio)), max(1, round(w * ratio))))
        image, label = pad_pair(image, label, self.crop_size, self.ignore_index)
        image, label = random_crop(image, label, self.crop_size, rng)
        if self.flip and rng.random() < 0.5:
            image = image[:, ::-1]
            label = hflip_label(label, self.flip_pairs)
        return to_tensor(image, self.mean, self.std), torch.from_numpy(np.ascontiguousarray(label)).long()


@dataclass
class EvalTransform:
    """Evaluation: optional fixed resize of the image only, then normalisation; the label is untouched."""

    resize_to: Sequence[int] | None = None
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator | None = None):
        if self.resize_to:
            image, _ = resize_pair(image, None, self.resize_to)
        return to_tensor(image, self.mean, self.std), torch.from_numpy(np.ascontiguousarray(label)).long()
