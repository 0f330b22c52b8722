"""``hrnet cls predict`` on an image too small to classify: it answers, and warns on the console and in the JSON."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from hrnet.classification.api import MIN_IMAGE_SIDE
from hrnet.cli import main


def test_tiny_image_is_classified_with_a_warning(tmp_path, capsys):
    assert MIN_IMAGE_SIDE == 32  # the documented threshold: under 32 px a side warns
    rng = np.random.default_rng(0)
    for name, (h, w) in {"dot.png": (1, 1), "thin.png": (31, 200), "fine.png": (32, 32)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / name)
    out = tmp_path / "out"
    code = main(
        [
            "cls",
            "predict",
            str(tmp_path / "dot.png"),
            str(tmp_path / "thin.png"),
            str(tmp_path / "fine.png"),
            "--model",
            "hrnet_w18_small_v1",
            "--num-classes",
            "3",
            "--runtime",
            "eager",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err.splitlines()
    assert code == 0
    warned = [line for line in err if line.startswith("warning: ")]
    assert warned == [
        "warning: dot.png: image is 1x1 pixels, under 32 px a side: too small to classify meaningfully",
        "warning: thin.png: image is 200x31 pixels, under 32 px a side: too small to classify meaningfully",
    ]
    records = {r["file"]: r for r in json.loads((out / "run-001" / "results.json").read_text())["results"]}
    assert records["dot.png"]["warnings"] == [warned[0].split(": ", 2)[2]]
    assert records["thin.png"]["warnings"] == [warned[1].split(": ", 2)[2]]
    assert "warnings" not in records["fine.png"]
    assert all(len(r["top"]) == 3 for r in records.values())  # answered all the same


def test_auto_runtime_is_told_every_image_in_hand():
    """The classifier announces all the images of a call to runtime "auto" (AutoRunner.expect), so its
    choice of runtime weighs the whole job, not one batch at a time."""
    from hrnet.classification.api import Classifier

    clf = Classifier("hrnet_w18_small_v1", device="cpu", num_classes=3, batch_size=2, crop_size=64, runtime="auto")
    announced: list[int] = []
    runner = clf.forward
    original = runner.expect
    runner.expect = lambda n: (announced.append(n), original(n))
    images = [np.zeros((40, 40, 3), dtype=np.uint8)] * 5
    assert clf.logits(images).shape == (5, 3)
    assert announced == [5]
