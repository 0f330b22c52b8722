"""Image transforms of the ImageNet recipe (PIL RGB image -> normalised float tensor (3, H, W)).

Training: random resized crop + horizontal flip (the augmentation of He et al., which the paper adopts);
evaluation: resize the shorter side to ``resize`` (256) and take the centre ``crop`` (224), the
single-crop testing of the paper. Resizing works on PIL images, as the official code, torchvision's
references and timm do, so the same pixels reach the network as with their checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from hrnet.io import IMAGENET_MEAN, IMAGENET_STD

_INTERP = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


def _interp(name: str) -> InterpolationMode:
    if name not in _INTERP:
        raise ValueError(f"interpolation must be one of {sorted(_INTERP)}, got {name!r}")
    return _INTERP[name]


def _to_normalised_tensor() -> list[Callable]:
    return [T.PILToTensor(), T.ToDtype(torch.float32, scale=True), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def train_transform(
    crop: int = 224, scale: tuple[float, float] = (0.08, 1.0), hflip: float = 0.5, interpolation: str = "bilinear"
) -> Callable[[Image.Image], torch.Tensor]:
    """RandomResizedCrop(``crop``, ``scale``) + horizontal flip with probability ``hflip`` + normalisation."""
    if not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(f"crop scale must satisfy 0 < min <= max <= 1, got {tuple(scale)}")
    ops: list[Callable] = [T.RandomResizedCrop(crop, scale=tuple(scale), interpolation=_interp(interpolation))]
    if hflip > 0:
        ops.append(T.RandomHorizontalFlip(hflip))
    return T.Compose(ops + _to_normalised_tensor())


def eval_transform(
    crop: int = 224, resize: int = 256, interpolation: str = "bilinear"
) -> Callable[[Image.Image], torch.Tensor]:
    """Resize the shorter side to ``resize``, centre-crop ``crop`` x ``crop``, normalise."""
    if resize < crop:
        raise ValueError(f"eval resize ({resize}) must be >= the crop ({crop})")
    return T.Compose(
        [T.Resize(resize, interpolation=_interp(interpolation)), T.CenterCrop(crop), *_to_normalised_tensor()]
    )
