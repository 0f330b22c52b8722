"""Person boxes for top-down pose: a detector that comes with its weights.

``PersonDetector(weights)`` takes any weights argument of the package (:func:`hrnet.pretrained.resolve_weights`):

- a zoo name of a person detector (``keypointrcnn_resnet50_fpn.coco_v1``, the default; the light
  ``fasterrcnn_mobilenet_v3_large_320_fpn.coco_v1``; ``hrnet list --pretrained --task det``): torchvision's
  published COCO weights, downloaded once, sha256-checked, read without unpickling code and converted into a
  carded file that names the architecture;
- our carded detection weights (``hrnet det train``, or an HRNet detector of the zoo such as
  ``faster_rcnn_hrnet_w32.coco``): the detection task provides the detector through the registry's
  ``person_detector`` interface, so pose never imports it;
- an uncarded torchvision state dict (a file, URL or hub name) of architecture ``arch``.

A torchvision architecture is built without weights (nothing is downloaded by torchvision) and loaded
strictly but for the batch-norm counters that published frozen-BN files lack; in eval mode ``BatchNorm2d``
computes what their frozen batch norm does. Only person boxes are wanted, so a detector built here runs
lean, with the same boxes: the keypoint and mask branches of Keypoint / Mask R-CNN are dropped, every
batch norm is folded into its convolution, the backbone runs channels-last (1.2x for Keypoint R-CNN
R50-FPN, 1.65x for the MobileNetV3 FPN on a 2-core CPU, docs/speed.md), and the box score threshold is
raised to ``score_thr`` (a box scored above it can only be suppressed by a higher-scored one, so the boxes
kept are those of the full model). A detector module handed in is used as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models._utils import IntermediateLayerGetter

from hrnet.engine.distributed import resolve_device
from hrnet.io import as_rgb_array
from hrnet.models.card import ModelCard, read_card
from hrnet.models.fuse import fold_bn, fuse
from hrnet.models.weights import read_raw_state_dict
from hrnet.pose.face_detector import FACE_DETECTOR, FaceDetector
from hrnet.pretrained import build_torchvision_detector, resolve_weights, task_default, weights_info
from hrnet.registry import provider

log = logging.getLogger("hrnet")

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
NO_DETECTOR = "none"  # --detector none / detector="none": each whole image is one person
DEFAULT_DETECTOR = "default"  # the zoo's person detector (hrnet.pretrained.task_default("person_detector"))


def build_detector(arch: str, num_classes: int = 91) -> nn.Module:
    """A torchvision detector of architecture ``arch`` with random weights (no download)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown detector architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return build_torchvision_detector(arch, 2 if arch.startswith("keypointrcnn") else num_classes)


def _upgrade_legacy_keys(state: dict[str, torch.Tensor], own: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Keys of files saved by older torchvision versions, renamed as torchvision's own load hooks do: a bare
    conv that is now wrapped (``rpn.head.conv.weight`` -> ``rpn.head.conv.0.0.weight``, the FPN's
    ``inner_blocks.0.weight`` -> ``inner_blocks.0.0.weight``)."""
    out = {}
    for key, value in state.items():
        if key not in own:
            stem, _, leaf = key.rpartition(".")
            for wrapped in (f"{stem}.0.{leaf}", f"{stem}.0.0.{leaf}"):
                if wrapped in own and wrapped not in state:
                    key = wrapped
                    break
        out[key] = value
    return out


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A torchvision state dict through the project's one file reader (safetensors or a torch file read with
    ``weights_only=True``; containers unwrapped), with a DDP ``module.`` prefix removed."""
    return {k.removeprefix("module."): v for k, v in read_raw_state_dict(path).items()}


def load_detector_weights(model: nn.Module, path: str | Path, arch: str = "") -> None:
    """Load ``path`` into ``model`` strictly (bar BN counters); a mismatch names the file and the keys."""
    path = Path(path)
    own = model.state_dict()
    state = _upgrade_legacy_keys(_read_state_dict(path), own)
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
            f"pick the matching --det-arch (one of {', '.join(ARCHS)}) or num_classes"
        )
    model.load_state_dict(state, strict=False)


