"""Tracking over a stream of frames: the tracker and the smoother of one video, started anew per video.

:class:`VideoTracker` is what the facades' ``track`` and the ``track`` commands hold. It tells one input
sequence from the next (a video file or stream, or all the images of a run, which form one sequence in
their sorted order), gives each frame its number and time in the sequence, says when the detector must
run (``det_every``), carries the boxes in between from the last keypoints, and hands back IDs and
smoothed points.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from hrnet.inputs import Frame
from hrnet.track.geometry import as_boxes, keypoint_boxes
from hrnet.track.smoothing import SMOOTHERS, TrackSmoother
from hrnet.track.tracker import UNTRACKED, Tracker

IMAGES_SEQUENCE = "images"  # the name of the one sequence the images (and arrays) of a run form
DEFAULT_FPS = 25.0


@dataclass
class TrackOptions:
    """The settings of tracking; each has a ``hrnet <task> track`` flag of the same name.

    ``smooth`` is ``"auto"`` (one-euro for videos and streams, none for images), ``"one-euro"``, ``"ema"``
    or ``"none"``; ``min_cutoff`` (Hz), ``beta`` (1 / pixel) and ``d_cutoff`` (Hz) are the 1€ filter's,
    ``ema_alpha`` the exponential average's. ``det_every`` runs the person detector on every N-th frame
    only (pose), carrying the boxes in between from the previous frame's keypoints. ``fps`` sets the time
    of image sequences (a video's own rate is used for videos).
    """

    keep_alive: int = 30
    iou_thr: float = 0.3
    oks_thr: float = 0.5
    min_score: float = 0.0
    smooth: str = "auto"
    min_cutoff: float = 1.0
    beta: float = 0.01
    d_cutoff: float = 1.0
    ema_alpha: float = 0.5
    det_every: int = 1
    fps: float = DEFAULT_FPS

    def __post_init__(self) -> None:
        if self.smooth not in ("auto", *SMOOTHERS):
            raise ValueError(f"smooth must be one of auto, {', '.join(SMOOTHERS)}, got {self.smooth!r}")
        if self.det_every < 1:
            raise ValueError(f"det_every must be >= 1 (1: detect on every frame), got {self.det_every}")
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        TrackSmoother("one-euro", self.min_cutoff, self.beta, self.d_cutoff, self.ema_alpha)  # checks the values
        Tracker(self.keep_alive, self.iou_thr, self.oks_thr, min_score=self.min_score)

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> TrackOptions:
        """Options given as keywords (``track(..., keep_alive=10)``); an unknown name is one error listing them."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f"unknown tracking option(s) {', '.join(unknown)}; options: {', '.join(names)}")
        return cls(**options)


def sequence_key(frame: Frame) -> str:
    """Which sequence ``frame`` belongs to: its video's path (or stream), else the run's images."""
    if frame.source is not None and frame.source.is_video:
        return str(frame.source.path)
    return IMAGES_SEQUENCE


def sequence_name(frame: Frame) -> str:
    """The stem that names a sequence's track files: the video's relative path without suffix, or "images"."""
    if frame.source is not None and frame.source.is_video:
        return str(frame.source.rel.with_suffix(""))
    return IMAGES_SEQUENCE


class VideoTracker:
    """A :class:`~hrnet.track.tracker.Tracker` and a :class:`~hrnet.track.smoothing.TrackSmoother` per
    sequence. Call :meth:`start` with every frame before detecting, then :meth:`update` with its detections.
    """

    def __init__(self, options: TrackOptions | None = None, sigmas: np.ndarray | None = None) -> None:
        self.options = options or TrackOptions()
        self.sigmas = sigmas
        self.key: str | None = None
        self.index = -1  # the frame's number in its sequence (0-based)
        self.time = 0.0  # seconds since the sequence started
        self.is_video = False
        self.tracker = self._tracker()
        self.smoother = TrackSmoother("none")
        self._last_ids = np.zeros(0, dtype=np.int64)
        self._last_boxes = np.zeros((0, 4))
        self._last_pose: tuple[np.ndarray, np.ndarray] | None = None
        self._next_id = 1
        self._t0: float | None = None

    def _tracker(self) -> Tracker:
        o = self.options
        return Tracker(o.keep_alive, o.iou_thr, o.oks_thr, self.sigmas, min_score=o.min_score)

    @property
    def smoothing(self) -> str:
        """The smoother of the current sequence ("none" for images unless asked)."""
        return self.smoother.kind

    def start(self, frame: Frame) -> bool:
        """Enter ``frame``: a frame of another sequence starts a fresh tracker (IDs keep growing) and
        smoother. Returns whether it did."""
        key = sequence_key(frame)
        fresh = key != self.key
        if fresh:
            self._next_id = max(self._next_id, self.tracker.next_id)
            self.tracker = self._tracker()
            self.tracker.next_id = self._next_id
            self.key, self.index = key, -1
            self.is_video = key != IMAGES_SEQUENCE
            o = self.options
            kind = ("one-euro" if self.is_video else "none") if o.smooth == "auto" else o.smooth
            self.smoother = TrackSmoother(kind, o.min_cutoff, o.beta, o.d_cutoff, o.ema_alpha)
            self._last_ids, self._last_boxes, self._last_pose = np.zeros(0, dtype=np.int64), np.zeros((0, 4)), None
            self._t0 = frame.time
        self.index += 1
        if self.is_video and frame.time is not None and self._t0 is not None:
            self.time = float(frame.time - self._t0)
        else:
            self.time = self.index / self.options.fps
        return fresh

    def should_detect(self) -> bool:
        """Whether this frame needs the detector: every ``det_every``-th frame, and any frame after one in
        which nobody was tracked."""
        return self.index % self.options.det_every == 0 or not len(self._last_ids)

    def carried_boxes(self, vis_thr: float = 0.3) -> np.ndarray:
        """(N, 5) boxes for a frame the detector skips: around the previous frame's tracked keypoints
        (grown by 1.2), score 1; the previous boxes themselves when there were no keypoints."""
        boxes = self._last_boxes
        if self._last_pose is not None and len(boxes):
            boxes = keypoint_boxes(*self._last_pose, boxes, vis_thr)
        return np.concatenate([boxes, np.ones((len(boxes), 1))], axis=1)

    def update(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        points: np.ndarray | None = None,
        keypoints: np.ndarray | None = None,
        keypoint_scores: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """IDs of this frame's detections and their smoothed ``points`` ((N, P, 2): keypoints, or the box
        corners for detection; None when not given). Untracked detections keep their points."""
        box = as_boxes(boxes)
        ids = self.tracker.update(box, scores, keypoints, keypoint_scores, labels)
        self.smoother.drop(self.tracker.dropped)
        smoothed = None
        if points is not None:
            smoothed = np.asarray(points, dtype=np.float64).copy()
            for i, track_id in enumerate(ids):
                if track_id != UNTRACKED:
                    smoothed[i] = self.smoother(int(track_id), self.time, smoothed[i])
        keep = ids != UNTRACKED
        self._last_ids, self._last_boxes = ids[keep], box[keep]
        self._last_pose = None
        if keypoints is not None and keypoint_scores is not None:  # raw, not smoothed: boxes must not lag
            self._last_pose = (np.asarray(keypoints)[keep], np.asarray(keypoint_scores)[keep])
        return ids, smoothed
