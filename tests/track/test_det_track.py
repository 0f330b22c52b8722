"""``Detector.track``: the tracking glue of detection (class filter, score gate, smoothed boxes, IDs in the
JSON and the drawing) on detections handed in by a stand-in for the network, which would take seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hrnet.detection.api import Detector, DetResult
from hrnet.inputs import Frame, InputFile
from hrnet.track import TrackOptions, VideoTracker


def _detector(monkeypatch) -> Detector:  # noqa: ANN001
    """A Detector whose network is replaced: a person walking right 3 px a frame (0.9), a dog standing
    (0.8) and a faint person (0.2) in every frame."""
    det = Detector.__new__(Detector)
    det.class_names, det.category_ids, det.random_weights = ["person", "dog"], [1, 18], False

    def predict_frames(frames):  # noqa: ANN001, ANN202
        out = []
        for f in frames:
            x = 3.0 * f.index
            boxes = np.array([[10 + x, 10, 50 + x, 90], [100, 50, 160, 90], [200, 10, 240, 90]], np.float32)
            out.append(DetResult(f.image, boxes, np.array([0.9, 0.8, 0.2], np.float32), np.array([1, 2, 1]), *[
                det.class_names, det.category_ids]))  # fmt: skip
        return out

    monkeypatch.setattr(det, "predict_frames", predict_frames)
    return det


def _frames(n: int) -> list[Frame]:
    source = InputFile(Path("v.mp4"), Path("v.mp4"))
    return [Frame(np.zeros((100, 260, 3), np.uint8), source, i, time=i / 10, fps=10.0) for i in range(n)]


def test_detector_track_gates_filters_and_smooths(monkeypatch):
    det = _detector(monkeypatch)
    frames = _frames(6)
    people = det.track_frames(frames, VideoTracker(TrackOptions(min_score=0.5)), ["person"])
    assert [r.track_ids.tolist() for r in people] == [[1, -1, -1]] * 6  # the dog and the faint person: none
    everyone = det.track_frames(frames, VideoTracker(TrackOptions(min_score=0.5)))
    assert {tuple(r.track_ids) for r in everyone} == {(1, 2, -1)}
    # one-euro on a video: the walking person's box lags behind the detection, the standing dog's does not
    last = everyone[-1]
    assert last.boxes[0, 0] < 10 + 3 * 5 and last.boxes[1].tolist() == [100, 50, 160, 90]
    assert last.boxes[2].tolist() == [200, 10, 240, 90]  # untracked boxes are left as detected
    record = last.to_json()
    assert [d["track_id"] for d in record["detections"]] == [1, 2, -1] and record["time"] == 0.5
    columns, rows = last.track_table()
    assert columns == ["class", "score", "x1", "y1", "x2", "y2"] and [r[:2] for r in rows] == [
        [1, "person"],
        [2, "dog"],
    ]
    picture = last.plot()
    assert picture.shape == (100, 260, 3) and picture.any()
