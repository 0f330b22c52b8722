"""Training, resume, head re-initialisation, CLI eval / predict and the Python API on the real COCO sample."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hrnet.cli import main
from hrnet.engine.config import load_config
from hrnet.models.weights import save_weights
from hrnet.pose.api import PoseEstimator
from hrnet.pose.cli import add_subcommands
from hrnet.pose.config import PoseConfig
from hrnet.pose.evaluation import evaluate_coco
from hrnet.pose.inference import predict_dataset
from hrnet.pose.keypoints import COCO_KEYPOINTS
from hrnet.pose.model import build_model
from hrnet.pose.train import build_dataset, evaluate, train

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "pose" / "sample" / "tiny.yaml"
FIT = REPO / "configs" / "pose" / "sample" / "fit.yaml"
SMALL = ["data.input_size=[48,64]", "train.log_every=1"]


def _cfg(coco_dir: Path, *overrides: str) -> PoseConfig:
    return load_config(PoseConfig, TINY, [f"data.root={coco_dir}", *SMALL, *overrides])


def _losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r.get("type") == "epoch"]


def test_short_fit_loss_falls(coco_dir, tmp_path):
    cfg = _cfg(coco_dir, "train.epochs=4", "train.eval_every=0")
    train(cfg, tmp_path, device="cpu")
    losses = _losses(tmp_path)
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "model_best.safetensors").is_file()
    assert (tmp_path / "config.yaml").is_file()


def test_resume_gives_same_weights(coco_dir, tmp_path):
    """3 epochs straight vs 2 epochs + resume for the 3rd, with rotation / scale / flip / half-body on."""
    aug = [
        "data.rot_prob=0.6",
        "data.scale_factor=0.35",
        "data.flip=true",
        "data.half_body_prob=0.3",
        "train.batch_size=6",
        "train.eval_every=0",
    ]
    train(_cfg(coco_dir, "train.epochs=3", *aug), tmp_path / "a", device="cpu")
    train(_cfg(coco_dir, "train.epochs=2", *aug), tmp_path / "b", device="cpu")
    train(_cfg(coco_dir, "train.epochs=3", *aug), tmp_path / "b", resume=tmp_path / "b" / "last.pt", device="cpu")
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_head_reinit_when_num_joints_changes(coco_dir, tmp_path, caplog):
    src = build_model(_cfg(coco_dir))
    save_weights(src, tmp_path / "coco17.safetensors")
    (tmp_path / "five.yaml").write_text(
        "names: [nose, left_eye, right_eye, left_ear, right_ear]\nflip_pairs: [[left_eye, right_eye], "
        "[left_ear, right_ear]]\nsigmas: [0.026, 0.025, 0.025, 0.035, 0.035]\nupper_body: [nose]\n"
    )
    cfg = _cfg(
        coco_dir, f"data.keypoint_set={tmp_path / 'five.yaml'}", f"model.pretrained={tmp_path / 'coco17.safetensors'}"
    )
    with caplog.at_level(logging.WARNING, logger="hrnet.pose"):
        model = build_model(cfg)
    assert "17 keypoints, the model 5" in caplog.text and "final_layer re-initialised" in caplog.text
    assert model.final_layer.out_channels == 5
    torch.testing.assert_close(model.state_dict()["conv1.weight"], src.state_dict()["conv1.weight"])


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hrnet pose")
    add_subcommands(parser)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def tiny_weights(coco_dir, tmp_path_factory) -> Path:
    """Freshly initialised tiny weights (the metrics code, not their value, is under test)."""
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    torch.manual_seed(0)
    save_weights(build_model(_cfg(coco_dir)), path)
    return path


def test_cli_eval_writes_json(coco_dir, tmp_path, tiny_weights):
    out = tmp_path / "metrics.json"
    res = tmp_path / "results.json"
    sets = [f"data.root={coco_dir}", *SMALL, "test.flip_test=false"]
    code = _run_cli(
        [
            "eval",
            "--config",
            str(TINY),
            "--weights",
            str(tiny_weights),
            "--json",
            str(out),
            "--results",
            str(res),
            "--device",
            "cpu",
            "--set",
            *sets,
        ]
    )
    assert code == 0
    metrics = json.loads(out.read_text())
    assert {"AP", "AP50", "AP75", "APM", "APL", "AR"} <= set(metrics)
    # the file holds what pycocotools says about the written results
    results = json.loads(res.read_text())
    assert len(results) >= 1 and len(results[0]["keypoints"]) == 51
    assert evaluate_coco(coco_dir / "person_keypoints_sample.json", results) == pytest.approx(metrics)


def test_api_matches_evaluation_path(coco_dir, tiny_weights):
    """The API on a GT box gives the very keypoints of the evaluation pipeline for that person."""
    cfg = _cfg(coco_dir)
    model = build_model(cfg)
    est = PoseEstimator(
        model,
        tiny_weights,
        keypoint_set=COCO_KEYPOINTS,
        input_size=(64, 48),
        flip_test=True,
        device="cpu",
        detector=None,  # no boxes: the whole image
    )
    ds = build_dataset(cfg, train=False)
    rec = ds.records[0]
    preds = predict_dataset(est.model, torch.utils.data.Subset(ds, [0]), ds.codec, COCO_KEYPOINTS.flip_pairs)
    x, y, w, h = rec["box"]
    result = est(rec["file"], boxes=[[x, y, x + w, y + h, 0.7]])
    assert result.keypoints.shape == (1, 17, 2) and result.scores.shape == (1, 17)
    np.testing.assert_allclose(result.keypoints[0], preds[0]["keypoints"], atol=1e-4)
    js = result.to_coco(image_id=rec["image_id"])
    assert js[0]["image_id"] == rec["image_id"] and len(js[0]["keypoints"]) == 51
    assert result.to_json()["people"][0]["image_id"] == int(Path(rec["file"]).stem)  # COCO names: the id
    with pytest.raises(ValueError, match="has no area"):
        est(rec["file"], boxes=[[10, 10, 5, 20]])
    rgba = np.zeros((40, 30, 4), np.uint8)  # RGBA arrays are accepted; no boxes -> whole image
    assert est(rgba).keypoints.shape == (1, 17, 2) and est(rgba).boxes_source == "whole image"


def test_cli_predict_with_boxes_file(coco_dir, tmp_path, tiny_weights):
    image = coco_dir / "images" / "000000000785.jpg"
    dets = coco_dir / "person_detection_results_AP_H_56_sample.json"
    code = _run_cli(
        [
            "predict",
            str(image),
            "--weights",
            str(tiny_weights),
            "--config",
            str(TINY),
            "--boxes",
            str(dets),
            "--det-thr",  # every box of the file, however low its score (the default keeps those >= 0.5)
            "0",
            "--out",
            str(tmp_path),
            "--no-flip",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "run-001" / "results.json").read_text())
    people = report["results"][0]["people"]
    n_boxes = sum(d["image_id"] == 785 for d in json.loads(dets.read_text()))
    assert len(people) == n_boxes and all(r["image_id"] == 785 for r in people)
    assert report["results"][0]["boxes_source"] == "given" and report["flip_test"] is False
    assert (tmp_path / "run-001" / "000000000785.jpg").is_file()


def test_fit_coco_sample_reaches_ap(coco_dir, tmp_path):
    """The tiny HRNet fits the 12 labelled people of the 4 COCO images: AP >= 0.8 and the loss falls."""
    t0 = time.time()
    cfg = load_config(PoseConfig, FIT, [f"data.root={coco_dir}"])
    metrics = train(cfg, tmp_path, device="cpu")
    losses = _losses(tmp_path)
    print(f"fit: {time.time() - t0:.0f} s, loss {losses[0]:.5f} -> {losses[-1]:.5f}, metrics {metrics}")
    assert losses[-1] < 0.5 * losses[0]
    assert metrics["AP"] >= 0.8, metrics
    again = evaluate(cfg, tmp_path / "model_best.safetensors", device="cpu")
    assert again["AP"] >= metrics["AP"] - 1e-9  # best weights evaluate to the best metric


def test_ddp_two_processes_agree(coco_dir, tmp_path):
    """torchrun, 2 gloo processes x 6 crops vs 1 process x 12: same samples per step; batch-norm statistics
    differ (per-process batches, no SyncBN on CPU), so training agrees closely; the distributed evaluation
    of a given model must agree exactly with the single-process one."""
    sets = [f"data.root={coco_dir}", "train.epochs=3", "train.eval_every=3", "data.input_size=[48,64]"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "hrnet.cli",
        "pose",
        "train",
        "--config",
        str(TINY),
        "--out",
        str(tmp_path / "ddp"),
        "--device",
        "cpu",
        "--set",
        *sets,
        "train.batch_size=6",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = load_config(PoseConfig, TINY, [*sets, "train.batch_size=12"])
    single = train(cfg, tmp_path / "one", device="cpu")
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    ddp = [r for r in rows if r.get("type") == "eval"][-1]
    l2, l1 = _losses(tmp_path / "ddp"), _losses(tmp_path / "one")
    np.testing.assert_allclose(l2, l1, rtol=0.1)
    assert abs(ddp["AP"] - single["AP"]) <= 0.1
    exact = evaluate(cfg, tmp_path / "ddp" / "model_best.safetensors", device="cpu")
    assert exact["AP"] == pytest.approx(ddp["AP"], abs=1e-9)


def test_cli_predict_video_with_person_detector(coco_dir, tmp_path, tiny_weights):
    """Without --boxes, a torchvision detector (user weights) supplies the people; videos are read frame by frame."""
    import cv2
    from torchvision.models import detection

    torch.manual_seed(0)
    det = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
    with torch.no_grad():  # random weights whose classifier favours "person": boxes on every frame
        det.roi_heads.box_predictor.cls_score.bias.zero_()
        det.roi_heads.box_predictor.cls_score.bias[1] = 12.0
    torch.save(det.state_dict(), tmp_path / "det.pth")
    frame = cv2.imread(str(coco_dir / "images" / "000000000785.jpg"))
    frame = cv2.resize(frame, (160, 120))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (160, 120))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    code = _run_cli(
        [
            "predict",
            str(video),
            "--weights",
            str(tiny_weights),
            "--config",
            str(TINY),
            "--detector-weights",
            str(tmp_path / "det.pth"),
            "--det-arch",
            "fasterrcnn_mobilenet_v3_large_320_fpn",
            "--out",
            str(tmp_path / "out"),
            "--no-flip",
        ]
    )
    assert code == 0
    results = json.loads((tmp_path / "out" / "run-001" / "results.json").read_text())["results"]
    assert [r["frame"] for r in results] == [0, 1, 2]
    assert all(r["boxes_source"] == "detector" and r["people"] for r in results)
    assert all(
        len(p["keypoints"]) == 51 and r["file"] == "clip.avi#" + str(r["frame"]) for r in results for p in r["people"]
    )
    assert (tmp_path / "out" / "run-001" / "clip.mp4").stat().st_size > 0


# ------------------------------------------------------------------------------------------ run folders
QUICK = ["data.input_size=[48,64]", "train.eval_every=0", "train.max_iters_per_epoch=1", "train.batch_size=4"]


def _train_cmd(coco_dir: Path, *args: str, sets: tuple[str, ...] = ()) -> int:
    """``hrnet pose train --config tiny.yaml ARGS --device cpu --set ...``: one optimizer step per epoch."""
    argv = ["pose", "train", "--config", str(TINY), *args, "--device", "cpu"]
    return main([*argv, "--set", f"data.root={coco_dir}", *QUICK, "train.epochs=1", *sets])


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _where(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("training run: ")]


def test_second_train_into_the_same_out_writes_a_new_run_folder(coco_dir, tmp_path, capsys):
    out = tmp_path / "runs" / "x"
    assert _train_cmd(coco_dir, "--out", str(out)) == 0
    assert _where(capsys.readouterr().err) == [f"training run: {out}"]
    first = _files(out)
    assert {"model_best.safetensors", "best.pt", "last.pt", "config.yaml", "metrics.jsonl"} <= set(first)
    assert "train.lock" not in first  # released at the end

    assert _train_cmd(coco_dir, "--out", str(out)) == 0
    run2 = out / "run-002"
    assert _where(capsys.readouterr().err) == [
        f"training run: {run2} ({out} holds an earlier run; --exist-ok would replace it)"
    ]
    after = _files(out)
    assert {k: v for k, v in after.items() if not k.startswith("run-002")} == first  # byte for byte
    second = _files(run2)
    assert set(second) == set(first)
    assert len(second["metrics.jsonl"].splitlines()) == len(first["metrics.jsonl"].splitlines())  # nothing appended


def test_exist_ok_replaces_the_run_in_out(coco_dir, tmp_path, capsys):
    out = tmp_path / "x"
    assert _train_cmd(coco_dir, "--out", str(out)) == 0
    capsys.readouterr()
    assert _train_cmd(coco_dir, "--out", str(out), "--exist-ok", sets=("train.epochs=2",)) == 0
    assert _where(capsys.readouterr().err) == [f"training run: {out} (--exist-ok: replacing the earlier run's files)"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model_best.safetensors", "best.pt", "last.pt", "config.yaml", "metrics.jsonl"]
    )
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["type"] == "epoch"] == [1, 2]  # the second run's only
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2
    assert load_config(PoseConfig, out / "config.yaml").train.epochs == 2


def test_resume_continues_in_the_checkpoint_folder(coco_dir, tmp_path, capsys):
    out = tmp_path / "x"
    assert _train_cmd(coco_dir, "--out", str(out)) == 0
    capsys.readouterr()
    ckpt = out / "last.pt"
    assert _train_cmd(coco_dir, "--resume", str(ckpt), sets=("train.epochs=2",)) == 0  # no --out needed
    assert _where(capsys.readouterr().err) == [f"training run: {out} (continuing from {ckpt})"]
    assert not (out / "run-002").exists() and not (out / "train.lock").exists()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["type"] == "epoch"] == [1, 2]
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    # --out naming another folder than the checkpoint's: one line, exit 2, nothing written there
    assert _train_cmd(coco_dir, "--resume", str(ckpt), "--out", str(tmp_path / "y")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hrnet: error: --resume {ckpt} continues in its own folder {out}")
    assert not (tmp_path / "y").exists()


def test_a_held_lock_is_exit_2_naming_the_folder(coco_dir, tmp_path, capsys):
    out = tmp_path / "x"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a live "other training"
    try:
        lock = out / "train.lock"
        lock.write_text(f"{other.pid} {socket.gethostname()}\n")
        assert _train_cmd(coco_dir, "--out", str(out), "--exist-ok") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0].startswith(f"hrnet: error: {out}: another training (pid {other.pid}) is writing into this")
        assert sorted(p.name for p in out.iterdir()) == ["train.lock"]  # nothing written, the lock untouched
        assert lock.read_text() == f"{other.pid} {socket.gethostname()}\n"
    finally:
        other.kill()
        other.wait()


def test_a_stale_lock_is_taken_over(coco_dir, tmp_path, capsys, caplog):
    out = tmp_path / "x"
    assert _train_cmd(coco_dir, "--out", str(out)) == 0
    capsys.readouterr()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a training killed without cleaning up
    dead.wait()
    (out / "train.lock").write_text(f"{dead.pid} {socket.gethostname()}\n")
    with caplog.at_level(logging.WARNING, logger="hrnet.engine"):
        assert _train_cmd(coco_dir, "--resume", str(out / "last.pt"), sets=("train.epochs=2",)) == 0
    assert f"taking over the stale lock {out / 'train.lock'} (pid {dead.pid}, no longer running)" in caplog.text
    assert not (out / "train.lock").exists()
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2
