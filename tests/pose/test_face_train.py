"""One epoch on the WFLW sample, evaluation by NME, and prediction from the carded file alone (CPU)."""

from __future__ import annotations

import json

import numpy as np

import hrnet
from hrnet.cli import main
from hrnet.engine.config import load_config
from hrnet.pose import PoseEstimator
from hrnet.pose.config import PoseConfig
from hrnet.pose.train import evaluate, train

from .conftest import DATA, REPO


def test_one_epoch_eval_and_predict_from_the_carded_file(tmp_path, capsys):
    root = (DATA / "face_landmark_sample" / "wflw").resolve()
    cfg = load_config(PoseConfig, REPO / "configs/pose/sample/face_wflw.yaml", [f"data.root={root}"])
    metrics = train(cfg, tmp_path / "run", device="cpu")
    assert set(metrics) >= {"NME", "FR@0.08", "FR@0.1", "AUC@0.1"} and np.isfinite(metrics["NME"])
    best = tmp_path / "run" / "model_best.safetensors"
    card = hrnet.read_card(best)
    assert card.model == "pose_hrnetv2_w18_small_v1" and card.num_outputs == 98
    assert card.meta["keypoint_set"]["name"] == "wflw"
    again = evaluate(cfg, best, device="cpu")
    assert again["NME"] == metrics["NME"]  # the saved weights are the evaluated ones
    # predict with nothing but the file: keypoint set, crop size and test settings come from its card
    raw = json.loads((root / "wflw_sample.json").read_text())
    ann = next(a for a in raw["annotations"] if a["image_id"] == 12)
    x, y, w, h = ann["bbox"]
    est = PoseEstimator(best, detector=None, device="cpu")
    res = est(root / "images" / "7_Cheering_Cheering_7_16.jpg", boxes=[[x, y, x + w, y + h]])
    assert res.keypoints.shape == (1, 98, 2) and len(res.to_json()["keypoint_names"]) == 98
    # the landmarks land inside the face crop (1.25 x the box around its center)
    cx, cy, half = x + w / 2, y + h / 2, 0.625 * max(w, h)
    assert np.all(np.abs(res.keypoints[0] - [cx, cy]) <= half + 1)
    res.save(tmp_path / "face.jpg")
    assert (tmp_path / "face.jpg").stat().st_size > 0
    # the command with no detector flag: a landmark card runs the face detector, named on the console
    out = tmp_path / "pred"
    photo = root / "images" / "7_Cheering_Cheering_7_16.jpg"
    assert main(["pose", "predict", str(photo), "--weights", str(best), "--out", str(out), "--no-save"]) == 0
    assert any(line.startswith("detector: opencv_face (OpenCV ") for line in capsys.readouterr().err.splitlines())
    report = json.loads((out / "run-001" / "results.json").read_text())
    assert report["detector"]["name"] == "opencv_face"
    assert len(report["results"][0]["people"]) >= 3  # the photo's three annotated faces, at least
