"""The Python API: ``Segmenter(name_or_weights)(image)`` -> :class:`SegResult`.

Every image goes through :func:`~hrnet.segmentation.inference.segment_image`, the function evaluation
uses, with the test protocol of the model card (or of the explicit options), so a score measured by
``hrnet seg eval`` is what a user of this API gets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hrnet.engine.distributed import resolve_device
from hrnet.inputs import Frame, as_frames, stream_results
from hrnet.io import IMAGENET_MEAN, IMAGENET_STD, as_rgb_array
from hrnet.labels import check_num_classes, flip_permutation
from hrnet.models.resolve import resolve_model
from hrnet.models.weights import read_state_dict
from hrnet.models.zoo import create_model
from hrnet.pretrained import resolve_arguments, weights_info
from hrnet.results import RANDOM_WEIGHTS, Result, warn_random_weights
from hrnet.runtime import facade_forward
from hrnet.segmentation.config import SegTestConfig
from hrnet.segmentation.inference import DEFAULT_MAX_PIXELS, fit_pixels, segment_image, segment_labels
from hrnet.segmentation.labels import dataset_classes, default_palette
from hrnet.segmentation.model import card_test_config, model_from_card
from hrnet.segmentation.visualize import _legend, overlay, save_label_png

LABELS_SUFFIX = ".labels.png"
PLOT_BAND_PIXELS = 1 << 22  # pixels blended at once by SegResult.plot (bounds its float copies)
log = logging.getLogger("hrnet")


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
        """RGB overlay of the labels on the image, with a legend of the classes present.

        Drawn in bands of rows (the same pixels as one :func:`overlay` call), so a 100-megapixel image needs
        its own size once more in memory, not the float copies of the whole picture."""
        h, w = self.labels.shape[:2]
        out = np.empty_like(self.image)
        rows = max(1, PLOT_BAND_PIXELS // max(1, w))
        for y in range(0, h, rows):
            band = slice(y, min(h, y + rows))
            out[band] = overlay(self.image[band], self.labels[band], self.palette, alpha=alpha, legend=False)
        if not legend:
            return out
        present = [int(c) for c in self._present()[0]]
        return np.concatenate([out, _legend(present, self.class_names, self.palette, h)], axis=1)

    def _present(self) -> tuple[np.ndarray, np.ndarray]:
        """Class indices present in ``labels`` (ascending, within the class list) and their pixel counts."""
        n = len(self.class_names)
        labels = self.labels.reshape(-1)
        # counted in place, not sorted (np.unique would sort a copy: 2 GB for a 100-megapixel map)
        if np.issubdtype(labels.dtype, np.integer) and labels.size and labels.min() >= 0:
            counts = np.bincount(labels, minlength=n)[:n]
            values = np.flatnonzero(counts)
            return values, counts[values]
        values, counts = np.unique(labels, return_counts=True)
        keep = (values >= 0) & (values < n)
        return values[keep], counts[keep]

    def save(self, path: str | Path, **plot_options: Any) -> list[Path]:
        """The overlay picture (drawn with ``plot(**plot_options)``) at ``path`` and the label map beside it
        as ``<name>.labels.png`` (a palette PNG whose pixel values are the class indices)."""
        path = Path(path)
        written = super().save(path, **plot_options)
        labels = save_label_png(self.labels, path.with_name(path.name + LABELS_SUFFIX), self.palette)
        self.label_file = str(labels)
        return [*written, labels]

    def pixel_counts(self) -> dict[str, int]:
        """Pixels per class present, by class name."""
        values, counts = self._present()
        return {self.class_names[int(v)]: int(n) for v, n in zip(values, counts)}

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

    ``Segmenter()`` runs the zoo's default weights (``seg_hrnet_w48.cityscapes``, the official Cityscapes
    model with its official test protocol); ``Segmenter("seg_hrnet_w48.lip")`` another zoo entry
    (``hrnet list --pretrained``), downloaded and verified once.
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

    Args:
        model: None (the zoo's default), a zoo entry (``"seg_hrnet_w48.cityscapes"``), a carded weights
            file, URL or ``hf-hub:org/repo``, a model name such as ``"seg_hrnet_w48"``, or a built module.
            A bare name without ``weights`` has random weights (a warning says so).
        weights: weights for a named model: a zoo entry, or a file / URL / hub name (official HRNet, mmseg
            or ours).
        pretrained: a bare model name gets the weights of its default zoo tag.
        num_classes: the class count of a named model; default: read from ``weights``.
        class_names: one name per class; default: the card's, else ``dataset``'s, else the indices.
        dataset: ``"cityscapes"``, ``"pascal_context59"``, ``"pascal_context60"`` or ``"lip"``: names,
            colours and flip pairs for a file without a card.
        palette: one RGB colour per class for the overlay.
        flip_pairs: (left, right) class pairs swapped in the mirrored view (LIP's arms, legs, shoes).
        test: the test protocol (a :class:`SegTestConfig` or a dict of its fields).
        mean: normalisation mean (RGB, 0-1); default: the card's, else ImageNet's.
        std: normalisation std; default: the card's, else ImageNet's.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; ``None`` picks CUDA when present.
        runtime: ``"auto"`` (the fused ``"torch"``), ``"eager"``, ``"torch"``, ``"compile"`` or ``"onnx"``.
        max_pixels: the largest image segmented as it is (default 8.4 MP); a larger one is downscaled to
            fit before the test protocol runs and its labels are upsampled back to full size in bands
            (:func:`~hrnet.segmentation.inference.segment_labels`), so memory stays bounded.
        **options: fields of :class:`SegTestConfig` (``protocol``, ``scales``, ``flip``, ...), or
            backbone overrides of a named model.

    Example:
        ::

            seg = Segmenter("model_best.safetensors")  # or "seg_hrnet_w48", weights=..., dataset="cityscapes"
            res = seg("frame.png")
            res.labels  # (H, W) int64 class indices
            res.save("out/frame.png")  # overlay, and out/frame.png.labels.png
    """

    def __init__(
        self,
        model: str | Path | nn.Module | None = None,
        weights: str | Path | None = None,
        *,
        pretrained: bool = False,
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
        max_pixels: int = DEFAULT_MAX_PIXELS,
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

        model, weights, given = resolve_arguments("seg", model, weights, pretrained=pretrained)
        net, card = resolve_model("seg", model, weights, build, model_from_card)
        # a bare name builds an untrained network: said once here, and "weights": "random" in every result
        self.random_weights = card is None and weights is None and not isinstance(model, nn.Module)
        if self.random_weights:
            warn_random_weights(str(model))
        self.weights_info = weights_info(card, given)  # entry, metric, licence of zoo weights
        n_out = int(getattr(net, "head_size", 0) or num_classes or 0)
        check_num_classes(weights or model, num_classes, n_out, "predict")
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
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
        self.max_pixels = max_pixels

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
        """Labels in bounded memory (:func:`segment_labels`); ``return_probs`` asks for the full-size scores,
        which for an image above ``max_pixels`` are as large as they are (C x H x W floats)."""
        probs = None
        if return_probs:
            s = self.scores(rgb)[0]
            labels, probs = s.argmax(0).cpu().numpy().astype(np.int64), s.float().cpu().numpy()
        else:
            h, w = rgb.shape[:2]
            fit = fit_pixels(h, w, self.max_pixels)
            if fit != (h, w):
                log.info(
                    "%s: %dx%d (%.1f MP) is above max_pixels %d (--max-pixels): segmented at %dx%d, "
                    "labels at full size",
                    path or "image",
                    w,
                    h,
                    h * w / 1e6,
                    self.max_pixels,
                    fit[1],
                    fit[0],
                )
            labels = segment_labels(
                self.forward,
                rgb,
                self.test,
                mean=self.mean,
                std=self.std,
                flip_perm=self.flip_perm,
                max_pixels=self.max_pixels,
                device=self.device,
            )
        result = SegResult(rgb, labels, self.class_names, self.palette, path, probs)
        result.weights = RANDOM_WEIGHTS if self.random_weights else None
        return result

    def __call__(self, image: str | Path | np.ndarray, return_probs: bool = False) -> SegResult:
        """Segment one image (path or array); ``return_probs`` keeps the (C, H, W) scores."""
        rgb = as_rgb_array(image)
        return self._result(rgb, str(image) if isinstance(image, (str, Path)) else None, return_probs)

    def predict(
        self, images: Any, batch_size: int = 1, return_probs: bool = False, stream: bool = False
    ) -> list[SegResult] | Iterator[SegResult]:
        """Segment many images (paths, folders, globs, videos, webcam indices, stream URLs, arrays);
        ``stream=True`` returns a generator that reads and segments one image at a time.

        The test protocols resize each image by its own long side and may tile it into windows, so the
        network runs one image (or window) per forward pass; ``batch_size`` is accepted for the shared
        signature and does not change results.
        """
        results = stream_results(as_frames(images), 1, lambda chunk: self.predict_frames(chunk, return_probs))
        return results if stream else list(results)

    def predict_frames(self, frames: list[Frame], return_probs: bool = False) -> list[SegResult]:
        """:meth:`predict` on frames already read (what ``hrnet seg predict`` feeds)."""
        out = []
        for f in frames:
            if f.error is not None or f.image is None:
                raise ValueError(f.error or "empty frame")
            out.append(self._result(f.image, str(f.source.path) if f.source else None, return_probs))
        return out
