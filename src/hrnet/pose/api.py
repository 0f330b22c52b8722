"""Python API: ``PoseEstimator(name_or_weights)(image, boxes)`` -> :class:`PoseResult`.

``PoseEstimator()`` is the zoo's default COCO model (``pose_hrnet_w32.coco_256x192``) with the zoo's default
person detector: ``PoseEstimator()("photo.jpg")`` finds every person and their keypoints. Boxes are (N, 4)
or (N, 5) **x1, y1, x2, y2[, score]** in image pixels, like torchvision detectors. Without boxes, a
``detector`` supplies them: by default the zoo's person detector (downloaded on the first image that needs
it), a zoo name or weights file of another (:class:`hrnet.pose.detector.PersonDetector`), an
``hrnet.detection.Detector`` (its ``person_boxes``), a detector module, or any callable image_rgb -> (N, 5)
xyxy + score; with ``detector=None`` (or ``"none"``) the whole image is one person and the result says so
(``boxes_source == "whole image"``). The crops, flip test and decoding are those of evaluation
(:func:`hrnet.pose.inference.predict_crops`). ``predict(..., stream=True)`` yields one result per frame
with bounded memory; ``track(video)`` gives every person a persistent ``track_id``, smoothed keypoints and,
with ``det_every=N``, runs the detector on every N-th frame only (docs/video.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hrnet.engine.distributed import resolve_device
from hrnet.inputs import Frame, as_frames, batched, stream_results
from hrnet.io import as_rgb_array
from hrnet.models.resolve import resolve_model
from hrnet.models.zoo import create_model
from hrnet.pose.boxes import describe_counts, validate_boxes
from hrnet.pose.codec import HeatmapCodec
from hrnet.pose.config import PoseTestConfig
from hrnet.pose.detector import DEFAULT_DETECTOR, as_person_detector, detector_info
from hrnet.pose.evaluation import rescore
from hrnet.pose.face_detector import FACE_DETECTOR, is_face_keypoint_set
from hrnet.pose.inference import crop_people, predict_crops
from hrnet.pose.keypoints import COCO_KEYPOINTS, KeypointSet, load_keypoint_set
from hrnet.pose.model import card_keypoint_set, card_test_config, model_from_card
from hrnet.pose.visualize import draw_poses
from hrnet.pretrained import resolve_arguments, weights_info
from hrnet.results import RANDOM_WEIGHTS, Result, warn_random_weights
from hrnet.runtime import FACADE_RUNTIMES, facade_forward
from hrnet.track.draw import distinct_colour, draw_labelled_box
from hrnet.track.session import TrackOptions, VideoTracker

Detector = Callable[[np.ndarray], Any] | nn.Module | str | Path  # see as_person_detector
DEFAULT_INPUT_SIZE = (256, 192)  # (H, W) of the paper's COCO crops


@dataclass
class PoseResult(Result):
    """Poses of one image: ``keypoints`` (N, K, 2) as (x, y) pixels, ``scores`` (N, K), ``boxes`` (N, 4)
    x1, y1, x2, y2 and ``box_scores`` (N,); ``boxes_source`` is "given", "detector", "whole image" or
    "tracked" (carried from the previous frame's keypoints). Tracked results also have ``track_ids`` (N,)
    (-1: a person no track took), the frame's number in its video (``frame_index``) and ``time`` (s)."""

    image: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    keypoint_set: KeypointSet = field(default_factory=lambda: COCO_KEYPOINTS)
    path: str | None = None
    boxes_source: str = "given"
    box_counts: dict[str, int] = field(default_factory=dict)
    track_ids: np.ndarray | None = None
    frame_index: int | None = None
    time: float | None = None

    def __len__(self) -> int:
        return len(self.keypoints)

    def to_coco(self, image_id: int | str = 0, category_id: int = 1) -> list[dict]:
        """COCO keypoint results: one dict per person with ``keypoints`` [x, y, score]*K, ``score``
        (box score x mean keypoint score above 0.2, as in evaluation) and ``bbox`` [x, y, w, h]."""
        person = rescore(self.scores, self.box_scores) if len(self) else np.zeros(0)
        out = []
        for i in range(len(self)):
            kp = np.concatenate([self.keypoints[i], self.scores[i][:, None]], axis=1).reshape(-1)
            x1, y1, x2, y2 = self.boxes[i]
            out.append(
                {
                    "image_id": image_id,
                    "category_id": category_id,
                    "keypoints": [round(float(v), 3) for v in kp],
                    "score": float(person[i]),
                    "bbox": [round(float(v), 2) for v in (x1, y1, x2 - x1, y2 - y1)],
                }
            )
            if self.track_ids is not None:
                out[-1]["track_id"] = int(self.track_ids[i])
        return out

    def to_json(self) -> dict[str, Any]:
        """The image, keypoint names, where the boxes came from, and the people as COCO results."""
        stem = Path(self.path).stem if self.path else ""
        image_id: int | str = int(stem) if stem.isdigit() else (self.path or 0)
        out = {
            **self._header(),
            "keypoint_names": list(self.keypoint_set.names),
            "boxes_source": self.boxes_source,
            "people": self.to_coco(image_id),
        }
        if self.box_counts:
            out["box_counts"] = dict(self.box_counts)
        if self.time is not None:
            out["time"] = round(self.time, 4)
        return out

    def tracked_boxes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N,) track IDs, (N, 4) boxes and (N,) box scores (IDs -1 when the result was not tracked)."""
        ids = self.track_ids if self.track_ids is not None else np.full(len(self), -1)
        return ids, self.boxes, self.box_scores

    def track_table(self) -> tuple[list[str], list[list[object]]]:
        """The per-track CSV's columns after frame, time, id: box score and corners, then ``<name>_x``,
        ``<name>_y``, ``<name>_score`` per keypoint of the set; one row per tracked person."""
        columns = ["box_score", "box_x1", "box_y1", "box_x2", "box_y2"]
        columns += [f"{n}_{c}" for n in self.keypoint_set.names for c in ("x", "y", "score")]
        ids = self.tracked_boxes()[0]
        rows = []
        for i in np.flatnonzero(ids >= 0):
            kp = np.concatenate([self.keypoints[i], self.scores[i][:, None]], axis=1).reshape(-1)
            values = [float(self.box_scores[i]), *map(float, self.boxes[i]), *map(float, kp)]
            rows.append([int(ids[i]), *(round(v, 3) for v in values)])
        return columns, rows

    def warnings(self) -> list[str]:
        """Boxes that were given but not used: wholly outside the image (dropped) or NaN / empty (skipped)."""
        lost = {k: n for k, n in self.box_counts.items() if k in ("outside", "bad") and n}
        return [describe_counts(lost)] if lost else []

    def plot(self, kpt_thr: float = 0.3, show_boxes: bool = True) -> np.ndarray:
        """RGB uint8 copy of the image with the skeletons (and boxes) drawn; a tracked person in the one
        colour of their ID, with the ID on their box."""
        if self.track_ids is None:
            return draw_poses(
                self.image,
                self.keypoints,
                self.scores,
                self.keypoint_set.skeleton,
                boxes=self.boxes if show_boxes else None,
                kpt_thr=kpt_thr,
            )
        canvas = self.image.copy()
        colours = [distinct_colour(int(t)) if t >= 0 else (160, 160, 160) for t in self.track_ids]
        for i, colour in enumerate(colours):
            canvas = draw_poses(
                canvas,
                self.keypoints[i : i + 1],
                self.scores[i : i + 1],
                self.keypoint_set.skeleton,
                kpt_thr=kpt_thr,
                colors=[colour],
            )
        if show_boxes:
            for box, track_id, colour in zip(self.boxes, self.track_ids, colours):
                draw_labelled_box(canvas, box, f"id {int(track_id)}" if track_id >= 0 else "?", colour)
        return canvas


def _is_default(detector: object) -> bool:
    """True for the ``detector`` argument that means the zoo's person detector."""
    return isinstance(detector, str) and detector.lower() == DEFAULT_DETECTOR


