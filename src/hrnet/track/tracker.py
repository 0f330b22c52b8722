"""Persistent identities across frames: the stand-alone :class:`Tracker` users feed their own boxes to.

Each frame's detections are matched to the live tracks by Hungarian assignment
(:func:`scipy.optimize.linear_sum_assignment`) on box IoU and, when keypoints are given, OKS with the
keypoint set's sigmas. Tracks seen in the previous frame are matched first, so a track that was lost
cannot take a detection from one that is present. A track not matched is kept for ``keep_alive`` frames
and takes its ID back when its person returns; its box is carried on with the velocity it had, so a
walking person is found where they went. IDs grow from 1 and are never given twice. A detection left over
that overlaps a matched one by ``duplicate_iou`` is a second box on the same person (a flickering
detector) and gets no track (ID -1) instead of a new ID.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from hrnet.track.geometry import as_boxes, box_areas, box_iou, oks_matrix

UNTRACKED = -1  # the ID of a detection that belongs to no track (a duplicate, or scored below min_score)


@dataclass
class Track:
    """One identity: its last box (x1, y1, x2, y2), per-frame box velocity, last pose, and when it was seen."""

    id: int
    box: np.ndarray
    velocity: np.ndarray
    last_frame: int
    keypoints: np.ndarray | None = None
    keypoint_scores: np.ndarray | None = None
    label: int | None = None
    hits: int = 1

    def predicted_box(self, frame: int) -> np.ndarray:
        """Where the box is expected in ``frame`` at the track's velocity."""
        return self.box + self.velocity * (frame - self.last_frame)


