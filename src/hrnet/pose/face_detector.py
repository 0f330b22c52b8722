"""Face boxes for facial-landmark models: OpenCV's Haar cascade, its weights shipped inside the OpenCV wheel.

Top-down landmark models (``pose_hrnetv2_w18`` on WFLW, 300W, COFW, AFLW) need one box per face; the
person detector gives person boxes, which are the wrong crop. :class:`FaceDetector` is a classic
Viola-Jones cascade (``haarcascade_frontalface_default.xml``, Rainer Lienhart, Intel License Agreement,
a BSD-3-style licence printed in the file's header): it finds upright frontal faces and misses profiles
and strongly rotated faces. Its weights come with the OpenCV package, so nothing is downloaded.

Which OpenCV wheel: OpenCV 5 moved ``cv2.CascadeClassifier`` out of the main build. ``opencv-python-headless``
5.x has neither the class nor the ``cv2/data/haarcascade_*.xml`` files; ``opencv-contrib-python-headless``
5.x and ``opencv-python-headless`` 4.x have both. Without them the detector raises an error that says so
(:func:`cascade_support`).

Box convention: the landmark models were trained on crops of ``scale * 200`` px squares around the
annotated ``center`` (WFLW, 300W, AFLW; COFW: its box made square), grown by 1.25 (``pose.landmarks``). A
Haar box is a square a little larger than that face box and centred higher (on the eyes and brows): on the
repository's face sample (10 faces, docs/landmarks.md "Face detector") the face box is 0.91x the Haar side
and its centre 0.12 Haar sides lower (medians; horizontal offset ~0). :data:`BOX_SIDE` and
:data:`BOX_SHIFT_Y` apply that one correction, so the crop the estimator makes from a detected box is the
crop the model was trained on.

Score: the cascade has no probability. ``detectMultiScale3(outputRejectLevels=True)`` returns, for each
kept box, the sum ``F`` of its last stage's boosted weak classifiers; boxes reach that stage only if every
earlier stage accepted them. The score is ``1 / (1 + exp(-2 F))``, the probability estimate of a boosted
additive model (Friedman, Hastie and Tibshirani, "Additive logistic regression", 2000): 0.5 at ``F = 0``,
the last stage's own decision boundary. It ranks boxes; it is not calibrated on any face data set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hrnet.io import as_rgb_array
from hrnet.pose.keypoints import KeypointSet

FACE_DETECTOR = "opencv_face"  # --detector opencv_face / PoseEstimator(detector="opencv_face")
DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"
CASCADE_LICENCE = "Intel License Agreement for Open Source Computer Vision Library (BSD-3-Clause style)"
# face box = Haar box scaled by BOX_SIDE about a centre moved down by BOX_SHIFT_Y Haar sides (median
# relation on the face sample; see the module docstring)
BOX_SIDE = 0.91
BOX_SHIFT_Y = 0.12
MAX_SIDE = 640  # images are shrunk to this longer side first: 2-4x faster, the sample's recall unchanged
# keypoint sets whose boxes are faces (the shipped facial landmark sets, by the name cards keep)
FACE_KEYPOINT_SETS = {"wflw": 98, "300w": 68, "cofw": 29, "aflw": 19}


def is_face_keypoint_set(keypoint_set: KeypointSet) -> bool:
    """True for a facial landmark set, whose model needs face boxes, not person boxes.

    Decided by the set's name and size, because model cards store the set as a dict (names, pairs, ...):
    a flag added to the shipped YAML files would be missing from every card converted before it."""
    return FACE_KEYPOINT_SETS.get(keypoint_set.name.lower()) == keypoint_set.num_keypoints


def cascade_support() -> str | None:
    """None when this OpenCV can run a Haar cascade, else why not and what to install instead."""
    if hasattr(cv2, "CascadeClassifier") and Path(_cascade_dir() or "").joinpath(DEFAULT_CASCADE).is_file():
        return None
    return (
        f"OpenCV {cv2.__version__} has no Haar cascade support (cv2.CascadeClassifier and cv2/data/"
        "haarcascade_*.xml): OpenCV 5 moved them out of opencv-python-headless. Install "
        "opencv-contrib-python-headless (the same OpenCV with its contrib modules; uninstall "
        "opencv-python-headless first) or opencv-python-headless<5, or pass face boxes with --boxes"
    )


def _cascade_dir() -> str | None:
    """The folder of the cascade files the OpenCV wheel ships (``cv2.data.haarcascades``), if any."""
    data = getattr(cv2, "data", None)
    return getattr(data, "haarcascades", None)


def _cascade_path(cascade: str | Path) -> Path:
    """A cascade file: a path as given, else a file name in the wheel's ``cv2.data.haarcascades``."""
    path = Path(cascade)
    if path.is_file():
        return path
    folder = _cascade_dir()
    shipped = Path(folder) / str(cascade) if folder else None
    if shipped is not None and shipped.is_file():
        return shipped
    known = sorted(p.name for p in Path(folder).glob("haarcascade_*.xml")) if folder else []
    raise FileNotFoundError(
        f"cascade {str(cascade)!r}: no such file, and not one of OpenCV's shipped cascades "
        f"({', '.join(known) if known else 'none in this OpenCV'})"
    )


