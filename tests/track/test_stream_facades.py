"""``predict(source, stream=True)`` on the segmentation and classification facades: a generator that yields
what the list form returns, one frame at a time (pose is covered in test_video.py)."""

from __future__ import annotations

import types

import numpy as np

from hrnet.classification import Classifier
from hrnet.segmentation import Segmenter

from .test_video import make_video


def test_segmenter_and_classifier_stream_what_the_list_holds(tmp_path):
    video = make_video(tmp_path / "clip.mp4", 6, size=(64, 96))
    seg = Segmenter("seg_hrnet_w18_small_v1", num_classes=3, device="cpu", runtime="eager")
    stream = seg.predict(video, stream=True)
    assert isinstance(stream, types.GeneratorType)
    streamed, listed = list(stream), seg.predict(video)
    assert len(streamed) == len(listed) == 6
    for a, b in zip(streamed, listed):
        np.testing.assert_array_equal(a.labels, b.labels)

    clf = Classifier("hrnet_w18_small_v1", num_classes=3, crop_size=64, batch_size=4, device="cpu", runtime="eager")
    stream = clf.predict(video, stream=True)
    assert isinstance(stream, types.GeneratorType)
    first = next(stream)  # one batch read and run, the rest of the video not yet
    rest = list(stream)
    listed = clf.predict(video)
    assert 1 + len(rest) == len(listed) == 6
    for a, b in zip([first, *rest], listed):
        assert [c.index for c in a.top] == [c.index for c in b.top]
