"""``hrnet pose predict`` on inputs at the edge: a one-pixel image, boxes wholly outside their image, and
the drawing flag reaching the saved picture. Random weights (the messages and files are under test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from hrnet.cli import main

NET = ["--model", "pose_hrnet_w18_small_v1", "--input-size", "64", "48", "--runtime", "eager", "--device", "cpu"]


def _image(path: Path, w: int, h: int) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_one_pixel_image_names_the_file(tmp_path, capsys):
    image = _image(tmp_path / "dot.png", 1, 1)
    code = main(
        ["pose", "predict", str(image), *NET, "--detector", "none", "--out", str(tmp_path / "out"), "--no-flip"]
    )
    err = capsys.readouterr().err
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("hrnet: error: ") and str(image) in line
    assert "image is 1x1 pixels, too small to crop a person from" in line and "crop scale" not in err
    assert "Traceback" not in err


def test_box_outside_the_image_is_warned_on_the_console(tmp_path, capsys):
    image = _image(tmp_path / "small.png", 40, 30)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"small.png": [[100, 100, 200, 200, 0.9], [2, 2, 30, 25, 0.8]]}))
    out = tmp_path / "out"
    code = main(["pose", "predict", str(image), *NET, "--boxes", str(boxes), "--out", str(out), "--no-flip"])
    err = capsys.readouterr().err
    assert code == 0
    assert "warning: small.png: 1 box wholly outside the image dropped" in err.splitlines()
    record = json.loads((out / "run-001" / "results.json").read_text())["results"][0]
    assert record["box_counts"] == {"outside": 1}
    assert record["warnings"] == ["1 box wholly outside the image dropped"]
    assert len(record["people"]) == 1


def test_kpt_thr_reaches_the_saved_picture(tmp_path, capsys):
    """``--kpt-thr 1e9`` (above any score) draws no keypoint: the picture holds only the person box, so it
    differs from the default drawing, and pixels away from the box keep the input's values."""
    image = _image(tmp_path / "person.png", 48, 64)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"person.png": [[10, 10, 30, 50]]}))
    pictures = {}
    for thr in ("1e9", "-1"):
        out = tmp_path / f"thr{thr}"
        args = ["pose", "predict", str(image), *NET, "--boxes", str(boxes), "--out", str(out), f"--kpt-thr={thr}"]
        assert main(args) == 0
        pictures[thr] = np.asarray(Image.open(out / "run-001" / "person.png").convert("RGB"))
    capsys.readouterr()
    source = np.asarray(Image.open(image).convert("RGB"))
    inside = np.zeros(source.shape[:2], bool)
    inside[8:53, 8:33] = True  # the box and its drawn outline
    np.testing.assert_array_equal(pictures["1e9"][~inside], source[~inside])
    assert not np.array_equal(pictures["1e9"], pictures["-1"])  # threshold -1 draws all 17 keypoints
