"""MOT-challenge text files and tracking metrics (MOTA, IDF1, ID switches) through py-motmetrics.

A MOT file has one box per line: ``frame, id, x, y, w, h, conf, ...`` with frames counted from 1 and
boxes as top-left corner and size in pixels. Ground-truth lines with ``conf`` 0 are "ignore" boxes and
are left out, as the MOT benchmark does. Boxes match when their IoU is at least 0.5 (the benchmark's rule).
The IoU is computed here (:func:`hrnet.track.geometry.box_iou`) and handed to motmetrics' accumulator.
motmetrics is an optional extra (``pip install 'hrnet[track]'``), imported only when metrics are asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hrnet.track.geometry import box_iou

METRICS = ("mota", "motp", "idf1", "num_switches", "num_false_positives", "num_misses", "num_frames")
INSTALL_HINT = "tracking metrics need py-motmetrics: pip install 'hrnet[track]'"


def read_mot(path: str | Path, ground_truth: bool = False) -> np.ndarray:
    """(N, 7) float64 ``frame, id, x, y, w, h, conf`` rows of a MOT file (``ground_truth``: ``conf`` 0 rows
    left out). A file that is missing or not in the format is one ``ValueError`` / ``OSError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such MOT file")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.replace(" ", "").split(",")
            try:
                values = [float(v) for v in parts[:7]]
            except ValueError:
                raise ValueError(
                    f"{path}:{n}: not a MOT line (frame, id, x, y, w, h, conf, ...): {line[:60]!r}"
                ) from None
            if len(values) < 6:
                raise ValueError(f"{path}:{n}: a MOT line needs at least frame, id, x, y, w, h: {line[:60]!r}")
            values += [1.0] * (7 - len(values))
            rows.append(values)
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    if ground_truth:
        arr = arr[arr[:, 6] != 0]
    return arr


def mot_lines(frame: int, ids: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> Iterator[str]:
    """MOT lines of one frame (``frame`` counted from 1) for tracked xyxy ``boxes`` (ID -1 rows left out)."""
    for track_id, (x1, y1, x2, y2), s in zip(ids, boxes, scores):
        if track_id >= 0:
            yield f"{frame},{int(track_id)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{float(s):.4f},-1,-1,-1\n"


def _xyxy(rows: np.ndarray) -> np.ndarray:
    return np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1)


def motmetrics() -> Any:
    """The ``motmetrics`` module, or one ``ImportError`` line saying how to install it."""
    try:
        import motmetrics as mm  # noqa: PLC0415 - optional extra: only tracking evaluation needs it
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return mm


def evaluate_arrays(gt: np.ndarray, hyp: np.ndarray, iou_thr: float = 0.5) -> dict[str, Any]:
    """The CLEAR-MOT and identity metrics of tracked rows ``hyp`` against ``gt`` (both as :func:`read_mot`
    returns them), over every frame of either."""
    mm = motmetrics()
    acc = mm.MOTAccumulator(auto_id=False)
    frames = np.union1d(gt[:, 0], hyp[:, 0]).astype(int)
    for f in frames:
        g, h = gt[gt[:, 0] == f], hyp[hyp[:, 0] == f]
        iou = box_iou(_xyxy(g), _xyxy(h))
        dist = np.where(iou >= iou_thr, 1.0 - iou, np.nan)
        acc.update(g[:, 1].astype(int).tolist(), h[:, 1].astype(int).tolist(), dist, frameid=int(f))
    summary = mm.metrics.create().compute(acc, metrics=list(METRICS), name="sequence")
    out: dict[str, Any] = {}
    for key in METRICS:
        value = summary[key].iloc[0]
        out[key] = int(value) if key.startswith("num_") else float(value)
    return out


def evaluate_mot(gt_file: str | Path, tracks_file: str | Path, iou_thr: float = 0.5) -> dict[str, Any]:
    """MOTA, MOTP (1 - IoU), IDF1, ID switches, false positives, misses and frames of a tracked sequence
    (a MOT file, e.g. the ``<video>.mot.txt`` of ``hrnet ... track``) against MOT ground truth."""
    gt = read_mot(gt_file, ground_truth=True)
    if not len(gt):
        raise ValueError(f"{gt_file}: the ground truth holds no boxes")
    return evaluate_arrays(gt, read_mot(tracks_file), iou_thr)
