"""``Classifier``: the Python face of ``hrnet cls predict`` / ``eval``.

>>> clf = Classifier("runs/cls/model_best.safetensors")               # doctest: +SKIP
>>> clf("dog.jpg").top[0]                                               # doctest: +SKIP
ClassScore(index=207, name='golden retriever', prob=0.93)

Images go through the evaluation transform of training (resize 256, centre crop 224, ImageNet
normalisation; a model card keeps the sizes it was trained with), so a prediction is what ``eval`` scores.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from hrnet.classification.classes import imagenet_classes, read_classes
from hrnet.classification.datasets import build_dataset
from hrnet.classification.evaluation import evaluate_classifier
from hrnet.classification.model import HUB, model_from_card, weights_num_classes
from hrnet.classification.transforms import eval_transform
from hrnet.engine.distributed import resolve_device
from hrnet.inputs import Frame, as_frames, batched, stream_results
from hrnet.io import as_rgb_array
from hrnet.labels import check_num_classes
from hrnet.models.resolve import resolve_model
from hrnet.models.weights import read_state_dict
from hrnet.models.zoo import create_model
from hrnet.pretrained import resolve_arguments, task_default, weights_info
from hrnet.results import RANDOM_WEIGHTS, Result, warn_random_weights
from hrnet.runtime import FACADE_RUNTIMES, facade_forward

ImageInput = str | Path | np.ndarray | Image.Image
# below this many pixels on a side an image is blown up more than 7x to the 224-px crop: the network
# then sees a few blurred blocks, and its answer says little about the image (the result warns)
MIN_IMAGE_SIDE = 32


class ClassScore(NamedTuple):
    """One ranked class of one image: index, readable name and softmax probability."""

    index: int
    name: str
    prob: float


@dataclass
class ClsResult(Result):
    """The ``top`` classes of one image, best first."""

    image: np.ndarray
    top: list[ClassScore]
    path: str | None = None

    def warnings(self) -> list[str]:
        """A warning when the image is smaller than :data:`MIN_IMAGE_SIDE` pixels on a side."""
        h, w = self.image.shape[:2]
        if min(h, w) >= MIN_IMAGE_SIDE:
            return []
        return [f"image is {w}x{h} pixels, under {MIN_IMAGE_SIDE} px a side: too small to classify meaningfully"]

    def plot(self) -> np.ndarray:
        """The image with its top classes and probabilities written in its top-left corner."""
        out = self.image.copy()
        scale = max(0.4, min(out.shape[:2]) / 500)
        y = int(22 * scale)
        for s in self.top[:3]:
            text = f"{s.prob:.2f} {s.name}"
            for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
                cv2.putText(out, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, colour, width, cv2.LINE_AA)
            y += int(24 * scale)
        return out

    def to_json(self) -> dict[str, Any]:
        """The image and its top-k classes (index, name, probability)."""
        return {**self._header(), "top": [s._asdict() for s in self.top]}


def _to_pil(image: ImageInput) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(as_rgb_array(image))


class Classifier:
    """An HRNet-Wx-C classifier with its preprocessing and class names.

    ``Classifier()`` runs the zoo's default ImageNet weights (``hrnet_w18.ms_in1k``, the paper authors'
    HRNet-W18-C as timm re-hosts it); ``Classifier("hrnet_w48.ms_in1k")`` another zoo entry
    (``hrnet list --pretrained``), downloaded and verified once.
    ``Classifier("model_best.safetensors")`` rebuilds a trained model (overrides, head, classes, crop
    sizes) from its card. For files without a card, give the zoo name and the file (``weights`` may
    also be ``"hub"`` / ``True`` for the official ImageNet weights, or None for random weights); the
    class count is read from the file, and an explicit ``num_classes`` that differs from it is an error
    (inference never re-initialises a classifier: fine-tune with ``model.pretrained`` instead).
    ``class_names``: a list or a file (one name, or ``id<TAB>name``, per line); default: the card's,
    else the ImageNet names for 1000 classes, else the indices. ``device=None`` picks CUDA when present.
    ``runtime`` (``auto``, ``eager``, ``torch``, ``compile``, ``onnx``) runs the network as
    :func:`hrnet.runtime.optimize_for_inference` does, prepared on first use for the crop size.

    Args:
        model: None (the zoo's default), a zoo entry (``"hrnet_w18.ms_in1k"``), a carded weights file, URL
            or ``hf-hub:org/repo``, a model name such as ``"hrnet_w18"``, or a built module. A bare name
            without ``weights`` has random weights (a warning says so).
        weights: weights for a named model: a zoo entry, a file / URL / hub name (official HRNet, timm or
            ours), or ``"hub"`` / ``True`` for the official ImageNet weights (the ``hub`` extra).
        pretrained: a bare model name gets the weights of its default zoo tag.
        num_classes: the class count of a named model; default: read from ``weights``, else 1000.
        class_names: a list, or a file with one name (or ``id<TAB>name``) per line.
        topk: classes kept per image in ``result.top``.
        crop_size: the centre crop; default: the card's, else 224.
        resize_size: the shorter side before the crop; default: the card's, else 256.
        interpolation: the resize's interpolation; default: the card's, else ``"bilinear"``.
        head: the classification head of a named model: ``"c"`` (Fig. 11), ``"ci"`` or ``"cii"``.
        batch_size: images per network batch.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; ``None`` picks CUDA when present.
        runtime: ``"auto"``, ``"eager"``, ``"torch"``, ``"compile"`` or ``"onnx"``.
        **overrides: backbone overrides of a named model (``stage_blocks=(1, 1, 1)``, ...).

    Example:
        ::

            clf = Classifier("model_best.safetensors")  # or "hrnet_w18", weights="hub"
            res = clf("cat.jpg")
            res.top  # [ClassScore(index, name, prob), ...], best first
            [r.top[0].name for r in clf.predict("photos/", batch_size=32)]
    """

    def __init__(
        self,
        model: str | Path | nn.Module | None = None,
        weights: str | Path | bool | None = None,
        *,
        pretrained: bool = False,
        num_classes: int | None = None,
        class_names: Sequence[str] | str | Path | None = None,
        topk: int = 5,
        crop_size: int | None = None,
        resize_size: int | None = None,
        interpolation: str | None = None,
        head: str = "c",
        batch_size: int = 32,
        device: str | torch.device | None = None,
        runtime: str = "auto",
        **overrides: Any,
    ) -> None:
        if weights is True:
            weights = HUB
        given: str | None = None
        if weights == HUB:
            model = task_default("cls").model if model is None else model
            if not isinstance(model, str):
                raise ValueError("weights='hub' needs a model name, not a built model or a file")
            net, card = create_model(model, pretrained=True, num_classes=num_classes, head=head, **overrides), None
        else:
            model, weights, given = resolve_arguments("cls", model, weights, pretrained=pretrained)
            if isinstance(model, nn.Module) and (num_classes is not None or overrides):
                raise ValueError("num_classes and backbone overrides apply to a model name, not to a built model")

            def build(name: str) -> nn.Module:
                state = read_state_dict(weights) if weights else None
                n = num_classes or (weights_num_classes(state) if state else None) or 1000
                return create_model(name, num_classes=n, head=head, **overrides)

            net, card = resolve_model("cls", model, weights, build, model_from_card)
        # a bare name builds an untrained network: said once here, and "weights": "random" in every result
        self.random_weights = card is None and weights is None and not isinstance(model, nn.Module)
        if self.random_weights:
            warn_random_weights(str(model))
        self.weights_info = weights_info(card, given)  # entry, metric, licence of zoo weights
        if not hasattr(net, "classifier"):
            raise ValueError(f"{type(net).__name__} is not a classifier (no `classifier` layer)")
        self.num_classes = int(net.classifier.out_features)
        check_num_classes(weights or model, num_classes, self.num_classes, "classify")
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        classes = self._classes(class_names, card)
        self._ids_known = classes is not None
        if classes is None:
            classes = [(str(i), str(i)) for i in range(self.num_classes)]
        if len(classes) != self.num_classes:
            raise ValueError(f"{len(classes)} class names for a model of {self.num_classes} classes")
        self.class_ids = [key for key, _ in classes]
        self.class_names = [name for _, name in classes]
        test = card.test if card is not None else {}
        self.crop_size = int(crop_size or test.get("crop_size", 224))
        self.resize_size = int(resize_size or test.get("resize_size", 256))
        self.interpolation = interpolation or test.get("interpolation", "bilinear")
        self.transform = eval_transform(self.crop_size, self.resize_size, self.interpolation)
        self.topk, self.batch_size, self.card = topk, batch_size, card
        self.device = resolve_device(device)
        self.model = net.to(self.device).eval()
        if runtime not in FACADE_RUNTIMES:
            raise ValueError(f"runtime must be one of {FACADE_RUNTIMES}, got {runtime!r}")
        self.runtime = runtime
        self._forward: Any = None

    @property
    def forward(self) -> Any:
        """The network as this classifier runs it (built on first use)."""
        if self._forward is None:
            shape = (1, 3, self.crop_size, self.crop_size)
            self._forward = facade_forward(self.model, self.runtime, shape, self.device)
        return self._forward

    def _classes(self, names: Sequence[str] | str | Path | None, card: Any) -> list[tuple[str, str]] | None:
        """(id, name) pairs from a list, a file, the model card, or ImageNet's; None when unknown."""
        if isinstance(names, (str, Path)):
            return read_classes(names)
        if names is not None:
            return [(str(n), str(n)) for n in names]
        if card is not None:
            ids = card.meta.get("class_ids") or card.labels
            return list(zip(map(str, ids), card.labels))
        return list(imagenet_classes()) if self.num_classes == 1000 else None

    def preprocess(self, image: ImageInput) -> Tensor:
        """The network input (3, crop, crop) of one image: resize, centre crop, normalise."""
        return self.transform(_to_pil(image))

    @torch.no_grad()
    def logits(self, images: Sequence[ImageInput] | Tensor, batch_size: int | None = None) -> Tensor:
        """Logits (N, num_classes) on the CPU; a tensor input is taken as already preprocessed."""
        n = batch_size or self.batch_size
        if isinstance(images, Tensor):
            batches = [images[i : i + n] for i in range(0, len(images), n)]
        else:
            batches = [torch.stack([self.preprocess(im) for im in chunk]) for chunk in batched(images, n)]
        expect = getattr(self.forward, "expect", None)
        if expect is not None:  # runtime "auto" decides for every image in hand, not batch by batch
            expect(sum(len(b) for b in batches))
        out = [self.forward(b.to(self.device)).float().cpu() for b in batches]
        return torch.cat(out) if out else torch.empty(0, self.num_classes)

    def _top(self, logits: Tensor, topk: int) -> list[list[ClassScore]]:
        probs = logits.softmax(dim=1)
        values, indices = probs.topk(min(topk, self.num_classes), dim=1)
        return [
            [ClassScore(int(i), self.class_names[int(i)], float(p)) for p, i in zip(vs, ix)]
            for vs, ix in zip(values, indices)
        ]

    def __call__(self, image: ImageInput, topk: int | None = None) -> ClsResult:
        """The ``topk`` classes of one image (path, array or PIL image)."""
        rgb = np.asarray(_to_pil(image))
        top = self._top(self.logits([rgb]), topk or self.topk)[0]
        return self._result(rgb, top, str(image) if isinstance(image, (str, Path)) else None)

    def _result(self, rgb: np.ndarray, top: list[ClassScore], path: str | None) -> ClsResult:
        result = ClsResult(rgb, top, path)
        result.weights = RANDOM_WEIGHTS if self.random_weights else None
        return result

    def predict(
        self, images: Any, topk: int | None = None, batch_size: int | None = None, stream: bool = False
    ) -> list[ClsResult] | Iterator[ClsResult]:
        """Classify many images (paths, folders, globs, videos, webcam indices, stream URLs, arrays) in
        batches of ``batch_size``; ``stream=True`` returns a generator that holds one batch at a time."""
        size = batch_size or self.batch_size
        results = stream_results(as_frames(images), size, lambda chunk: self.predict_frames(chunk, topk, size))
        return results if stream else list(results)

    def predict_frames(
        self, frames: list[Frame], topk: int | None = None, batch_size: int | None = None
    ) -> list[ClsResult]:
        """:meth:`predict` on frames already read (what ``hrnet cls predict`` feeds)."""
        bad = next((f for f in frames if f.error or f.image is None), None)
        if bad is not None:
            raise ValueError(bad.error or "empty frame")
        tops = self._top(self.logits([f.image for f in frames], batch_size), topk or self.topk) if frames else []
        return [self._result(f.image, top, str(f.source.path) if f.source else None) for f, top in zip(frames, tops)]

    def evaluate(
        self,
        data: str | Path,
        batch_size: int = 64,
        workers: int = 0,
        bad_images: str = "skip",
        rank: int = 0,
        world_size: int = 1,
    ) -> dict[str, float]:
        """Top-1 / top-5 (fractions in [0, 1]), ``count`` and ``skipped`` on an ImageFolder root or list file.

        Folder names are matched to the class ids (ImageNet wnids, or the training folders recorded in
        the model card), so a validation folder may hold a subset of the classes.
        """

        classes = self.class_ids if Path(data).is_dir() and self._ids_known else None
        dataset = build_dataset(
            data, self.transform, classes=classes, num_classes=self.num_classes, bad_images=bad_images
        )
        return evaluate_classifier(self.model, dataset, batch_size, workers, self.device, rank, world_size)
