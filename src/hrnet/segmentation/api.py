"""The Python API: ``Segmenter(model_or_name, weights=...)(image)`` -> :class:`SegResult`.

The same inference (:mod:`hrnet.segmentation.inference`) and normalisation serve ``eval`` and
``predict``, so a score measured by ``hrnet seg eval`` is what a user of this API gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hrnet.io import as_rgb_array
from hrnet.segmentation.inference import predict_probs
from hrnet.segmentation.labels import (
    dataset_classes,
    default_palette,
    flip_permutation,
)
from hrnet.segmentation.transforms import IMAGENET_MEAN, IMAGENET_STD, resize_pair, to_tensor
from hrnet.segmentation.visualize import overlay


@dataclass
class SegResult:
    """Output for one image: ``labels`` (H, W) int64, optional ``probs`` (C, H, W) float32."""

    image: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    palette: list[tuple[int, int, int]]
    probs: np.ndarray | None = None

    def plot(self, alpha: float = 0.5, legend: bool = True, path: str | Path | None = None) -> np.ndarray:
        """RGB overlay of the labels on the image with a legend; also saved when ``path`` is given."""
        picture = overlay(self.image, self.labels, self.palette, self.class_names, alpha=alpha, legend=legend)
        if path is not None:
            from hrnet.segmentation.visualize import save_rgb

            save_rgb(picture, path)
        return picture


def _infer_num_classes(state: dict) -> int | None:
    weight = state.get("last_layer.3.weight")
    return int(weight.shape[0]) if weight is not None else None


class Segmenter:
    """Semantic segmentation of single images with a HRNetV2 model.

    ``model_or_name`` is an ``nn.Module`` or a zoo name (``seg_hrnet_w48``); ``weights`` a file loaded with
    :func:`hrnet.load_weights` (official, mmseg or our own). ``dataset`` ("cityscapes", "pascal_context59",
    "pascal_context60", "lip") fills class names, colours and flip pairs. ``mode``/``crop_size``/``stride``/
    ``scales``/``flip`` choose the inference (see :mod:`hrnet.segmentation.inference`); ``resize_to`` (H, W)
    resizes the input first (Context 480, LIP 473) and the prediction is returned at the image's size.
    """

    def __init__(
        self,
        model_or_name: nn.Module | str,
        weights: str | Path | None = None,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        device: str | torch.device = "cpu",
        mode: str = "whole",
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        *,
        dataset: str | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        flip_pairs: Sequence[Sequence[int]] | None = None,
        crop_size: Sequence[int] | None = None,
        stride: Sequence[int] | None = None,
        resize_to: Sequence[int] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        **model_overrides,
    ):
        preset_names, preset_palette, preset_pairs = dataset_classes(dataset) if dataset else (None, None, ())
        class_names = list(class_names) if class_names is not None else (list(preset_names) if preset_names else None)
        if isinstance(model_or_name, nn.Module):
            model = model_or_name
            if weights is not None:
                from hrnet.models.weights import load_weights

                load_weights(model, weights)
        else:
            from hrnet.models.weights import load_weights, read_state_dict
            from hrnet.models.zoo import create_model

            state = read_state_dict(weights) if weights is not None else None
            if num_classes is None:
                num_classes = (_infer_num_classes(state) if state else None) or (
                    len(class_names) if class_names else 19
                )
            model = create_model(model_or_name, num_classes=num_classes, **model_overrides)
            if state is not None:
                load_weights(model, state)
        out_ch = getattr(model, "num_classes", None) or num_classes
        if out_ch is None:
            raise ValueError("cannot tell the number of classes of this model; pass num_classes=")
        self.num_classes = int(out_ch)
        self.class_names = class_names or [str(i) for i in range(self.num_classes)]
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for a {self.num_classes}-class model")
        colours = palette or preset_palette or default_palette(self.num_classes)
        self.palette = [tuple(int(v) for v in c) for c in colours]
        pairs = flip_pairs if flip_pairs is not None else preset_pairs
        self.flip_perm = flip_permutation(self.num_classes, pairs) if pairs else None
        if mode not in ("whole", "slide"):
            raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
        if mode == "slide" and not crop_size:
            raise ValueError("mode='slide' needs crop_size=(H, W)")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.mode, self.scales, self.flip = mode, tuple(scales), bool(flip)
        self.crop_size, self.stride, self.resize_to = crop_size, stride, resize_to
        self.mean, self.std = tuple(mean), tuple(std)

    @torch.no_grad()
    def probs(self, image: np.ndarray, out_size: Sequence[int] | None = None) -> torch.Tensor:
        """Class probabilities (1, C, H, W) of an RGB uint8 image at ``out_size`` (default: its size)."""
        h, w = image.shape[:2]
        if self.resize_to:
            image, _ = resize_pair(image, None, self.resize_to)
        x = to_tensor(image, self.mean, self.std).unsqueeze(0).to(self.device)
        return predict_probs(
            self.model, x, out_size=out_size or (h, w), mode=self.mode, crop_size=self.crop_size,
            stride=self.stride, scales=self.scales, flip=self.flip, flip_perm=self.flip_perm,
        )

    def __call__(self, image: str | Path | np.ndarray, return_probs: bool = False) -> SegResult:
        """Segment one image (path or array); ``return_probs`` also returns (C, H, W) probabilities."""
        rgb = as_rgb_array(image)
        p = self.probs(rgb)[0]
        labels = p.argmax(0).cpu().numpy().astype(np.int64)
        return SegResult(
            image=rgb, labels=labels, class_names=self.class_names, palette=self.palette,
            probs=p.float().cpu().numpy() if return_probs else None,
        )

    predict = __call__
