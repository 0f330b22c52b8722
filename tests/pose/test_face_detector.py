"""The face detector (``--detector opencv_face``) on the real facial landmark sample.

OpenCV's Haar cascade is in ``opencv-contrib-python-headless`` 5.x and ``opencv-python-headless`` 4.x, not in
``opencv-python-headless`` 5.x: the detection tests skip (with the reason) on an OpenCV without it, and one
test checks that the detector then says what to install instead of failing obscurely.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hrnet.io import read_image
from hrnet.pose.detector import as_person_detector, detector_info
from hrnet.pose.face_detector import (
    FACE_DETECTOR,
    FaceDetector,
    cascade_support,
    correct_boxes,
    is_face_keypoint_set,
    stage_score,
)
from hrnet.pose.keypoints import load_keypoint_set

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
FACES = DATA / "face_landmark_sample"
NO_CASCADE = cascade_support()
needs_cascade = pytest.mark.skipif(NO_CASCADE is not None, reason=str(NO_CASCADE))
needs_data = pytest.mark.skipif(not FACES.is_dir(), reason=f"no face sample at {FACES}")
# measured (docs/landmarks.md, "Face detector"): 9 of the sample's 10 faces at IoU >= 0.5 (the one missed,
# AFLW image22568, is found or not depending on the image scale). One more miss is allowed, not two: a
# detector that returns the whole image or nothing finds none.
MIN_FOUND = 8


def _face_boxes(ds: str) -> dict[str, np.ndarray]:
    """Ground-truth face boxes by image, in the landmark crops' convention (see the benchmark)."""
    data = json.loads((FACES / ds / f"{ds}_sample.json").read_text(encoding="utf-8"))
    names = {im["id"]: im["file_name"] for im in data["images"]}
    out: dict[str, list[list[float]]] = {n: [] for n in names.values()}
    for ann in data["annotations"]:
        if "center" in ann:
            (cx, cy), half = ann["center"], ann["scale"] * 100.0
        else:
            x, y, w, h = ann["bbox"]
            cx, cy, half = x + w / 2, y + h / 2, max(w, h) / 2
        out[names[ann["image_id"]]].append([cx - half, cy - half, cx + half, cy + half])
    return {k: np.asarray(v) for k, v in out.items()}


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@needs_cascade
@needs_data
def test_finds_the_annotated_faces(detector: FaceDetector) -> None:
    found = total = 0
    for ds in ("wflw", "300w", "cofw", "aflw"):
        for name, gts in _face_boxes(ds).items():
            boxes = detector(read_image(FACES / ds / "images" / name))
            assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 5
            assert np.all(np.diff(boxes[:, 4]) <= 0), "boxes sorted by score"
            assert np.all((boxes[:, 4] >= 0.5) & (boxes[:, 4] <= 1.0))
            total += len(gts)
            if len(boxes):
                found += int((_iou(gts, boxes).max(axis=1) >= 0.5).sum())
    assert total == 10
    assert found >= MIN_FOUND, f"{found}/{total} faces found at IoU >= 0.5"


@needs_cascade
@needs_data
def test_whole_image_or_nothing_would_fail() -> None:
    """The recall check above can fail: the whole-image box matches none of the sample's faces."""
    for ds in ("wflw", "300w", "cofw", "aflw"):
        for name, gts in _face_boxes(ds).items():
            h, w = read_image(FACES / ds / "images" / name).shape[:2]
            assert _iou(gts, np.array([[0.0, 0.0, w - 1.0, h - 1.0]])).max() < 0.5 or ds == "cofw"


@needs_cascade
def test_no_face_gives_no_box(detector: FaceDetector) -> None:
    rng = np.random.default_rng(0)
    plain = np.full((240, 320, 3), 128, np.uint8)
    noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    for image in (plain, noise):
        boxes = detector(image)
        assert boxes.shape == (0, 5) and boxes.dtype == np.float32
    city = DATA / "cityscapes_sample" / "unlabelled_fullres" / "cityscapes_demo_1024x512.png"
    if city.is_file():
        assert detector(city).shape == (0, 5)


@needs_cascade
def test_odd_images_do_not_crash(detector: FaceDetector) -> None:
    grey = np.full((100, 80), 30, np.uint8)
    rgba = np.zeros((64, 64, 4), np.uint8)
    for image in (grey, rgba, np.zeros((1, 1, 3), np.uint8), np.zeros((5, 300, 3), np.uint8)):
        out = detector(image)
        assert out.shape == (0, 5) and out.dtype == np.float32


@needs_cascade
def test_name_resolves_to_the_face_detector() -> None:
    det = as_person_detector(FACE_DETECTOR)
    assert isinstance(det, FaceDetector)
    assert isinstance(as_person_detector("OpenCV_Face", score_thr=0.2), FaceDetector)
    info = detector_info(det)
    assert info is not None and info["name"] == "opencv_face"
    assert "haarcascade_frontalface_default.xml" in info["source"] and info["source"].startswith("OpenCV ")
    assert "Intel License Agreement" in info["licence"]


def test_without_cascade_support_the_error_says_what_to_install() -> None:
    if NO_CASCADE is None:
        assert isinstance(FaceDetector(), FaceDetector)
        return
    with pytest.raises(RuntimeError, match="opencv-contrib-python-headless"):
        FaceDetector()


def test_box_correction_and_score() -> None:
    # a 100 px Haar square at (0, 0): the face box is 91 px, centred 12 px lower
    np.testing.assert_allclose(correct_boxes(np.array([[0, 0, 100, 100]])), [[4.5, 16.5, 95.5, 107.5]])
    np.testing.assert_allclose(stage_score(np.array([0.0, -100.0, 100.0])), [0.5, 0.0, 1.0], atol=1e-12)


def test_face_keypoint_sets() -> None:
    for name in ("wflw", "300w", "cofw", "aflw"):
        assert is_face_keypoint_set(load_keypoint_set(name))
    for name in ("coco", "hand", "coco_wholebody"):
        assert not is_face_keypoint_set(load_keypoint_set(name))


@needs_cascade
def test_landmark_models_default_to_the_face_detector_and_body_models_do_not():
    """``PoseEstimator`` with the default detector argument: a facial landmark keypoint set gets the face
    detector, built on first use; an explicit choice still wins."""
    from hrnet.pose import PoseEstimator

    face = PoseEstimator("pose_hrnetv2_w18_small_v1", keypoint_set="wflw", device="cpu", runtime="eager")
    assert isinstance(face.detector, FaceDetector)
    assert face.detector_info["name"] == FACE_DETECTOR
    face.detector = None
    assert face.detector is None
    body = PoseEstimator("pose_hrnet_w18_small_v1", device="cpu", runtime="eager", detector="none")
    assert body.detector is None
