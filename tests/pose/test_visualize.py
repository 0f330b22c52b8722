"""Skeleton drawing, image saving and training-curve plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hrnet.engine.plots import plot_metrics
from hrnet.io import save_image
from hrnet.pose.visualize import draw_poses

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _person() -> tuple[np.ndarray, np.ndarray]:
    kpts = np.array([[[20.0, 20.0], [80.0, 20.0], [80.0, 70.0]]])
    scores = np.array([[0.9, 0.8, 0.1]])
    return kpts, scores


def test_draws_confident_keypoints_and_limbs_only() -> None:
    image = np.zeros((100, 120, 3), np.uint8)
    kpts, scores = _person()
    out = draw_poses(image, kpts, scores, skeleton=[(0, 1), (1, 2)], kpt_thr=0.3, colors=[RED, BLUE])
    assert image.max() == 0, "the input must not be modified"
    assert out.shape == image.shape and out.dtype == np.uint8
    assert out[20, 20].any() and out[20, 80].any()  # confident keypoints drawn
    assert not out[70, 80].any()  # score 0.1 < 0.3: keypoint not drawn
    assert tuple(out[20, 50]) == RED  # the limb 0-1 in its colour, half way between the joints
    assert not out[45, 80].any()  # limb 1-2 has an unconfident end: not drawn
    # lowering the threshold draws the third joint and the second limb in the second colour
    out2 = draw_poses(image, kpts, scores, skeleton=[(0, 1), (1, 2)], kpt_thr=0.05, colors=[RED, BLUE])
    assert out2[70, 80].any() and tuple(out2[45, 80]) == BLUE


def test_boxes_grayscale_and_no_people() -> None:
    gray = np.full((60, 60), 128, np.uint8)
    boxes = np.array([[10, 10, 50, 40, 0.87]])
    out = draw_poses(gray, np.zeros((0, 17, 2)), np.zeros((0, 17)), skeleton=[(0, 1)], boxes=boxes)
    assert out.shape == (60, 60, 3)
    assert tuple(out[25, 10]) == (0, 255, 0) and tuple(out[10, 30]) == (0, 255, 0)  # box edges, green
    assert tuple(out[25, 30]) == (128, 128, 128)  # inside the box, untouched
    assert np.array_equal(draw_poses(gray, [], [], skeleton=[]), np.repeat(gray[..., None], 3, 2))


def test_non_finite_keypoints_are_skipped() -> None:
    image = np.zeros((50, 50, 3), np.uint8)
    kpts = np.array([[[np.nan, 10.0], [25.0, 25.0]]])
    out = draw_poses(image, kpts, np.ones((1, 2)), skeleton=[(0, 1)])
    assert out[25, 25].any() and out.sum() < 255 * 3 * 60  # only the finite joint


@pytest.mark.parametrize(
    ("kpts", "scores", "skeleton", "match"),
    [
        (np.zeros((1, 3)), np.zeros((1, 3)), [], "keypoints must be"),
        (np.zeros((1, 3, 2)), np.zeros((1, 2)), [], "scores must be"),
        (np.zeros((1, 3, 2)), np.zeros((1, 3)), [(0, 3)], "out of range"),
    ],
)
def test_bad_shapes_raise(kpts: np.ndarray, scores: np.ndarray, skeleton: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        draw_poses(np.zeros((10, 10, 3), np.uint8), kpts, scores, skeleton)


def test_save_image_round_trip(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    path = save_image(tmp_path / "sub" / "x.png", rgb)
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), rgb)  # RGB order kept, lossless
    jpg = save_image(tmp_path / "x.jpg", np.full((16, 16, 3), (200, 30, 30), np.uint8))
    assert np.abs(np.asarray(Image.open(jpg), dtype=int) - (200, 30, 30)).max() < 12
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["x.jpg", "x.png"]  # no temp files
    with pytest.raises(ValueError, match="suffix"):
        save_image(tmp_path / "x.unknownformat", rgb)


def _write_log(path: Path) -> None:
    recs = [{"type": "train", "epoch": 1, "iteration": i, "lr": 1e-3, "loss": 1.0 / i} for i in range(1, 11)]
    recs += [
        {"type": "epoch", "epoch": 1, "iteration": 10, "loss": 0.3},
        {"type": "eval", "epoch": 1, "iteration": 10, "AP": 0.4, "AP50": 0.7, "AR": 0.5},
        {"type": "eval", "epoch": 2, "iteration": 20, "AP": 0.6, "AP50": 0.8, "AR": 0.65},
    ]
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")


def test_plot_metrics(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    _write_log(log)
    out = plot_metrics(log, tmp_path / "curves.png")
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (400, 1000, 3)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    blank = np.asarray(Image.open(plot_metrics(empty, tmp_path / "blank.png")).convert("RGB"))
    # curves add coloured pixels (matplotlib's default blue / orange) that an empty log does not have
    coloured = lambda a: int((np.ptp(a.astype(int), axis=2) > 60).sum())  # noqa: E731
    assert coloured(img) > coloured(blank) + 500


def test_plot_metrics_bad_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        plot_metrics(tmp_path / "missing.jsonl", tmp_path / "x.png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "train", "iteration": 1, "loss": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        plot_metrics(bad, tmp_path / "x.png")