def _channels_last(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook: the batched images in channels-last layout, the layout of the convolutions."""
    return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])


@torch.no_grad()
def lean_person_detector(model: nn.Module, score_thr: float) -> nn.Module:
    """``model`` (a torchvision detector built here, in eval mode) changed in place to find the same person
    boxes with less work: keypoint and mask branches dropped, batch norms folded into their convolutions,
    weights and backbone input channels-last, box score threshold raised to ``score_thr``. Returns
    ``model``."""

    heads = getattr(model, "roi_heads", None)
    if heads is not None:
        for name in ("keypoint_roi_pool", "keypoint_head", "keypoint_predictor", "mask_roi_pool", "mask_head"):
            if getattr(heads, name, None) is not None:
                setattr(heads, name, None)
        if getattr(heads, "mask_predictor", None) is not None:
            heads.mask_predictor = None
        if hasattr(heads, "score_thresh"):
            heads.score_thresh = max(float(heads.score_thresh), float(score_thr))
    fuse(model, inplace=True)  # every (Conv2d, BatchNorm2d) pair of an nn.Sequential
    for module in model.modules():
        paired = isinstance(module, (resnet.BasicBlock, resnet.Bottleneck, IntermediateLayerGetter))
        for k in (1, 2, 3) if paired else ():
            conv, bn = getattr(module, f"conv{k}", None), getattr(module, f"bn{k}", None)
            if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d:
                setattr(module, f"conv{k}", fold_bn(conv, bn))
                setattr(module, f"bn{k}", nn.Identity())
    model.to(memory_format=torch.channels_last)
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module):
        backbone.register_forward_pre_hook(_channels_last)
    return model.eval()


def _person_label(card: ModelCard, given: object) -> int:
    """The detector output label of the class 'person' (labels 1..K; 0 is the background)."""
    if "person" not in card.labels:
        raise ValueError(f"{given}: the detector has no 'person' class (classes: {', '.join(card.labels[:6])}, ...)")
    return card.labels.index("person") + 1


class PersonDetector:
    """``PersonDetector(weights)(image) -> (N, 5)`` person boxes ``x0, y0, x1, y1, score`` (float32).

    ``weights``: a zoo name, a carded file (a torchvision detector of the zoo, or one of ours), an uncarded
    torchvision state dict of architecture ``arch`` with ``num_classes`` outputs (91 for torchvision's COCO
    models), a URL or a hub name; or a built detector module. ``image`` is a path or an RGB array; boxes
    below ``score_thr`` are dropped and the rest sorted by score. ``info`` names the weights for
    ``results.json`` (entry, published metric, licence).
    """

    def __init__(
        self,
        weights: str | Path | nn.Module,
        score_thr: float = 0.5,
        device: str | torch.device | None = None,
        arch: str = "fasterrcnn_resnet50_fpn",
        num_classes: int = 91,
    ) -> None:
        if not 0.0 <= score_thr <= 1.0:
            raise ValueError(f"score_thr must be in [0, 1], got {score_thr}")
        self.arch = arch
        self.score_thr = float(score_thr)
        self.device = resolve_device(device)
        self.person_label = PERSON_LABEL
        self._provided: Callable[[np.ndarray], np.ndarray] | None = None
        self.model: nn.Module | None = None
        if isinstance(weights, nn.Module):
            # a built torchvision-style detector, used as it is: the person label is its card's "person"
            # class when it has one
            self.model = weights
            card = getattr(self.model, "card", None)
            if card is not None:
                self.person_label = _person_label(card, card.model)
            self.info: dict[str, Any] = {"name": type(weights).__name__, "model": getattr(card, "model", "module")}
            self.model.eval().to(self.device)
            return
        path = resolve_weights(weights)
        card = read_card(path)
        if card is not None and card.task != "det":
            raise ValueError(f"{weights}: this is a {card.task!r} model ({card.model}), not a detector")
        self.info = weights_info(card, weights) or {"name": str(weights), "model": arch}
        if card is not None and card.meta.get("framework") != "torchvision":
            # our carded detection weights: the detection task provides the detector through the registry's
            # person_detector interface; pose never imports it
            _person_label(card, weights)
            factory = provider("person_detector").load()
            self._provided = factory(path, device=self.device, score_thr=score_thr)
            return
        if card is not None:  # a torchvision detector of the zoo: the card names its architecture
            self.arch = card.model
            self.person_label = _person_label(card, weights)
            self.model = build_torchvision_detector(card.model, card.num_outputs + 1)
        else:
            self.model = build_detector(arch, num_classes)
        load_detector_weights(self.model, path, self.arch)
        self.model = lean_person_detector(self.model.eval(), self.score_thr).to(self.device)

    @torch.inference_mode()
    def __call__(self, image: str | Path | np.ndarray) -> np.ndarray:
        rgb = as_rgb_array(image)
        if self._provided is not None:
            return self._provided(rgb)
        assert self.model is not None
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float().div_(255.0).to(self.device)
        out = self.model([x])[0]
        keep = (out["labels"] == self.person_label) & (out["scores"] >= self.score_thr)
        boxes = torch.cat([out["boxes"][keep], out["scores"][keep, None]], 1).cpu().numpy().astype(np.float32)
        return boxes[np.argsort(-boxes[:, 4], kind="stable")]

    detect = __call__


def detector_info(detector: Any) -> dict[str, Any] | None:
    """What ``results.json`` says about a detector: its ``info`` when it is a :class:`PersonDetector` or a
    :class:`~hrnet.pose.face_detector.FaceDetector` (name, cascade file and OpenCV version, licence), else
    its type (a callable, or an object with ``person_boxes``); None for no detector."""
    if detector is None:
        return None
    info = getattr(detector, "info", None)
    if isinstance(info, dict):
        return dict(info)
    owner = getattr(detector, "__self__", detector)
    return {"name": type(owner).__name__}


def as_person_detector(
    detector: Any, device: str | torch.device | None = None, score_thr: float = 0.5
) -> Callable[[np.ndarray], np.ndarray] | None:
    """Whatever a user hands ``PoseEstimator(detector=...)``, as a callable ``rgb -> (N, 5)`` person boxes.

    Accepted: ``None`` or ``"none"`` (no detector: the whole image is one person); ``"default"`` (the zoo's
    person detector); ``"opencv_face"`` (:class:`hrnet.pose.face_detector.FaceDetector`, face boxes for
    facial landmark models, from the Haar cascade shipped with OpenCV); any weights argument (zoo name, file,
    URL, hub name: see :class:`PersonDetector`); a built torchvision-style detector module; an object with a
    ``person_boxes`` method (``hrnet.detection.Detector``: duck-typed, because pose must not import the
    detection task); or any callable already returning boxes.
    """
    if detector is None or (isinstance(detector, str) and detector.lower() == NO_DETECTOR):
        return None
    if isinstance(detector, str) and detector.lower() == DEFAULT_DETECTOR:
        detector = task_default("person_detector").name
    if isinstance(detector, str) and detector.lower() == FACE_DETECTOR:
        return FaceDetector(score_thr=score_thr)
    if isinstance(detector, (str, Path, nn.Module)):
        return PersonDetector(detector, score_thr=score_thr, device=device)
    person_boxes = getattr(detector, "person_boxes", None)
    if callable(person_boxes):
        return lambda rgb: person_boxes(rgb, score_thr=score_thr)
    if callable(detector):
        return detector
    raise TypeError(
        f"detector must be a weights path or zoo name, a detector module, an object with person_boxes() or "
        f"a callable image -> (N, 5) boxes; got {type(detector).__name__}"
    )
