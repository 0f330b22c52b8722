"""Detection transforms: the model-side resize / normalise / batch, and the training-side flip.

Resizing to "shorter side 800, longer side at most 1333" (Section 6), normalisation and padding the
batch to a multiple of 32 happen inside the model, in torchvision's ``GeneralizedRCNNTransform``, which
also maps the predictions back to the original image. So training, evaluation and ``predict`` share one
path and every dataset sample stays at its original size. :class:`DetTransform` adds a BGR option: the
R-CNN checkpoints of every source (ours, HRNet-Object-Detection, mmdet) take RGB, and only FCOS checkpoints
of HRNet-FCOS / mmdet and users' own BGR-trained models take BGR (:mod:`hrnet.detection.conventions`).

The dataset side only flips (the paper's "standard horizontal flipping"); multi-scale training is a list
of shorter sides, one drawn per batch by the model transform.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from hrnet.io import IMAGENET_MEAN, IMAGENET_STD

MIN_SIZE = 800
MAX_SIZE = 1333


class DetTransform(GeneralizedRCNNTransform):
    """``GeneralizedRCNNTransform`` that can feed the network BGR (``bgr=True``) for BGR-trained weights
    (FCOS files of HRNet-FCOS / mmdet, or your own; the official and mmdet R-CNN checkpoints take RGB).

    Images come in as RGB floats in [0, 1]; the channel flip happens before the normalisation, so
    ``image_mean`` / ``image_std`` are given in the order the network saw them.
    """

    def __init__(
        self,
        min_size: int | Sequence[int] = MIN_SIZE,
        max_size: int = MAX_SIZE,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        bgr: bool = False,
        size_divisible: int = 32,
    ) -> None:
        sizes = (min_size,) if isinstance(min_size, int) else tuple(int(s) for s in min_size)
        super().__init__(sizes, max_size, list(image_mean), list(image_std), size_divisible=size_divisible)
        self.bgr = bgr

    def normalize(self, image: Tensor) -> Tensor:
        if self.bgr:
            image = image.flip(0)
        return super().normalize(image)


def to_tensor(image: np.ndarray) -> Tensor:
    """RGB uint8 (H, W, 3) -> float (3, H, W) in [0, 1], the input every torchvision detector takes."""
    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)


def hflip(
    image: Tensor, target: dict[str, Tensor], keypoint_flip: Sequence[int] | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """Mirror an image (C, H, W) and its boxes (xyxy), masks (N, H, W) and keypoints (N, K, 3)."""
    width = image.shape[-1]
    target = dict(target)
    if "boxes" in target:
        boxes = target["boxes"].clone()
        boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
        target["boxes"] = boxes
    if "masks" in target:
        target["masks"] = target["masks"].flip(-1)
    if "keypoints" in target:
        kpts = target["keypoints"].clone()
        kpts[..., 0] = width - kpts[..., 0]
        if keypoint_flip is not None:
            kpts = kpts[:, list(keypoint_flip)]
        target["keypoints"] = kpts
    return image.flip(-1), target


class TrainAugment:
    """Random horizontal flip with probability ``flip_prob`` (uses Python's ``random``, seeded per sample)."""

    def __init__(self, flip_prob: float = 0.5, keypoint_flip: Sequence[int] | None = None) -> None:
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip probability must be in [0, 1], got {flip_prob}")
        self.flip_prob = flip_prob
        self.keypoint_flip = keypoint_flip

    def __call__(self, image: Tensor, target: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        if self.flip_prob > 0 and random.random() < self.flip_prob:
            return hflip(image, target, self.keypoint_flip)
        return image, target
