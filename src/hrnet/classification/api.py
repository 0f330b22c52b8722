"""``Classifier``: the Python face of ``hrnet cls predict`` / ``eval``.

>>> clf = Classifier("hrnet_w18", weights="hrnet_w18.safetensors")   # doctest: +SKIP
>>> clf.predict("dog.jpg")[0]                                          # doctest: +SKIP
ClassScore(index=207, name='golden retriever', prob=0.93)

Images go through the evaluation transform of training (resize 256, centre crop 224, ImageNet
normalisation), so a prediction is what ``eval`` scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from hrnet.classification.classes import imagenet_classes, read_classes
from hrnet.classification.model import HUB, load_classifier_weights, weights_num_classes

ImageInput = str | Path | np.ndarray | Image.Image
CLASSES_FILE = "classes.txt"


class ClassScore(NamedTuple):
    """One ranked class of one image: index, readable name and softmax probability."""

    index: int
    name: str
    prob: float


def _to_pil(image: ImageInput) -> Image.Image:
    from hrnet.io import as_rgb_array

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(as_rgb_array(image))


class Classifier:
    """An HRNet-Wx-C classifier with its preprocessing and class names.

    ``model``: a zoo name (``hrnet_w18``, ...) or a built ``nn.Module`` with a ``classifier``.
    ``weights``: a local file (ours, official HRNet, timm), ``"hub"`` / ``True`` for the official ImageNet
    weights, or None (random weights: for tests). With a name and no ``num_classes``, the class count is
    read from the weights file; an explicit ``num_classes`` that differs re-initialises the classifier
    (with a message in :attr:`message`) unless ``reinit_classifier=False``, which makes it an error.
    A built module whose class count differs from the file's is an error.
    ``class_names``: a list or a file; default: ``classes.txt`` next to the weights (written by training),
    else the ImageNet names for 1000 classes, else the indices.
    """

    def __init__(self, model: str | nn.Module = "hrnet_w18", weights: str | Path | bool | None = None, *,
                 num_classes: int | None = None, class_names: Sequence[str] | str | Path | None = None,
                 device: str | torch.device | None = None, crop_size: int = 224, resize_size: int = 256,
                 interpolation: str = "bilinear", head: str = "c", reinit_classifier: bool | None = None,
                 **overrides) -> None:
        from hrnet.classification.transforms import eval_transform
        from hrnet.models.weights import read_state_dict
        from hrnet.models.zoo import create_model

        self.message: str | None = None
        if weights is True:
            weights = HUB
        if isinstance(model, nn.Module):
            if num_classes is not None or overrides:
                raise ValueError("num_classes and backbone overrides apply to a model name, not to a built model")
            net = model
            if weights == HUB:
                raise ValueError("weights='hub' needs a model name, not a built model")
            if weights:
                load_classifier_weights(net, weights, reinit_classifier=False)
        elif weights == HUB:
            net = create_model(model, pretrained=True, num_classes=num_classes, head=head, **overrides)
        else:
            state = read_state_dict(weights) if weights else None
            n = num_classes or (weights_num_classes(state) if state else None) or 1000
            net = create_model(model, num_classes=n, head=head, **overrides)
            if state is not None:
                reinit = num_classes is not None if reinit_classifier is None else reinit_classifier
                self.message = load_classifier_weights(net, state, reinit_classifier=reinit, origin=str(weights))
        if not hasattr(net, "classifier"):
            raise ValueError(f"{type(net).__name__} is not a classifier (no `classifier` layer)")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = net.to(self.device).eval()
        self.num_classes = int(net.classifier.out_features)
        classes = self._classes(class_names, weights)
        self._ids_known = classes is not None
        if classes is None:
            classes = [(str(i), str(i)) for i in range(self.num_classes)]
        if len(classes) != self.num_classes:
            raise ValueError(f"{len(classes)} class names for a model of {self.num_classes} classes")
        self.class_ids = [key for key, _ in classes]
        self.class_names = [name for _, name in classes]
        self.transform = eval_transform(crop_size, resize_size, interpolation)

    def _classes(self, names: Sequence[str] | str | Path | None, weights: object) -> list[tuple[str, str]] | None:
        """(id, name) pairs from a list, a file, ``classes.txt`` beside the weights, or ImageNet's; None if unknown."""
        if isinstance(names, (str, Path)):
            return read_classes(names)
        if names is not None:
            return [(str(n), str(n)) for n in names]
        if isinstance(weights, (str, Path)) and weights != HUB:
            sibling = Path(weights).parent / CLASSES_FILE
            if sibling.is_file():
                pairs = read_classes(sibling)
                if len(pairs) == self.num_classes:  # not after a class-count override
                    return pairs
        return list(imagenet_classes()) if self.num_classes == 1000 else None

    def preprocess(self, image: ImageInput) -> Tensor:
        """The network input (3, crop, crop) of one image: resize, centre crop, normalise."""
        return self.transform(_to_pil(image))

    @torch.no_grad()
    def logits(self, images: Sequence[ImageInput] | Tensor, batch_size: int = 32) -> Tensor:
        """Logits (N, num_classes) on the CPU; a tensor input is taken as already preprocessed."""
        if isinstance(images, Tensor):
            batches = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
        else:
            batches = [torch.stack([self.preprocess(im) for im in images[i:i + batch_size]])
                       for i in range(0, len(images), batch_size)]
        out = [self.model(b.to(self.device)).float().cpu() for b in batches]
        return torch.cat(out) if out else torch.empty(0, self.num_classes)

    def predict(self, images: ImageInput | Sequence[ImageInput], topk: int = 5
                ) -> list[ClassScore] | list[list[ClassScore]]:
        """The ``topk`` classes with softmax probabilities, best first; a list of images gives a list of lists."""
        single = isinstance(images, (str, Path, np.ndarray, Image.Image))
        batch = [images] if single else list(images)  # type: ignore[list-item]
        probs = self.logits(batch).softmax(dim=1)
        k = min(topk, self.num_classes)
        values, indices = probs.topk(k, dim=1)
        out = [[ClassScore(int(i), self.class_names[int(i)], float(p)) for p, i in zip(vs, ix)]
               for vs, ix in zip(values, indices)]
        return out[0] if single else out

    def evaluate(self, data: str | Path, batch_size: int = 64, workers: int = 0, bad_images: str = "skip",
                 rank: int = 0, world_size: int = 1) -> dict[str, float]:
        """Top-1 / top-5 (fractions in [0, 1]), ``count`` and ``skipped`` on an ImageFolder root or list file.

        Folder names are matched to the class ids (ImageNet wnids, or the training folders recorded in
        ``classes.txt``), so a validation folder may hold a subset of the classes.
        """
        from hrnet.classification.datasets import build_dataset
        from hrnet.classification.evaluation import evaluate_classifier

        classes = self.class_ids if Path(data).is_dir() and self._ids_known else None
        dataset = build_dataset(data, self.transform, classes=classes, num_classes=self.num_classes,
                                bad_images=bad_images)
        return evaluate_classifier(self.model, dataset, batch_size, workers, self.device, rank, world_size)
