"""The Python API: ``Detector(name_or_weights)(image)`` -> :class:`DetResult`.

Images go through the detector exactly as in evaluation: RGB floats in [0, 1] handed to the torchvision
model, whose own transform resizes (the card's test size), normalises and maps the boxes back to the
image. Results are written as COCO results by the function evaluation uses
(:func:`~hrnet.detection.evaluation.to_coco_results`), so ``to_json()`` carries the dataset's own category
ids, ready for pycocotools or a test server.

>>> det = Detector("runs/det/model_best.safetensors")             # doctest: +SKIP
>>> res = det("street.jpg"); res.boxes, res.names, res.scores      # doctest: +SKIP
>>> pose = PoseEstimator(pose_weights, detector=det.person_boxes)   # doctest: +SKIP
"""

from __future__ import annotations

import colorsys
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN

from hrnet.detection.centernet import CenterNet
from hrnet.detection.evaluation import to_coco_results
from hrnet.detection.labels import default_classes
from hrnet.detection.model import build_detector, set_test_options
from hrnet.detection.transforms import to_tensor
from hrnet.engine.distributed import resolve_device
from hrnet.inputs import Frame, as_frames, batched
from hrnet.io import as_rgb_array
from hrnet.loader import resolve_model
from hrnet.models.fuse import fuse
from hrnet.results import Result
from hrnet.runtime import FP32_TOLERANCE, relative_error

log = logging.getLogger("hrnet")

# torchvision detectors take lists of images of any size, so the fixed-shape runtimes (compile, onnx) do not
# apply; "torch" is the detector with every backbone BatchNorm folded into its conv (what "auto" picks)
RUNTIMES = ("auto", "eager", "torch")
DRAW_THR = 0.3


def _colour(label: int) -> tuple[int, int, int]:
    """A distinct, stable RGB colour per class label (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((label * 0.618034) % 1.0, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


@dataclass
class DetResult(Result):
    """Detections of one image, best first: ``boxes`` (N, 4) x1, y1, x2, y2 in image pixels, ``scores`` (N,),
    ``labels`` (N,) in 1..K (``class_names[label - 1]``, written as ``category_ids[label - 1]``), and when the
    model has them ``masks`` (N, H, W) bool and ``keypoints`` (N, J, 3)."""

    image: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    category_ids: list[int]
    path: str | None = None
    masks: np.ndarray | None = None
    keypoints: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def names(self) -> list[str]:
        """The class name of every detection."""
        return [self.class_names[int(lab) - 1] for lab in self.labels]

    def boxes_of(self, class_name: str, score_thr: float = 0.0) -> np.ndarray:
        """(M, 5) float32 ``x1, y1, x2, y2, score`` of one class scored at least ``score_thr``, best first."""
        if class_name not in self.class_names:
            raise ValueError(
                f"no class {class_name!r} in this detector (classes: {', '.join(self.class_names[:8])}"
                f"{', ...' if len(self.class_names) > 8 else ''})"
            )
        label = self.class_names.index(class_name) + 1
        keep = (self.labels == label) & (self.scores >= score_thr)
        out = np.concatenate([self.boxes[keep], self.scores[keep, None]], axis=1).astype(np.float32)
        return out[np.argsort(-out[:, 4], kind="stable")]

    def to_coco(self, image_id: int | str = 0) -> list[dict[str, Any]]:
        """COCO results (``bbox`` x, y, w, h; the file's ``category_id``; RLE ``segmentation`` with masks)."""
        out: dict[str, torch.Tensor] = {
            "boxes": torch.from_numpy(self.boxes),
            "scores": torch.from_numpy(self.scores),
            "labels": torch.from_numpy(self.labels),
        }
        if self.masks is not None:
            out["masks"] = torch.from_numpy(self.masks)[:, None].float()
        if self.keypoints is not None:
            out["keypoints"] = torch.from_numpy(self.keypoints)
        results = to_coco_results(out, 0, self.category_ids)
        for r in results:
            r["image_id"] = image_id
        return results

    def to_json(self) -> dict[str, Any]:
        """The image and its detections as COCO results, each with its ``category_name``."""
        stem = Path(self.path).stem if self.path else ""
        image_id: int | str = int(stem) if stem.isdigit() else (self.path or 0)
        names = self.names
        detections = [{**r, "category_name": n} for r, n in zip(self.to_coco(image_id), names)]
        return {**self._header(), "detections": detections}

    def plot(self, score_thr: float = DRAW_THR, alpha: float = 0.5, show_masks: bool = True) -> np.ndarray:
        """RGB uint8 copy of the image with the boxes (and masks) scored at least ``score_thr``, labelled
        ``name score``; lower-scored detections stay in :meth:`to_json` but are not drawn."""
        out = self.image.copy()
        order = [i for i in np.argsort(self.scores, kind="stable") if self.scores[i] >= score_thr]  # best on top
        if show_masks and self.masks is not None:
            for i in order:
                m = self.masks[i]
                out[m] = (out[m] * (1 - alpha) + np.array(_colour(int(self.labels[i]))) * alpha).astype(np.uint8)
        scale = max(0.4, min(out.shape[:2]) / 600)
        thick = max(1, int(round(2 * scale)))
        for i in order:
            colour = _colour(int(self.labels[i]))
            x1, y1, x2, y2 = (int(round(float(v))) for v in self.boxes[i])
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
            text = f"{self.class_names[int(self.labels[i]) - 1]} {self.scores[i]:.2f}"
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
            top = max(0, y1 - th - base - 2)
            cv2.rectangle(out, (x1, top), (x1 + tw + 2, top + th + base + 2), colour, -1)
            cv2.putText(
                out, text, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (0, 0, 0), 1, cv2.LINE_AA
            )
        return out


@torch.no_grad()
def fused_detector(model: nn.Module, runtime: str) -> tuple[nn.Module, str]:
    """The eval-mode detector as ``runtime`` runs it, and the runtime actually used.

    ``eager`` returns ``model``; ``torch`` and ``auto`` fold the BatchNorms (:func:`hrnet.fuse`) and compare the
    backbone output with eager on one random image. Above the runtimes' fp32 tolerance ``torch`` is an error
    and ``auto`` falls back to eager with a warning. The fused model is a copy: ``model`` is left as it was.
    """
    if runtime == "eager":
        return model, "eager"
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0)).to(next(model.parameters()).device)
    fused = fuse(model)
    err = relative_error(model.backbone(x), fused.backbone(x))
    if err <= FP32_TOLERANCE:
        return fused, "torch"
    if runtime == "torch":
        raise ValueError(
            f"runtime 'torch': the fused detector differs from eager by {err:.2e} (relative); use runtime 'eager'"
        )
    log.warning("fused detector differs from eager by %.2e (relative); running eagerly", err)
    return model, "eager"