class Tracker:
    """Gives each detection of a frame a persistent ID.

    Args:
        keep_alive: frames a track may go unseen and still take its ID back (0: dropped when missed once).
        iou_thr: a detection may continue a track whose (predicted or last) box it overlaps by at least this.
        oks_thr: or, with keypoints, whose pose it matches with at least this OKS.
        sigmas: OKS sigmas of the keypoint set (one per keypoint); without them poses match by IoU only.
        min_score: detections scored below this get no track (ID -1).
        duplicate_iou: an unmatched detection overlapping a matched one by this much is a duplicate (ID -1).
        kpt_thr: keypoints scored above this count in OKS.

    Example:
        ::

            tracker = Tracker(keep_alive=30)
            for boxes in my_detector_output:  # (N, 4) or (N, 5) xyxy[, score] per frame
                ids = tracker.update(boxes)  # (N,) int IDs, -1 for duplicates
    """

    def __init__(
        self,
        keep_alive: int = 30,
        iou_thr: float = 0.3,
        oks_thr: float = 0.5,
        sigmas: np.ndarray | None = None,
        min_score: float = 0.0,
        duplicate_iou: float = 0.8,
        kpt_thr: float = 0.3,
    ) -> None:
        if keep_alive < 0:
            raise ValueError(f"keep_alive must be >= 0 frames, got {keep_alive}")
        for name, value in (("iou_thr", iou_thr), ("oks_thr", oks_thr), ("duplicate_iou", duplicate_iou)):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        self.keep_alive = int(keep_alive)
        self.iou_thr, self.oks_thr = float(iou_thr), float(oks_thr)
        self.sigmas = None if sigmas is None else np.asarray(sigmas, dtype=np.float64)
        self.min_score, self.duplicate_iou, self.kpt_thr = float(min_score), float(duplicate_iou), float(kpt_thr)
        self.tracks: list[Track] = []
        self.frame = -1
        self.next_id = 1
        self.dropped: list[int] = []  # IDs given up in the last update (their smoothing state goes too)

    def reset(self) -> None:
        """Forget every track (a new video); IDs keep growing, so none is given twice."""
        self.dropped = [t.id for t in self.tracks]
        self.tracks = []

    def update(
        self,
        boxes: object,
        scores: object = None,
        keypoints: object = None,
        keypoint_scores: object = None,
        labels: object = None,
    ) -> np.ndarray:
        """The IDs of one frame's detections, in their order.

        ``boxes`` (N, 4) xyxy, or (N, 5) with the score last; ``scores`` (N,) otherwise (default 1);
        ``keypoints`` (N, K, 2) and ``keypoint_scores`` (N, K) for poses; ``labels`` (N,) class labels (a
        track continues only with its own class). Returns (N,) int64 IDs, :data:`UNTRACKED` for detections
        that start no track. Call it for every frame, also those without detections.
        """
        raw = np.asarray(boxes, dtype=np.float64)
        box = as_boxes(raw)
        n = len(box)
        if scores is None:
            scores = raw[:, 4] if raw.ndim == 2 and raw.shape[1] >= 5 else np.ones(n)
        score = np.asarray(scores, dtype=np.float64).reshape(-1)
        kpts = ksc = None
        if keypoints is not None:  # (N, K, 2); an empty frame may come as (0, K, 2) or []
            kpts = np.asarray(keypoints, dtype=np.float64)
            kpts = kpts.reshape(n, -1, 2) if kpts.size else np.zeros((n, 0, 2))
            ksc = np.ones(kpts.shape[:2]) if keypoint_scores is None else np.asarray(keypoint_scores, dtype=np.float64)
            ksc = ksc.reshape(kpts.shape[:2])
        lab = None if labels is None else np.asarray(labels).reshape(-1)
        for name, arr in (("scores", score), ("keypoint_scores", ksc), ("labels", lab)):
            if arr is not None and len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} entries for {n} boxes")

        self.frame += 1
        ids = np.full(n, UNTRACKED, dtype=np.int64)
        candidates = np.flatnonzero(score >= self.min_score)
        recent = [t for t in self.tracks if t.last_frame == self.frame - 1]
        lost = [t for t in self.tracks if t.last_frame < self.frame - 1]
        matched: list[int] = []
        for group in (recent, lost):
            free = np.array([d for d in candidates if ids[d] == UNTRACKED], dtype=np.int64)
            for t, d in self._assign(group, free, box, kpts, ksc, lab):
                self._continue(t, box[d], None if kpts is None else (kpts[d], ksc[d]))
                ids[d] = t.id
                matched.append(d)
        for d in candidates:
            if ids[d] != UNTRACKED:
                continue
            if self._duplicate(d, matched, box, kpts, ksc):
                continue  # a second box on a person already tracked in this frame
            track = Track(self.next_id, box[d].copy(), np.zeros(4), self.frame)
            if kpts is not None:
                track.keypoints, track.keypoint_scores = kpts[d].copy(), ksc[d].copy()
            track.label = None if lab is None else int(lab[d])
            self.next_id += 1
            self.tracks.append(track)
            ids[d] = track.id
            matched.append(d)
        keep = [t for t in self.tracks if self.frame - t.last_frame <= self.keep_alive]
        self.dropped = [t.id for t in self.tracks if self.frame - t.last_frame > self.keep_alive]
        self.tracks = keep
        return ids

    def _duplicate(
        self, d: int, matched: list[int], box: np.ndarray, kpts: np.ndarray | None, ksc: np.ndarray | None
    ) -> bool:
        """Whether detection ``d`` covers one already tracked in this frame: its box overlaps one by
        ``duplicate_iou`` and, with poses, its keypoints match that one's too (two people, one behind the
        other, share a box but not a pose)."""
        if not matched:
            return False
        same = box_iou(box[d : d + 1], box[matched])[0] >= self.duplicate_iou
        if kpts is not None and ksc is not None and self.sigmas is not None and same.any():
            m = np.asarray(matched)[same]
            areas = box_areas(box)
            o = oks_matrix(kpts[d : d + 1], ksc[d : d + 1], areas[d : d + 1], kpts[m], ksc[m], areas[m], self.sigmas)
            return bool((o >= self.oks_thr).any())
        return bool(same.any())

    def _assign(
        self,
        tracks: list[Track],
        dets: np.ndarray,
        box: np.ndarray,
        kpts: np.ndarray | None,
        ksc: np.ndarray | None,
        lab: np.ndarray | None,
    ) -> list[tuple[Track, int]]:
        """Hungarian assignment of ``dets`` (indices) to ``tracks``; pairs below both thresholds never match."""
        if not tracks or not len(dets):
            return []
        boxes = box[dets]
        last = np.stack([t.box for t in tracks])
        pred = np.stack([t.predicted_box(self.frame) for t in tracks])
        iou = box_iou(pred, boxes)
        if tracks[0].last_frame < self.frame - 1:  # lost tracks: also where they were last seen (they may
            iou = np.maximum(iou, box_iou(last, boxes))  # have stopped while hidden)
        allowed = iou >= self.iou_thr
        sim = iou
        with_pose = [i for i, t in enumerate(tracks) if t.keypoints is not None]
        if kpts is not None and self.sigmas is not None and with_pose:
            o = np.zeros_like(iou)
            tk = np.stack([tracks[i].keypoints + (pred[i, :2] - last[i, :2]) for i in with_pose])
            ts = np.stack([tracks[i].keypoint_scores for i in with_pose])
            o[with_pose] = oks_matrix(
                tk, ts, box_areas(pred[with_pose]), kpts[dets], ksc[dets], box_areas(boxes), self.sigmas, self.kpt_thr
            )
            allowed |= o >= self.oks_thr
            sim = (iou + o) / 2
        if lab is not None:
            same = np.array([[t.label is None or t.label == int(lab[d]) for d in dets] for t in tracks])
            allowed &= same
        cost = np.where(allowed, 1.0 - sim, 2.0 + 1.0 - sim)  # forbidden pairs only when nothing else is left
        rows, cols = linear_sum_assignment(cost)
        return [(tracks[r], int(dets[c])) for r, c in zip(rows, cols) if allowed[r, c]]

    def _continue(self, track: Track, box: np.ndarray, pose: tuple[np.ndarray, np.ndarray] | None) -> None:
        """A track seen again: velocity from the step it took (averaged with the last), box and pose replaced."""
        gap = self.frame - track.last_frame
        step = (box - track.box) / gap
        track.velocity = step if track.hits == 1 else 0.5 * track.velocity + 0.5 * step
        track.box = box.copy()
        track.last_frame = self.frame
        track.hits += 1
        if pose is not None:
            track.keypoints, track.keypoint_scores = pose[0].copy(), pose[1].copy()
