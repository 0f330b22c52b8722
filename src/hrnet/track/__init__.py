"""Video as a sequence: persistent IDs, temporal smoothing, track files and MOT metrics.

A shared package (it imports no task): the tracker takes plain arrays, so pose, detection and a user's
own detector feed it alike.

>>> from hrnet.track import Tracker
>>> tracker = Tracker(keep_alive=30)
>>> tracker.update([[10, 10, 50, 90, 0.9]]).tolist()
[1]
"""

from hrnet.track.geometry import box_iou, keypoint_boxes, oks_matrix
from hrnet.track.mot import evaluate_arrays, evaluate_mot, read_mot
from hrnet.track.session import TrackOptions, VideoTracker
from hrnet.track.smoothing import EmaFilter, OneEuroFilter, TrackSmoother
from hrnet.track.tracker import UNTRACKED, Track, Tracker

__all__ = [
    "UNTRACKED",
    "EmaFilter",
    "OneEuroFilter",
    "Track",
    "TrackOptions",
    "Tracker",
    "TrackSmoother",
    "VideoTracker",
    "box_iou",
    "evaluate_arrays",
    "evaluate_mot",
    "keypoint_boxes",
    "oks_matrix",
    "read_mot",
]
