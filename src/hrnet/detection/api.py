"""The Python API: ``Detector(name_or_weights)(image)`` -> :class:`DetResult`.

Images go through the detector exactly as in evaluation: RGB floats in [0, 1] handed to the torchvision
model, whose own transform resizes (the card's test size), normalises and maps the boxes back to the
image. Results are written as COCO results by the function evaluation uses
(:func:`~hrnet.detection.evaluation.to_coco_results`), so ``to_json()`` carries the dataset's own category
ids, ready for pycocotools or a test server.

>>> det = Detector("runs/det/model_best.safetensors")             # doctest: +SKIP
>>> res = det("street.jpg"); res.boxes, res.names, res.scores      # doctest: +SKIP
>>> pose = PoseEstimator(pose_weights, detector=det.person_boxes)   # doctest: +SKIP
>>> for res in det.track("street.mp4", classes=["person"], stream=True): res.track_ids   # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN

from hrnet.detection.centernet import CenterNet
from hrnet.detection.checkpoints import ForeignDetectorError
from hrnet.detection.evaluation import to_coco_results
from hrnet.detection.labels import default_classes
from hrnet.detection.model import build_detector, model_from_card, set_test_options
from hrnet.detection.transforms import to_tensor
from hrnet.engine.distributed import resolve_device
from hrnet.inputs import Frame, as_frames, batched, stream_results
from hrnet.io import as_rgb_array
from hrnet.labels import check_num_classes
from hrnet.models.fuse import fuse
from hrnet.models.resolve import resolve_model
from hrnet.pretrained import resolve_arguments, weights_info
from hrnet.results import RANDOM_WEIGHTS, Result, warn_random_weights
from hrnet.runtime import FP32_TOLERANCE, relative_error
from hrnet.track.draw import distinct_colour, draw_labelled_box
from hrnet.track.session import TrackOptions, VideoTracker
from hrnet.track.tracker import UNTRACKED

log = logging.getLogger("hrnet")

# torchvision detectors take lists of images of any size, so the fixed-shape runtimes (compile, onnx) do not
# apply; "torch" is the detector with every backbone BatchNorm folded into its conv (what "auto" picks)
RUNTIMES = ("auto", "eager", "torch")
DRAW_THR = 0.3
TRACK_THR = 0.5  # detections scored below this start and continue no track


@dataclass
class DetResult(Result):
    """Detections of one image, best first: ``boxes`` (N, 4) x1, y1, x2, y2 in image pixels, ``scores`` (N,),
    ``labels`` (N,) in 1..K (``class_names[label - 1]``, written as ``category_ids[label - 1]``), and when the
    model has them ``masks`` (N, H, W) bool and ``keypoints`` (N, J, 3). Tracked results also have
    ``track_ids`` (N,) (-1: not tracked), the frame's number in its video (``frame_index``) and ``time``."""

    image: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    category_ids: list[int]
    path: str | None = None
    masks: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    frame_index: int | None = None
    time: float | None = None

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
        out: dict[str, Any] = {**self._header(), "detections": detections}
        if self.track_ids is not None:
            for d, track_id in zip(detections, self.track_ids):
                d["track_id"] = int(track_id)
            out["time"] = round(float(self.time or 0.0), 4)
        return out

    def tracked_boxes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N,) track IDs, (N, 4) boxes and (N,) scores (IDs -1 when the result was not tracked)."""
        ids = self.track_ids if self.track_ids is not None else np.full(len(self), UNTRACKED)
        return ids, self.boxes, self.scores

    def track_table(self) -> tuple[list[str], list[list[object]]]:
        """The per-track CSV's columns after frame, time, id (class, score, x1, y1, x2, y2) and one row per
        tracked detection."""
        ids = self.tracked_boxes()[0]
        rows = [
            [int(ids[i]), self.class_names[int(self.labels[i]) - 1], round(float(self.scores[i]), 4)]
            + [round(float(v), 2) for v in self.boxes[i]]
            for i in np.flatnonzero(ids >= 0)
        ]
        return ["class", "score", "x1", "y1", "x2", "y2"], rows

    def plot(self, score_thr: float = DRAW_THR, alpha: float = 0.5, show_masks: bool = True) -> np.ndarray:
        """RGB uint8 copy of the image with the boxes (and masks) scored at least ``score_thr``, labelled
        ``name score``; lower-scored detections stay in :meth:`to_json` but are not drawn. A tracked
        detection has the one colour of its ID and ``id N`` in its label."""
        out = self.image.copy()
        order = [i for i in np.argsort(self.scores, kind="stable") if self.scores[i] >= score_thr]  # best on top
        ids = self.tracked_boxes()[0]
        colours = [distinct_colour(int(t if t >= 0 else lab)) for t, lab in zip(ids, self.labels)]
        if show_masks and self.masks is not None:
            for i in order:
                m = self.masks[i]
                out[m] = (out[m] * (1 - alpha) + np.array(colours[i]) * alpha).astype(np.uint8)
        for i in order:
            text = f"{self.class_names[int(self.labels[i]) - 1]} {self.scores[i]:.2f}"
            draw_labelled_box(out, self.boxes[i], f"id {int(ids[i])} {text}" if ids[i] >= 0 else text, colours[i])
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

    ``Detector()`` runs the zoo's default COCO detector (``faster_rcnn_hrnet_w32.coco``, mmdet's weights);
    ``Detector("cascade_mask_rcnn_hrnet_w32.coco")`` another zoo entry (``hrnet list --pretrained``),
    downloaded and verified once.
    ``Detector("model_best.safetensors")`` rebuilds a trained detector from its card: architecture, class
    names, the dataset's category ids, colour order / normalisation, anchor placement, test size and settings.
    For files without a card give the name and the file: ``Detector("cascade_mask_rcnn_hrnet_w32",
    weights="official.pth")`` (official HRNet-Object-Detection / mmdet checkpoints, which run with their own
    framework's anchors, RoIAlign and RGB input; 80 classes get COCO's names and ids). A built module works
    too. Keyword ``options`` are builder keywords of a named model (``neck_channels``, ``backbone_overrides``,
    ``layout``, ``bgr`` for your own BGR-trained weights, ...). ``num_classes`` that disagrees with the
    weights is an error, never a new head. ``score_thr`` / ``nms_thr`` / ``max_detections`` / ``min_size`` /
    ``max_size`` override the card's test settings. ``device=None`` picks CUDA when present. ``runtime``: ``torch``
    folds every backbone BatchNorm into its convolution (:func:`hrnet.fuse`; 1.1x on a CPU), ``auto`` (default)
    does the same after checking the fused features against eager on one random image, ``eager`` runs the
    model as built. torchvision detectors take lists of images of any size, so ``compile`` / ``onnx`` do not
    apply. The fused model is a copy; a module handed in is left as it was.

    Args:
        model: None (the zoo's default), a zoo entry (``"mask_rcnn_hrnet_w32.coco"``), a carded weights
            file, URL or ``hf-hub:org/repo``, a detector name such as ``"faster_rcnn_hrnet_w32"``, or a built
            detector. A bare name without ``weights`` has random weights (a warning says so).
        weights: weights for a named model: a zoo entry, or a file / URL / hub name (official
            HRNet-Object-Detection, mmdet or ours).
        pretrained: a bare model name gets the weights of its default zoo tag.
        num_classes: object classes without the background; default: ``class_names``' count, else 80.
        class_names: one name per class; default: the card's, else COCO's for 80 classes.
        category_ids: the dataset's id of each class, written in the COCO results; default: the card's.
        score_thr: keep detections scored at least this.
        nms_thr: IoU threshold of the per-class non-maximum suppression.
        max_detections: detections kept per image.
        min_size: shorter side the image is resized to.
        max_size: longest side allowed after that resize.
        mask_thr: mask probability above which a pixel belongs to the object.
        batch_size: images per forward pass.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; ``None`` picks CUDA when present.
        runtime: ``"auto"``, ``"torch"`` or ``"eager"``.
        **options: builder keywords of a named model (``bgr``, ``neck_channels``, ``backbone_overrides``).

    Example:
        ::

            det = Detector("model_best.safetensors")  # or "faster_rcnn_hrnet_w32", weights="official.pth"
            res = det("street.jpg")
            res.boxes, res.scores, res.names  # (N, 4) x1, y1, x2, y2 pixels; (N,); class names
            res.save("street_boxes.jpg")  # boxes, labels and masks drawn
    """

    def __init__(
        self,
        model: str | Path | nn.Module | None = None,
        weights: str | Path | None = None,
        *,
        pretrained: bool = False,
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

        model, weights, given = resolve_arguments("det", model, weights, pretrained=pretrained)
        try:
            net, card = resolve_model("det", model, weights, build, model_from_card)
        except ForeignDetectorError as err:  # name the file, which the key conversion does not know
            raise ForeignDetectorError(f"{weights or model}: {err}") from err
        # a bare name builds an untrained network: said once here, and "weights": "random" in every result
        self.random_weights = card is None and weights is None and not isinstance(model, nn.Module)
        if self.random_weights:
            warn_random_weights(str(model))
        self.weights_info = weights_info(card, given)  # entry, metric, licence of zoo weights
        n_out = num_classes_of(net)
        check_num_classes(weights or model, num_classes, n_out, "detect")
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
        result = DetResult(
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
        result.weights = RANDOM_WEIGHTS if self.random_weights else None
        return result

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

    def predict(
        self, images: Any, batch_size: int | None = None, stream: bool = False
    ) -> list[DetResult] | Iterator[DetResult]:
        """Detections in many images (paths, folders, globs, videos, webcam indices, stream URLs, arrays),
        ``batch_size`` per forward pass; ``stream=True`` returns a generator that holds one batch at a time.

        A batch is padded to its largest image, which can change scores in the last decimals; images of
        one size (video frames) give exactly their one-by-one results.
        """
        size = batch_size or self.batch_size
        results = stream_results(as_frames(images), size, lambda chunk: self.predict_frames(chunk, size))
        return results if stream else list(results)

    def track(
        self, source: Any, classes: Sequence[str] | None = None, stream: bool = False, **options: Any
    ) -> list[DetResult] | Iterator[DetResult]:
        """Detections with persistent IDs over a video, stream, webcam or image sequence.

        Detections of ``classes`` (names; default all) scored at least ``min_score`` (default 0.5) are
        tracked (:class:`hrnet.track.Tracker` by box IoU, a track keeps its class); the others keep
        ``track_id`` -1. Tracked boxes are smoothed per track (one-euro for videos by default). ``options``
        are those of :class:`hrnet.track.TrackOptions` (``keep_alive``, ``iou_thr``, ``smooth``, ...).
        ``stream=True`` yields results as they come.
        """
        tracker = VideoTracker(TrackOptions.from_kwargs({"min_score": TRACK_THR, **options}))
        results = stream_results(as_frames(source), 1, lambda chunk: self.track_frames(chunk, tracker, classes))
        return results if stream else list(results)

    def track_frames(
        self, frames: list[Frame], tracker: VideoTracker, classes: Sequence[str] | None = None
    ) -> list[DetResult]:
        """:meth:`track` on frames already read, continuing ``tracker`` (what ``hrnet det track`` feeds)."""
        wanted = None if classes is None else self.labels_of(classes)
        results = self.predict_frames(frames)
        for frame, res in zip(frames, results):
            tracker.start(frame)
            keep = res.scores >= tracker.options.min_score
            if wanted is not None:
                keep &= np.isin(res.labels, wanted)
            ids = np.full(len(res), UNTRACKED, dtype=np.int64)
            corners = res.boxes[keep].reshape(-1, 2, 2)
            ids[keep], smoothed = tracker.update(res.boxes[keep], res.scores[keep], corners, labels=res.labels[keep])
            if smoothed is not None:
                res.boxes[keep] = smoothed.reshape(-1, 4).astype(np.float32)
            res.track_ids, res.frame_index, res.time = ids, tracker.index, tracker.time
        return results

    def predict_frames(self, frames: list[Frame], batch_size: int | None = None) -> list[DetResult]:
        """:meth:`predict` on frames already read (what ``hrnet det predict`` feeds)."""
        bad = next((f for f in frames if f.error or f.image is None), None)
        if bad is not None:
            raise ValueError(bad.error or "empty frame")
        return self._run(
            [f.image for f in frames], [str(f.source.path) if f.source else None for f in frames], batch_size
        )

    def labels_of(self, classes: Sequence[str]) -> np.ndarray:
        """The labels (1..K) of class names; a name the detector does not have is one error listing a few."""
        unknown = [c for c in classes if c not in self.class_names]
        if unknown:
            shown = ", ".join(self.class_names[:8]) + (", ..." if len(self.class_names) > 8 else "")
            raise ValueError(f"no class {', '.join(map(repr, unknown))} in this detector (classes: {shown})")
        return np.array([self.class_names.index(c) + 1 for c in classes], dtype=np.int64)

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


def person_detector(
    weights: str | Path, device: str | torch.device | None = None, score_thr: float = 0.5
) -> Callable[[np.ndarray], np.ndarray]:
    """The ``person_detector`` this task provides through the registry (:mod:`hrnet.tasks`): our carded
    detection weights as a callable ``rgb -> (N, 5)`` person boxes, what top-down pose takes. A detector
    without a 'person' class is refused here, before any image is read."""
    detector = Detector(weights, device=device)
    if "person" not in detector.class_names:
        shown = ", ".join(detector.class_names[:6])
        raise ValueError(f"{weights}: the detector has no 'person' class (classes: {shown}, ...)")
    return functools.partial(detector.person_boxes, score_thr=score_thr)
