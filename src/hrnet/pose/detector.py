"""Person boxes from a torchvision detector whose weights the user already has on disk.

Top-down pose estimation needs person boxes. When no detection file is given, ``PersonDetector`` builds
a torchvision detection architecture with no weights at all (``weights=None, weights_backbone=None``, so
nothing is downloaded) and loads a local state-dict file in torchvision's published format with
``torch.load(weights_only=True)``. Built without weights, torchvision uses ``BatchNorm2d`` where the
published checkpoints were made with frozen batch norm, so only the ``num_batches_tracked`` counters are
allowed to be missing; in eval mode the two layers compute the same thing. Our own carded detection
weights (``hrnet det train``) or an already-built detector module work as well: they speak torchvision's
interface, and the card names the person class.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hrnet.engine.distributed import resolve_device
from hrnet.io import as_rgb_array
from hrnet.loader import load_model
from hrnet.models.card import read_card

ARCHS = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
    "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large",
    "maskrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn_v2",
    "keypointrcnn_resnet50_fpn",
)
PERSON_LABEL = 1  # torchvision's COCO label map (91 entries): 1 = person


def build_detector(arch: str, num_classes: int = 91) -> nn.Module:
    """A torchvision detector of architecture ``arch`` with random weights (no download)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown detector architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    from torchvision.models import detection

    builder = getattr(detection, arch)
    kwargs = {"num_classes": 2 if arch.startswith("keypointrcnn") else num_classes}
    return builder(weights=None, weights_backbone=None, **kwargs)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A torchvision state dict through the project's one file reader (safetensors or a torch file read with
    ``weights_only=True``; containers unwrapped), with a DDP ``module.`` prefix removed."""
    from hrnet.models.weights import read_raw_state_dict

    return {k.removeprefix("module."): v for k, v in read_raw_state_dict(path).items()}


def _is_carded_detector(path: str | Path) -> bool:
    """True for a weights file whose model card says it is one of our detectors (``task: det``)."""
    card = read_card(path) if Path(path).is_file() else None
    return card is not None and card.task == "det"


def load_detector_weights(model: nn.Module, path: str | Path, arch: str = "") -> None:
    """Load ``path`` into ``model`` strictly (bar BN counters); a mismatch names the file and the keys."""
    path = Path(path)
    state = _read_state_dict(path)
    own = model.state_dict()
    what = f"the {arch} architecture" if arch else "the detector"
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    bad_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or bad_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if bad_shape:
            parts.append(f"{len(bad_shape)} shape mismatches (e.g. {'; '.join(bad_shape[:2])})")
        raise ValueError(
            f"{path}: the weights do not fit {what}: {', '.join(parts)}; "
            f"pick the matching --arch (one of {', '.join(ARCHS)}) or num_classes"
        )
    model.load_state_dict(state, strict=False)


class PersonDetector:
    """``PersonDetector(weights)(image) -> (N, 5)`` person boxes ``x0, y0, x1, y1, score`` (float32).

    ``image`` is a path or an RGB array; boxes below ``score_thr`` are dropped and the rest sorted by
    score. ``num_classes`` must match the checkpoint (91 for torchvision's COCO models).
    """

    def __init__(
        self,
        weights: str | Path | nn.Module,
        score_thr: float = 0.5,
        device: str | None = None,
        arch: str = "fasterrcnn_resnet50_fpn",
        num_classes: int = 91,
    ) -> None:
        if not 0.0 <= score_thr <= 1.0:
            raise ValueError(f"score_thr must be in [0, 1], got {score_thr}")
        self.arch = arch
        self.score_thr = float(score_thr)
        self.device = resolve_device(device)
        self.person_label = PERSON_LABEL
        if isinstance(weights, nn.Module) or _is_carded_detector(weights):
            # a built torchvision-style detector, or our carded detection weights (hrnet det train): the
            # person label is the card's "person" class (labels 1..K, 0 = background)
            self.model = weights if isinstance(weights, nn.Module) else load_model(weights, task="det")
            card = getattr(self.model, "card", None)
            if card is not None:
                if "person" not in card.labels:
                    raise ValueError(
                        f"{weights if not isinstance(weights, nn.Module) else card.model}: the detector "
                        f"has no 'person' class (classes: {', '.join(card.labels[:6])}, ...)"
                    )
                self.person_label = card.labels.index("person") + 1
        else:
            self.model = build_detector(arch, num_classes)
            load_detector_weights(self.model, weights, arch)
        self.model.eval().to(self.device)

    @torch.no_grad()
    def __call__(self, image: str | Path | np.ndarray) -> np.ndarray:
        rgb = as_rgb_array(image)
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div_(255.0).to(self.device)
        out = self.model([x])[0]
        keep = (out["labels"] == self.person_label) & (out["scores"] >= self.score_thr)
        boxes = torch.cat([out["boxes"][keep], out["scores"][keep, None]], 1).cpu().numpy().astype(np.float32)
        return boxes[np.argsort(-boxes[:, 4], kind="stable")]

    detect = __call__


def as_person_detector(
    detector: Any, device: str | torch.device | None = None, score_thr: float = 0.5
) -> Callable[[np.ndarray], np.ndarray] | None:
    """Whatever a user hands ``PoseEstimator(detector=...)``, as a callable ``rgb -> (N, 5)`` person boxes.

    Accepted: ``None``; a weights file (our carded detection weights, or a torchvision detector's); a built
    torchvision-style detector module; an object with a ``person_boxes`` method (``hrnet.detection.Detector``:
    duck-typed, because pose must not import the detection task); or any callable already returning boxes.
    """
    if detector is None:
        return None
    if isinstance(detector, (str, Path)):
        if not Path(detector).is_file():
            raise FileNotFoundError(f"{detector}: detector weights file not found")
        return PersonDetector(detector, score_thr=score_thr, device=device)
    if isinstance(detector, nn.Module):
        return PersonDetector(detector, score_thr=score_thr, device=device)
    person_boxes = getattr(detector, "person_boxes", None)
    if callable(person_boxes):
        return lambda rgb: person_boxes(rgb, score_thr=score_thr)
    if callable(detector):
        return detector
    raise TypeError(
        f"detector must be a weights path, a detector module, an object with person_boxes() or a "
        f"callable image -> (N, 5) boxes; got {type(detector).__name__}"
    )
