"""Fixtures of the detection tests: the real 16-image COCO instances sample and small subsets of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".." / "shared" / "data"

# builder keywords that keep the R-CNN heads cheap on CPU (few proposals and RoIs)
SMALL_RCNN = dict(
    rpn_pre_nms_top_n_train=200,
    rpn_post_nms_top_n_train=100,
    rpn_pre_nms_top_n_test=100,
    rpn_post_nms_top_n_test=50,
    box_batch_size_per_image=32,
)
TINY_BACKBONE = dict(stage_modules=(1, 1, 1))


@pytest.fixture(scope="session")
def det_dir() -> Path:
    """``../shared/data/coco_det_sample`` (skip when absent)."""
    d = DATA / "coco_det_sample"
    if not (d / "instances_sample.json").is_file():
        pytest.skip(f"COCO instances sample not found at {d}")
    return d.resolve()


@pytest.fixture(scope="session")
def kpt_dir() -> Path:
    """``../shared/data/coco_kpt_sample`` (person keypoints; also a person-only instances file)."""
    d = DATA / "coco_kpt_sample"
    if not (d / "person_keypoints_sample.json").is_file():
        pytest.skip(f"COCO keypoint sample not found at {d}")
    return d.resolve()


def subset_json(src: Path, dst: Path, n_images: int, first: int = 0) -> Path:
    """A COCO file with ``n_images`` images of ``src`` (all categories kept), for fast training tests."""
    data = json.loads(src.read_text())
    images = data["images"][first : first + n_images]
    ids = {im["id"] for im in images}
    data["images"] = images
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    dst.write_text(json.dumps(data))
    return dst