def correct_boxes(haar_xywh: np.ndarray) -> np.ndarray:
    """Haar boxes (N, 4) x, y, w, h -> face boxes (N, 4) x1, y1, x2, y2 of the landmark training crops'
    convention: side x :data:`BOX_SIDE`, centre moved down by :data:`BOX_SHIFT_Y` of the Haar side."""
    b = np.asarray(haar_xywh, dtype=np.float64).reshape(-1, 4)
    side = np.maximum(b[:, 2], b[:, 3])
    cx = b[:, 0] + b[:, 2] / 2
    cy = b[:, 1] + b[:, 3] / 2 + BOX_SHIFT_Y * side
    half = BOX_SIDE * side / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)


def stage_score(level_weights: np.ndarray) -> np.ndarray:
    """Last-stage sums ``F`` -> scores ``1 / (1 + exp(-2 F))`` in (0, 1) (see the module docstring)."""
    f = np.clip(np.asarray(level_weights, dtype=np.float64).ravel(), -40.0, 40.0)
    return 1.0 / (1.0 + np.exp(-2.0 * f))


class FaceDetector:
    """``FaceDetector()(image) -> (N, 5)`` face boxes ``x1, y1, x2, y2, score`` (float32), best first.

    The interface of :class:`hrnet.pose.detector.PersonDetector`, so the pose estimator takes either.
    ``image`` is a path or an RGB / grey / RGBA array. The image is shrunk to ``max_side`` (0: never),
    histogram-equalised and scanned by the cascade (``scale_factor``, ``min_neighbors``; faces smaller
    than ``min_size`` px in the shrunk image are not looked for); boxes are corrected to the landmark
    models' face-box convention (:func:`correct_boxes`; not clipped, so a face at the border keeps the
    square of its convention) and those scored below ``score_thr`` dropped.
    ``info`` names the cascade for ``results.json``.
    """

    def __init__(
        self,
        cascade: str | Path = DEFAULT_CASCADE,
        score_thr: float = 0.5,
        max_side: int = MAX_SIDE,
        scale_factor: float = 1.1,
        min_neighbors: int = 3,
        min_size: int = 24,
    ) -> None:
        if not 0.0 <= score_thr <= 1.0:
            raise ValueError(f"score_thr must be in [0, 1], got {score_thr}")
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        why = cascade_support()
        if why is not None:
            raise RuntimeError(why)
        path = _cascade_path(cascade)
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise ValueError(f"{path}: OpenCV could not read it as a cascade classifier")
        self.cascade = path.name
        self.score_thr = float(score_thr)
        self.max_side = int(max_side)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.info: dict[str, Any] = {
            "name": FACE_DETECTOR,
            "model": path.stem,
            "source": f"OpenCV {cv2.__version__} {path.name}",
            "licence": CASCADE_LICENCE,
            "boxes": f"Haar box x{BOX_SIDE} about a centre {BOX_SHIFT_Y} sides lower (landmark face-box convention)",
            "score": "1/(1+exp(-2F)), F = last cascade stage sum (uncalibrated)",
        }

    def __call__(self, image: str | Path | np.ndarray) -> np.ndarray:
        rgb = as_rgb_array(image)
        h, w = rgb.shape[:2]
        if min(h, w) < self.min_size:
            return np.zeros((0, 5), dtype=np.float32)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        factor = 1.0
        if self.max_side > 0 and max(h, w) > self.max_side:
            factor = self.max_side / max(h, w)
            size = (max(1, round(w * factor)), max(1, round(h * factor)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)
        found, _, weights = self.classifier.detectMultiScale3(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        xywh = np.asarray(found, dtype=np.float64).reshape(-1, 4) / factor
        if not len(xywh):
            return np.zeros((0, 5), dtype=np.float32)
        scores = stage_score(np.asarray(weights))
        boxes = correct_boxes(xywh)
        out = np.concatenate([boxes, scores[:, None]], axis=1).astype(np.float32)
        out = out[out[:, 4] >= self.score_thr]
        return out[np.argsort(-out[:, 4], kind="stable")]

    detect = __call__

    def __repr__(self) -> str:
        return f"FaceDetector({self.cascade!r}, score_thr={self.score_thr:g}, max_side={self.max_side})"
