"""Fixtures of the pose tests: the real COCO / MPII samples next to the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def coco_dir() -> Path:
    """``../shared/data/coco_kpt_sample`` (skip when absent)."""
    d = DATA / "coco_kpt_sample"
    if not (d / "person_keypoints_sample.json").is_file():
        pytest.skip(f"COCO keypoint sample not found at {d}")
    return d.resolve()


@pytest.fixture(scope="session")
def mpii_dir() -> Path:
    """``../shared/data/mpii_sample`` (skip when absent)."""
    d = DATA / "mpii_sample"
    if not (d / "mpii_annot_sample.json").is_file():
        pytest.skip(f"MPII sample not found at {d}")
    return d.resolve()