def _same_set(a: KeypointSet, b: KeypointSet) -> bool:
    return list(a.names) == list(b.names)


class PoseEstimator:
    """Top-down pose estimation with an HRNet.

    ``PoseEstimator()`` runs the zoo's default COCO weights; ``PoseEstimator("pose_hrnet_w48.coco_384x288_dark")``
    another entry of the zoo (``hrnet list --pretrained``), downloaded and verified once.
    ``PoseEstimator("model_best.safetensors")`` rebuilds a trained model from its card (keypoint set,
    crop size, test settings); ``PoseEstimator("pose_hrnet_w32", weights="official.pth")`` builds a
    named model for files without a card, with ``keypoint_set`` (default COCO). Explicit options win
    over the card; a ``keypoint_set`` that disagrees with the weights is an error, never a new head.
    ``input_size`` is the crop (H, W); ``device=None`` picks CUDA when present. ``runtime`` runs the
    network: ``auto`` (default) the fastest runtime installed and checked against eager on this device
    (onnxruntime on a CPU when the ``onnx`` extra is installed), or ``eager`` / ``torch`` / ``compile`` /
    ``onnx`` (see :func:`hrnet.runtime.optimize_for_inference`); it is prepared on the first batch.

    Args:
        model: None (the zoo's default), a zoo entry (``"pose_hrnet_w32.coco_256x192"``), a carded weights
            file, URL or ``hf-hub:org/repo``, a model name such as ``"pose_hrnet_w32"``, or a built module.
            A bare name without ``weights`` has random weights (a warning says so).
        weights: weights for a named model: a zoo entry, or a file / URL / hub name (official HRNet,
            mmpose or ours).
        pretrained: a bare model name gets the weights of its default zoo tag.
        keypoint_set: a shipped set name (``"coco"``, ``"mpii"``, ...) or a YAML file; default: the
            card's, else COCO's 17 keypoints.
        input_size: the crop (H, W); default: the card's, else 256×192.
        flip_test: average with the mirrored crop; default: the card's test settings.
        shift_heatmap: shift the flipped heatmap by one pixel, as the official code; default: the card's.
        dark: DARK sub-pixel decoding; default: the card's.
        detector: gives person boxes when none are passed: ``"default"`` (the zoo's person detector,
            loaded on first use), a zoo name or detection weights, a callable image -> (N, 5) boxes, an
            :class:`hrnet.detection.Detector` or a detector module; None: the whole image is one person.
        batch_size: person crops per network batch.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; ``None`` picks CUDA when present.
        runtime: ``"auto"``, ``"eager"``, ``"torch"``, ``"compile"`` or ``"onnx"``.

    Example:
        ::

            est = PoseEstimator("model_best.safetensors")  # or "pose_hrnet_w32", weights="official.pth"
            res = est("photo.jpg", boxes=[[10, 20, 200, 400]])  # x1, y1, x2, y2 in pixels
            res.keypoints, res.scores  # (people, K, 2) x, y image pixels; (people, K)
            res.save("photo_pose.jpg")  # skeletons drawn
    """

    def __init__(
        self,
        model: str | Path | nn.Module | None = None,
        weights: str | Path | None = None,
        *,
        pretrained: bool = False,
        keypoint_set: KeypointSet | str | Path | None = None,
        input_size: Sequence[int] | None = None,
        flip_test: bool | None = None,
        shift_heatmap: bool | None = None,
        dark: bool | None = None,
        detector: Detector | None = DEFAULT_DETECTOR,
        batch_size: int = 32,
        device: str | torch.device | None = None,
        runtime: str = "auto",
    ) -> None:
        explicit = load_keypoint_set(keypoint_set) if keypoint_set is not None else None

        def build(name: str) -> nn.Module:
            return create_model(name, num_joints=(explicit or COCO_KEYPOINTS).num_keypoints)

        source, weights, given = resolve_arguments("pose", model, weights, pretrained=pretrained)
        net, card = resolve_model("pose", source, weights, build, model_from_card)
        # a bare name builds an untrained network: said once here, and "weights": "random" in every result
        self.random_weights = card is None and weights is None and not isinstance(source, nn.Module)
        if self.random_weights:
            warn_random_weights(str(source))
        self.weights_info = weights_info(card, given)  # entry, metric, licence of zoo weights
        if card is not None:
            ks = card_keypoint_set(card)
            if explicit is not None and not _same_set(explicit, ks):
                raise ValueError(
                    f"keypoint set {explicit.name!r} ({explicit.num_keypoints} keypoints) does not match "
                    f"the weights' own set {ks.name!r} ({ks.num_keypoints}: {', '.join(ks.names[:4])}, "
                    f"...); leave keypoint_set out to use the weights' set"
                )
            test = card_test_config(card)
            size = card.input_size or DEFAULT_INPUT_SIZE
        else:
            ks = explicit or COCO_KEYPOINTS
            test, size = PoseTestConfig(), DEFAULT_INPUT_SIZE  # the paper's test settings
        k = getattr(net, "head_size", ks.num_keypoints)
        if k != ks.num_keypoints:
            raise ValueError(f"the model predicts {k} keypoints but keypoint set {ks.name!r} has {ks.num_keypoints}")
        size = tuple(int(v) for v in (input_size or size))
        if len(size) != 2 or min(size) < 8:
            raise ValueError(f"input_size must be (H, W) of at least 8 pixels, got {input_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.card = card
        self.keypoint_set = ks
        self.device = resolve_device(device)
        self.model = net.to(self.device).eval()
        self.input_size = size
        # the codec takes (w, h) like the official configs
        self.codec = HeatmapCodec((size[1], size[0]), dark=test.dark if dark is None else bool(dark))
        self.flip_test = test.flip_test if flip_test is None else bool(flip_test)
        self.shift_heatmap = test.shift_heatmap if shift_heatmap is None else bool(shift_heatmap)
        # the default detector is loaded (downloaded once) on the first image without boxes; any other is
        # resolved here, so a wrong name or file is an error now
        self._detector_arg = detector
        self._detector = None if _is_default(detector) else as_person_detector(detector, self.device)
        self.batch_size = batch_size
        if runtime not in FACADE_RUNTIMES:
            raise ValueError(f"runtime must be one of {FACADE_RUNTIMES}, got {runtime!r}")
        self.runtime = runtime
        self._forward = None

    @property
    def detector(self) -> Callable[[np.ndarray], Any] | None:
        """The detector used for images given without boxes (None: the whole image is one person). The
        default is the face detector for a facial landmark set, the zoo's person detector otherwise; it is
        built on first use, so a model always given boxes never loads one."""
        if self._detector is None and _is_default(self._detector_arg):
            default = FACE_DETECTOR if is_face_keypoint_set(self.keypoint_set) else DEFAULT_DETECTOR
            self._detector = as_person_detector(default, self.device)
        return self._detector

    @detector.setter
    def detector(self, value: Detector | None) -> None:
        self._detector_arg = value
        self._detector = None if _is_default(value) else as_person_detector(value, self.device)

    @property
    def detector_info(self) -> dict[str, Any] | None:
        """What ``results.json`` says about the detector (None when the whole image is one person); loads
        the default detector if it is not loaded yet."""
        return detector_info(self.detector)

    @property
    def dark(self) -> bool:
        """Whether keypoints are decoded with DARK (a setting of the codec, fixed at construction)."""
        return self.codec.dark

    @property
    def forward(self):  # noqa: ANN201 - a callable like the model
        """The network as this estimator runs it (built on first use for the crop size)."""
        if self._forward is None:
            h, w = self.input_size
            self._forward = facade_forward(self.model, self.runtime, (2 if self.flip_test else 1, 3, h, w), self.device)
        return self._forward

    def _people(
        self, rgb: np.ndarray, boxes: Any, detector: Detector | None, skip_bad: bool = False
    ) -> tuple[np.ndarray, str, dict[str, int]]:
        """Validated (N, 5) boxes for one image and where they came from."""
        h, w = rgb.shape[:2]
        if boxes is None and detector is None:
            detector = self.detector
        if boxes is None and detector is None:
            return np.array([[0.0, 0.0, w - 1.0, h - 1.0, 1.0]]), "whole image", {}
        source = "given" if boxes is not None else "detector"
        raw = boxes if boxes is not None else detector(rgb)
        valid, counts = validate_boxes(raw, (h, w), source=f"{source} boxes", skip_bad=skip_bad)
        return valid, source, {k: v for k, v in counts.items() if v}

    def _run(self, frames: list[tuple[np.ndarray, str | None, np.ndarray, str, dict]]) -> list[PoseResult]:
        """Crops of every person of every frame, batched through the network, split back per frame."""
        crops, centers, scales, owner = [], [], [], []
        for i, (rgb, path, boxes, _, _) in enumerate(frames):
            if len(boxes):
                c, ce, sc = crop_people(rgb, boxes[:, :4], self.codec.input_size, source=path)
                crops.append(c)
                centers.append(ce)
                scales.append(sc)
                owner.extend([i] * len(boxes))
        k = self.keypoint_set.num_keypoints
        kpts, scores = np.zeros((0, k, 2)), np.zeros((0, k))
        if crops:
            all_crops, all_c, all_s = torch.cat(crops), np.concatenate(centers), np.concatenate(scales)
            expect = getattr(self.forward, "expect", None)
            if expect is not None:  # runtime "auto" decides for all the crops of these frames at once
                expect(len(all_crops) * (2 if self.flip_test else 1))
            parts = []
            for idx in batched(range(len(all_crops)), self.batch_size):
                sl = slice(idx[0], idx[-1] + 1)
                parts.append(
                    predict_crops(
                        self.model,
                        all_crops[sl],
                        all_c[sl],
                        all_s[sl],
                        self.codec,
                        self.keypoint_set.flip_pairs,
                        flip_test=self.flip_test,
                        shift_heatmap=self.shift_heatmap,
                        forward=self.forward,
                    )
                )
            kpts = np.concatenate([p[0] for p in parts])
            scores = np.concatenate([p[1] for p in parts])
        owner_arr = np.asarray(owner, dtype=np.int64)
        results = []
        for i, (rgb, path, boxes, source, counts) in enumerate(frames):
            sel = owner_arr == i
            results.append(
                PoseResult(
                    rgb,
                    kpts[sel],
                    scores[sel],
                    boxes[:, :4].copy(),
                    boxes[:, 4].copy(),
                    self.keypoint_set,
                    path,
                    source,
                    counts,
                )
            )
            results[-1].weights = RANDOM_WEIGHTS if self.random_weights else None
        return results

    def __call__(
        self, image: str | Path | np.ndarray, boxes: Any = None, detector: Detector | None = None
    ) -> PoseResult:
        """Poses in ``image`` (path or RGB array) for ``boxes`` (xyxy[, score]), else the detector's."""
        rgb = as_rgb_array(image)
        path = str(image) if isinstance(image, (str, Path)) else None
        detector = as_person_detector(detector, self.device)
        return self._run([(rgb, path, *self._people(rgb, boxes, detector))])[0]

    def predict(
        self,
        images: Any,
        boxes: Sequence[Any] | None = None,
        batch_size: int | None = None,
        detector: Detector | None = None,
        skip_bad: bool = False,
        stream: bool = False,
    ) -> list[PoseResult] | Iterator[PoseResult]:
        """Poses of many images (paths, folders, globs, videos, webcam indices, stream URLs, arrays): people
        are batched across ``batch_size`` images (default 8).

        ``boxes``, when given, is one box list per image in order. ``skip_bad`` counts NaN / empty
        boxes instead of raising. ``stream=True`` returns a generator that reads, runs and yields one
        batch at a time, so a long video or a live stream needs no more memory than one batch.
        """
        frames = as_frames(images)
        size = max(1, batch_size or 8)
        offset = 0

        def run(chunk: list[Frame]) -> list[PoseResult]:
            nonlocal offset
            given = None if boxes is None else boxes[offset : offset + len(chunk)]
            offset += len(chunk)
            return self.predict_frames(chunk, given, None, detector, skip_bad)

        results = stream_results(frames, size, run)
        return results if stream else list(results)

    def _frames_detector(
        self, frames: list[Frame], boxes: Sequence[Any] | None, detector: Detector | None
    ) -> Callable[[np.ndarray], Any] | None:
        """The checks :meth:`predict_frames` and :meth:`track_frames` share (a frame that could not be read,
        one box list per frame), then the detector a call names, as a callable (None: the estimator's)."""
        bad = next((f for f in frames if f.error), None)
        if bad is not None:
            raise ValueError(bad.error)
        if boxes is not None and len(boxes) != len(frames):
            raise ValueError(f"{len(boxes)} box lists for {len(frames)} images")
        return as_person_detector(detector, self.device)

    def predict_frames(
        self,
        frames: list[Frame],
        boxes: Sequence[Any] | None = None,
        batch_size: int | None = None,
        detector: Detector | None = None,
        skip_bad: bool = False,
    ) -> list[PoseResult]:
        """:meth:`predict` on frames already read (what ``hrnet pose predict`` feeds)."""
        detector = self._frames_detector(frames, boxes, detector)
        per_image = []
        for n, f in enumerate(frames):
            assert f.image is not None
            path = str(f.source.path) if f.source is not None else None
            per_image.append(
                (f.image, path, *self._people(f.image, None if boxes is None else boxes[n], detector, skip_bad))
            )
        out: list[PoseResult] = []
        for chunk in batched(per_image, max(1, batch_size or len(per_image) or 1)):
            out.extend(self._run(chunk))
        return out

    def track(
        self,
        source: Any,
        boxes: Sequence[Any] | None = None,
        detector: Detector | None = None,
        stream: bool = False,
        **options: Any,
    ) -> list[PoseResult] | Iterator[PoseResult]:
        """Poses with persistent IDs over a video, stream, webcam or image sequence (one result per frame).

        Every person gets a ``track_id`` (:class:`hrnet.track.Tracker`: box IoU and OKS with the keypoint
        set's sigmas), kept while they are missing for up to ``keep_alive`` frames; keypoints are smoothed
        per track (one-euro by default for videos, none for images; scores are left as they are).
        ``options`` are those of :class:`hrnet.track.TrackOptions`: ``keep_alive``, ``iou_thr``,
        ``oks_thr``, ``smooth``, ``min_cutoff``, ``beta``, ``d_cutoff``, ``ema_alpha``, ``det_every``
        (run the detector on every N-th frame, carrying boxes from keypoints in between), ``fps``.
        ``boxes`` (one list per frame) replace the detector. ``stream=True`` yields results as they come.
        """
        tracker = VideoTracker(TrackOptions.from_kwargs(options), self.keypoint_set.sigmas)

        def run() -> Iterator[PoseResult]:
            for n, frame in enumerate(as_frames(source)):
                given = None if boxes is None else [boxes[n]]
                yield self.track_frames([frame], tracker, given, detector)[0]

        return run() if stream else list(run())

    def track_frames(
        self,
        frames: list[Frame],
        tracker: VideoTracker,
        boxes: Sequence[Any] | None = None,
        detector: Detector | None = None,
        skip_bad: bool = False,
    ) -> list[PoseResult]:
        """:meth:`track` on frames already read, continuing ``tracker`` (what ``hrnet pose track`` feeds)."""
        detector = self._frames_detector(frames, boxes, detector)
        finds_people = detector is not None or self.detector is not None
        out: list[PoseResult] = []
        for n, f in enumerate(frames):
            assert f.image is not None
            tracker.start(f)
            given = None if boxes is None else boxes[n]
            carried = given is None and finds_people and not tracker.should_detect()
            if carried:
                given = tracker.carried_boxes()
            people = self._people(f.image, given, detector, skip_bad)
            source = "tracked" if carried else people[1]
            path = str(f.source.path) if f.source is not None else None
            res = self._run([(f.image, path, people[0], source, people[2])])[0]
            ids, smoothed = tracker.update(res.boxes, res.box_scores, res.keypoints, res.keypoints, res.scores)
            if smoothed is not None:
                res.keypoints = smoothed
            res.track_ids, res.frame_index, res.time = ids, tracker.index, tracker.time
            out.append(res)
        return out
