"""The Python API: ``Segmenter(name_or_weights)(image)`` -> :class:`SegResult`.

Every image goes through :func:`~hrnet.segmentation.inference.segment_image`, the function evaluation
uses, with the test protocol of the model card (or of the explicit options), so a score measured by
``hrnet seg eval`` is what a user of this API gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hrnet.engine.distributed import resolve_device
from hrnet.inputs import Frame, as_frames
from hrnet.io import IMAGENET_MEAN, IMAGENET_STD, as_rgb_array
from hrnet.loader import resolve_model
from hrnet.models.weights import read_state_dict
from hrnet.models.zoo import create_model
from hrnet.results import Result
from hrnet.runtime import facade_forward
from hrnet.segmentation.config import SegTestConfig
from hrnet.segmentation.inference import segment_image
from hrnet.segmentation.labels import dataset_classes, default_palette, flip_permutation
from hrnet.segmentation.model import card_test_config
from hrnet.segmentation.visualize import overlay, save_label_png

LABELS_SUFFIX = ".labels.png"


@dataclass
class SegResult(Result):
    """Output for one image: ``labels`` (H, W) int64 class indices, optional ``probs`` (C, H, W) scores."""

    image: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    palette: list[tuple[int, int, int]]
    path: str | None = None
    probs: np.ndarray | None = None
    label_file: str | None = field(default=None, compare=False)

    def plot(self, alpha: float = 0.5, legend: bool = True) -> np.ndarray:
        """RGB overlay of the labels on the image, with a legend of the classes present."""
        return overlay(self.image, self.labels, self.palette, self.class_names, alpha=alpha, legend=legend)

    def save(self, path: str | Path) -> list[Path]:
        """The overlay picture at ``path`` and the label map beside it as ``<name>.labels.png`` (a palette
        PNG whose pixel values are the class indices)."""
        path = Path(path)
        written = super().save(path)
        labels = save_label_png(self.labels, path.with_name(path.name + LABELS_SUFFIX), self.palette)
        self.label_file = str(labels)
        return [*written, labels]

    def pixel_counts(self) -> dict[str, int]:
        """Pixels per class present, by class name."""
        values, counts = np.unique(self.labels, return_counts=True)
        return {self.class_names[int(v)]: int(n) for v, n in zip(values, counts) if 0 <= v < len(self.class_names)}

    def to_json(self) -> dict[str, Any]:
        """The image, the pixel count of every class present, and the label file once saved."""
        return {
            **self._header(),
            "classes": self.pixel_counts(),
            "label_file": Path(self.label_file).name if self.label_file else None,
        }


def _state_classes(weights: str | Path | None) -> int | None:
    """Class count of an uncarded segmentation file (its classifier conv), to build a model that fits."""
    if weights is None:
        return None
    w = read_state_dict(weights).get("last_layer.3.weight")
    return int(w.shape[0]) if w is not None else None


class Segmenter:
    """Semantic segmentation with a HRNetV2 model.

    ``Segmenter("model_best.safetensors")`` rebuilds a trained model from its card (classes, colours,
    flip pairs, normalisation, test protocol). For files without a card give the zoo name and the
    file: ``Segmenter("seg_hrnet_w48", weights="hrnet_w48_cityscapes.pth", dataset="cityscapes")``;
    ``dataset`` ("cityscapes", "pascal_context59", "pascal_context60", "lip") fills names, colours and
    flip pairs, and the class count is read from the file. ``test`` (a :class:`SegTestConfig` or a dict)
    and keyword options named like its fields (``protocol``, ``scales``, ``flip``, ``mode``,
    ``crop_size``, ...) override the card's protocol; other keywords are backbone overrides of a named
    model (``stage_blocks=(1, 1, 1)``). ``device=None`` picks CUDA when present. ``runtime``: ``auto``
    (default) is the fused ``torch`` runtime here, because the test protocols feed every image at its own
    sizes and an ONNX graph is exported per size; ``onnx`` / ``compile`` / ``eager`` can be asked for.
    """

    def __init__(
        self,
        model: str | Path | nn.Module = "seg_hrnet_w48",
        weights: str | Path | None = None,
        *,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        dataset: str | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        flip_pairs: Sequence[Sequence[int]] | None = None,
        test: SegTestConfig | dict | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        device: str | torch.device | None = None,
        runtime: str = "auto",
        **options: Any,
    ) -> None:
        known = {f.name for f in fields(SegTestConfig)}
        test_options = {k: v for k, v in options.items() if k in known}
        overrides = {k: v for k, v in options.items() if k not in known}
        preset_names, preset_palette, preset_pairs = dataset_classes(dataset) if dataset else (None, None, ())
        names = list(class_names) if class_names is not None else (list(preset_names) if preset_names else None)

        def build(name: str) -> nn.Module:
            n = num_classes or _state_classes(weights) or (len(names) if names else 19)
            return create_model(name, num_classes=n, **overrides)

        net, card = resolve_model("seg", model, weights, build)
        n_out = int(getattr(net, "head_size", 0) or num_classes or 0)
        if num_classes is not None and num_classes != n_out:
            raise ValueError(
                f"{weights or model}: num_classes={num_classes} but the weights predict {n_out} classes "
                f"(leave num_classes out to use them as they are)"
            )
        if card is not None:
            names = names or list(card.labels)
            palette = palette or card.meta.get("palette")
            flip_pairs = flip_pairs if flip_pairs is not None else card.meta.get("flip_pairs", ())
            base_test = card_test_config(card)
            mean, std = mean or card.mean, std or card.std
        else:
            base_test = SegTestConfig()
        self.class_names = names or [str(i) for i in range(n_out)]
        if len(self.class_names) != n_out:
            raise ValueError(f"{len(self.class_names)} class names for a model of {n_out} classes")
        self.num_classes = n_out
        colours = palette or preset_palette or default_palette(n_out)
        self.palette = [tuple(int(v) for v in c) for c in colours]
        pairs = list(flip_pairs if flip_pairs is not None else preset_pairs)
        self.flip_perm = flip_permutation(n_out, pairs) if pairs else None
        if isinstance(test, dict):
            test = SegTestConfig(**test)
        self.test = replace(test or base_test, **{k: v for k, v in test_options.items() if v is not None})
        self.test.check()
        self.mean = tuple(mean or IMAGENET_MEAN)
        self.std = tuple(std or IMAGENET_STD)
        self.card = card
        self.device = resolve_device(device)
        self.model = net.to(self.device).eval()
        self.runtime = "torch" if runtime == "auto" else runtime
        self.forward = facade_forward(self.model, self.runtime, device=self.device)

    @torch.no_grad()
    def scores(self, image: np.ndarray, out_size: Sequence[int] | None = None) -> torch.Tensor:
        """Class scores (1, C, H, W) of an RGB uint8 image at ``out_size`` (default: its size)."""
        return segment_image(
            self.forward,
            image,
            self.test,
            mean=self.mean,
            std=self.std,
            flip_perm=self.flip_perm,
            out_size=tuple(out_size) if out_size else None,
            device=self.device,
        )

    def _result(self, rgb: np.ndarray, path: str | None, return_probs: bool) -> SegResult:
        s = self.scores(rgb)[0]
        labels = s.argmax(0).cpu().numpy().astype(np.int64)
        return SegResult(
            rgb, labels, self.class_names, self.palette, path, s.float().cpu().numpy() if return_probs else None
        )

    def __call__(self, image: str | Path | np.ndarray, return_probs: bool = False) -> SegResult:
        """Segment one image (path or array); ``return_probs`` keeps the (C, H, W) scores."""
        rgb = as_rgb_array(image)
        return self._result(rgb, str(image) if isinstance(image, (str, Path)) else None, return_probs)

    def predict(self, images: Any, batch_size: int = 1, return_probs: bool = False) -> list[SegResult]:
        """Segment many images (paths, folders, globs, videos, arrays).

        The test protocols resize each image by its own long side and may tile it into windows, so the
        network runs one image (or window) per forward pass; ``batch_size`` is accepted for the shared
        signature and does not change results.
        """
        return self.predict_frames(list(as_frames(images)), return_probs)

    def predict_frames(self, frames: list[Frame], return_probs: bool = False) -> list[SegResult]:
        """:meth:`predict` on frames already read (what ``hrnet seg predict`` feeds)."""
        out = []
        for f in frames:
            if f.error is not None or f.image is None:
                raise ValueError(f.error or "empty frame")
            out.append(self._result(f.image, str(f.source.path) if f.source else None, return_probs))
        return out