def num_classes_of(model: nn.Module) -> int:
    """Object classes (without background) a built detector predicts."""
    if isinstance(model, CenterNet):
        return int(model.num_classes)
    if isinstance(model, FasterRCNN):
        heads = model.roi_heads
        predictor = heads.box_predictors[0] if hasattr(heads, "box_predictors") else heads.box_predictor
        return int(predictor.cls_score.out_features) - 1
    head = getattr(model, "head", None)
    if head is not None and hasattr(head, "classification_head"):
        return int(head.classification_head.num_classes)
    raise ValueError(f"{type(model).__name__} is not a detector of hrnet.detection (cannot tell its class count)")


def inference_settings(model: nn.Module) -> dict[str, Any]:
    """The test settings a built detector runs with: score threshold, NMS IoU (None: CenterNet has none),
    detections per image."""
    if isinstance(model, CenterNet):
        return {"score_thresh": float(model.score_thresh), "nms_thresh": None, "detections_per_img": int(model.topk)}
    target = model.roi_heads if isinstance(model, FasterRCNN) else model
    return {
        "score_thresh": float(target.score_thresh),
        "nms_thresh": float(target.nms_thresh),
        "detections_per_img": int(target.detections_per_img),
    }


class Detector:
    """Object detection (and instance masks) with an HRNetV2p detector.

    ``Detector("model_best.safetensors")`` rebuilds a trained detector from its card: architecture, class
    names, the dataset's category ids, BGR / normalisation, test size and settings. For files without a card
    give the name and the file: ``Detector("cascade_mask_rcnn_hrnet_w32", weights="official.pth", bgr=True)``
    (official HRNet-Object-Detection / mmdet checkpoints; 80 classes get COCO's names and ids). A built
    module works too. Keyword ``options`` are builder keywords of a named model (``neck_channels``,
    ``backbone_overrides``, ``bgr``, ...). ``num_classes`` that disagrees with the weights is an error,
    never a new head. ``score_thr`` / ``nms_thr`` / ``max_detections`` / ``min_size`` / ``max_size``
    override the card's test settings. ``device=None`` picks CUDA when present. ``runtime``: ``torch``
    folds every backbone BatchNorm into its convolution (:func:`hrnet.fuse`; 1.1x on a CPU), ``auto`` (default)
    does the same after checking the fused features against eager on one random image, ``eager`` runs the
    model as built. torchvision detectors take lists of images of any size, so ``compile`` / ``onnx`` do not
    apply. The fused model is a copy; a module handed in is left as it was.
    """

    def __init__(
        self,
        model: str | Path | nn.Module = "faster_rcnn_hrnet_w32",
        weights: str | Path | None = None,
        *,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        category_ids: Sequence[int] | None = None,
        score_thr: float | None = None,
        nms_thr: float | None = None,
        max_detections: int | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        mask_thr: float = 0.5,
        batch_size: int = 4,
        device: str | torch.device | None = None,
        runtime: str = "auto",
        **options: Any,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(
                f"runtime {runtime!r} is not available for detection: torchvision detectors take lists "
                f"of images of any size, which fixed-shape runtimes do not (use one of {RUNTIMES})"
            )
        if isinstance(model, nn.Module) and options:
            raise ValueError(f"builder options {sorted(options)} apply to a model name, not to a built model")
        for name, value in (("score_thr", score_thr), ("nms_thr", nms_thr), ("mask_thr", mask_thr)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

        def build(name: str) -> nn.Module:
            n = num_classes or (len(class_names) if class_names is not None else 80)
            return build_detector(name, num_classes=n, **options)

        net, card = resolve_model("det", model, weights, build)
        n_out = num_classes_of(net)
        if num_classes is not None and num_classes != n_out:
            raise ValueError(
                f"{weights or model}: num_classes={num_classes} but the weights detect {n_out} classes "
                f"(leave num_classes out to use them as they are)"
            )
        if card is not None:
            names, ids = list(card.labels), [int(i) for i in card.meta.get("category_ids", range(1, n_out + 1))]
        else:
            names, ids = default_classes(n_out)
        self.class_names = list(class_names) if class_names is not None else names
        self.category_ids = [int(i) for i in category_ids] if category_ids is not None else ids
        for what, values in (("class names", self.class_names), ("category ids", self.category_ids)):
            if len(values) != n_out:
                raise ValueError(f"{len(values)} {what} for a detector of {n_out} classes")
        set_test_options(net, score_thr, nms_thr, max_detections)
        if min_size is not None or max_size is not None:
            net.transform.min_size = (int(min_size),) if min_size is not None else net.transform.min_size
            net.transform.max_size = int(max_size) if max_size is not None else net.transform.max_size
        self.num_classes = n_out
        self.card = card
        self.mask_thr = float(mask_thr)
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.model, self.runtime = fused_detector(net.to(self.device).eval(), runtime)

    @property
    def test(self) -> dict[str, Any]:
        """The settings predictions are made with (for logs and ``results.json``)."""
        t = self.model.transform
        return {**inference_settings(self.model), "min_size": int(t.min_size[-1]), "max_size": int(t.max_size)}

    def _result(self, rgb: np.ndarray, path: str | None, out: dict[str, torch.Tensor]) -> DetResult:
        out = {k: v.detach().float().cpu() if k != "labels" else v.detach().cpu() for k, v in out.items()}
        masks = (out["masks"][:, 0] > self.mask_thr).numpy() if "masks" in out else None
        keypoints = out["keypoints"].numpy().astype(np.float32) if "keypoints" in out else None
        return DetResult(
            rgb,
            out["boxes"].numpy().astype(np.float32),
            out["scores"].numpy().astype(np.float32),
            out["labels"].numpy().astype(np.int64),
            self.class_names,
            self.category_ids,
            path,
            masks,
            keypoints,
        )

    @torch.no_grad()
    def _run(self, images: list[np.ndarray], paths: list[str | None], batch_size: int | None) -> list[DetResult]:
        results = []
        for idx in batched(range(len(images)), batch_size or self.batch_size):
            outputs = self.model([to_tensor(images[i]).to(self.device) for i in idx])
            results += [self._result(images[i], paths[i], o) for i, o in zip(idx, outputs)]
        return results

    def __call__(self, image: str | Path | np.ndarray) -> DetResult:
        """Detections in one image (path or RGB array)."""
        rgb = as_rgb_array(image)
        return self._run([rgb], [str(image) if isinstance(image, (str, Path)) else None], 1)[0]

    def predict(self, images: Any, batch_size: int | None = None) -> list[DetResult]:
        """Detections in many images (paths, folders, globs, videos, arrays), ``batch_size`` per forward pass.

        A batch is padded to its largest image, which can change scores in the last decimals; images of
        one size (video frames) give exactly their one-by-one results.
        """
        return self.predict_frames(list(as_frames(images)), batch_size)

    def predict_frames(self, frames: list[Frame], batch_size: int | None = None) -> list[DetResult]:
        """:meth:`predict` on frames already read (what ``hrnet det predict`` feeds)."""
        bad = next((f for f in frames if f.error or f.image is None), None)
        if bad is not None:
            raise ValueError(bad.error or "empty frame")
        return self._run(
            [f.image for f in frames], [str(f.source.path) if f.source else None for f in frames], batch_size
        )

    def person_boxes(
        self, image: str | Path | np.ndarray, score_thr: float = 0.5, class_name: str = "person"
    ) -> np.ndarray:
        """(N, 5) float32 ``x1, y1, x2, y2, score`` of the people (or ``class_name``) in ``image``, best first:
        the detector callable top-down pose estimation takes (``PoseEstimator(..., detector=det.person_boxes)``)."""
        if class_name not in self.class_names:
            raise ValueError(
                f"this detector has no {class_name!r} class (classes: "
                f"{', '.join(self.class_names[:8])}{', ...' if len(self.class_names) > 8 else ''})"
            )
        return self(image).boxes_of(class_name, score_thr)
