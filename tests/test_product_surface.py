"""One product surface: weights that carry their model card, one loader, one result protocol, one predict
command with the same flags, runs that never overwrite each other, files that honour the umask.

Tiny real runs: a 16-keypoint (MPII) pose model and a 3-class folder-format segmentation model are trained
for a few steps on the real samples; their ``model_best.safetensors`` alone must rebuild them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hrnet
from hrnet.cli import main
from hrnet.engine.config import load_config
from hrnet.models.card import ModelCard, read_card

REPO = Path(__file__).resolve().parents[1]
POSE_TINY = REPO / "configs" / "pose" / "sample" / "tiny.yaml"
SEG_TINY = REPO / "configs" / "seg" / "cityscapes_sample" / "tiny.yaml"
MPII_NAMES = [
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
]


@pytest.fixture(scope="module")
def pose_run(shared_data, tmp_path_factory) -> Path:
    """Two training steps of a tiny 16-keypoint MPII model with backbone overrides."""
    from hrnet.pose.config import PoseConfig
    from hrnet.pose.train import train

    out = tmp_path_factory.mktemp("pose_run")
    mpii = shared_data / "mpii_sample"
    cfg = load_config(
        PoseConfig,
        POSE_TINY,
        [
            "data.dataset=mpii",
            f"data.root={mpii}",
            "data.train_ann=mpii_annot_sample.json",
            "data.train_images=images",
            "data.val_ann=mpii_annot_sample.json",
            "data.val_images=images",
            "data.keypoint_set=mpii",
            "data.input_size=[48,64]",
            "train.epochs=1",
            "train.batch_size=4",
            "train.max_iters_per_epoch=2",
            "test.flip_test=false",
            "test.dark=true",
        ],
    )
    train(cfg, out, device="cpu")
    return out / "model_best.safetensors"


@pytest.fixture(scope="module")
def seg_run(shared_data, tmp_path_factory) -> Path:
    """A 3-class folder dataset made from the Cityscapes frame (road, car, other), trained a few steps."""
    from hrnet.segmentation.config import SegConfig
    from hrnet.segmentation.datasets import read_label
    from hrnet.segmentation.train import train

    root = tmp_path_factory.mktemp("seg_data")
    city = shared_data / "cityscapes_sample"
    image = next((city / "leftImg8bit").rglob("*_leftImg8bit.png"))
    train_ids = read_label(next((city / "gtFine").rglob("*_labelTrainIds.png")))
    three = np.full(train_ids.shape, 2, np.uint8)
    three[train_ids == 0] = 0
    three[train_ids == 13] = 1
    three[train_ids == 255] = 255
    (root / "images").mkdir()
    (root / "masks").mkdir()
    shutil.copy(image, root / "images" / "frame.png")
    Image.fromarray(three, mode="L").save(root / "masks" / "frame.png")
    (root / "classes.yaml").write_text(
        "names: [road, car, other]\ncolors: [[128, 64, 128], [0, 0, 142], [90, 90, 90]]\n"
    )
    out = tmp_path_factory.mktemp("seg_run")
    cfg = load_config(
        SegConfig,
        SEG_TINY,
        [
            "data.dataset=folder",
            f"data.root={root}",
            "data.num_classes=3",
            "data.repeat=2",
            "train.epochs=1",
            "train.eval_every=1",
            "test.flip=true",
        ],
    )
    train(cfg, out, device="cpu")
    return out / "model_best.safetensors"


def _image(shared_data: Path, name: str = "coco_kpt_sample/images/000000000785.jpg") -> Path:
    return shared_data / name


# --------------------------------------------------------------------------------------------------
# model cards and the one loader


def test_pose_card_rebuilds_a_16_keypoint_model(pose_run, shared_data, tmp_path, capsys):
    from hrnet.pose import PoseEstimator

    card = read_card(pose_run)
    assert card.task == "pose" and card.num_outputs == 16 and card.labels == MPII_NAMES
    assert card.input_size == [64, 48] and card.overrides["width"] == 8 and card.train["epoch"] == 1
    ks = card.meta["keypoint_set"]
    assert len(ks["flip_pairs"]) == 6 and len(ks["sigmas"]) == 16 and ks["skeleton"]
    assert card.test == {"flip_test": False, "shift_heatmap": True, "dark": True}

    model = hrnet.load_model(pose_run)
    assert model.head_size == 16 and model.card == card

    est = PoseEstimator(pose_run, device="cpu")
    assert est.keypoint_set.names == MPII_NAMES and est.input_size == (64, 48)
    assert est.flip_test is False and est.dark is True  # test settings from the card
    res = est(_image(shared_data), boxes=[[100, 50, 300, 400]])
    assert res.keypoints.shape == (1, 16, 2) and res.to_json()["keypoint_names"] == MPII_NAMES
    assert res.plot().shape == res.image.shape  # no arguments needed: the result keeps its image

    # the CLI needs nothing but the weights file
    out = tmp_path / "pred"
    assert (
        main(
            [
                "pose",
                "predict",
                str(_image(shared_data)),
                "--weights",
                str(pose_run),
                "--detector",
                "none",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    report = json.loads((out / "run-001" / "results.json").read_text())
    assert report["keypoint_set"] == "mpii" and report["results"][0]["boxes_source"] == "whole image"
    assert len(report["results"][0]["people"][0]["keypoints"]) == 16 * 3
    assert "whole image is treated as one person" in capsys.readouterr().err
    assert report["notes"] == ["no --boxes and no detector: each whole image is treated as one person"]

    # an explicit keypoint set that disagrees with the weights: an error, never a re-initialised head
    with pytest.raises(ValueError, match="does not match the weights' own set"):
        PoseEstimator(pose_run, keypoint_set="coco", device="cpu")
    assert (
        main(
            [
                "pose",
                "predict",
                str(_image(shared_data)),
                "--weights",
                str(pose_run),
                "--keypoint-set",
                "coco",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "does not match the weights' own set" in capsys.readouterr().err
    # the same weights under another model name, or as another task: errors naming the file
    with pytest.raises(ValueError, match="not a pose_hrnet_w32"):
        PoseEstimator("pose_hrnet_w32", weights=pose_run, device="cpu")
    with pytest.raises(ValueError, match="is a 'pose' model"):
        hrnet.load_model(pose_run, task="seg")


def test_seg_card_rebuilds_a_3_class_model(seg_run, shared_data, tmp_path, capsys):
    from hrnet.segmentation import Segmenter

    card = read_card(seg_run)
    assert card.task == "seg" and card.labels == ["road", "car", "other"] and card.test["flip"] is True
    assert card.meta["palette"][1] == [0, 0, 142] and card.overrides == {"stage_blocks": [1, 1, 1]}
    seg = Segmenter(seg_run, device="cpu")
    assert seg.num_classes == 3 and seg.class_names == ["road", "car", "other"] and seg.test.flip is True
    frame = next((shared_data / "cityscapes_sample" / "leftImg8bit").rglob("*.png"))
    res = seg(frame)
    assert res.labels.max() < 3 and set(res.to_json()["classes"]) <= {"road", "car", "other"}

    out = tmp_path / "pred"
    assert main(["seg", "predict", str(frame), "--weights", str(seg_run), "--out", str(out), "--device", "cpu"]) == 0
    record = json.loads((out / "run-001" / "results.json").read_text())["results"][0]
    assert sum(record["classes"].values()) == res.labels.size and record["label_file"].endswith(".labels.png")
    capsys.readouterr()
    # an explicit class count that disagrees: exit 2 with one line naming the file
    assert (
        main(
            [
                "seg",
                "predict",
                str(frame),
                "--weights",
                str(seg_run),
                "--num-classes",
                "19",
                "--model",
                "seg_hrnet_w18_small_v1",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model_best.safetensors" in err[0] and "3 classes" in err[0]


def test_files_without_a_card_keep_working_with_explicit_arguments(tmp_path):
    model = hrnet.create_model("pose_hrnet_w18_small_v1", num_joints=5, stage_modules=(1, 1, 1))
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "official.pth")
    assert read_card(tmp_path / "official.pth") is None
    with pytest.raises(ValueError, match="has no model card"):
        hrnet.load_model(tmp_path / "official.pth")
    again = hrnet.create_model("pose_hrnet_w18_small_v1", num_joints=5, stage_modules=(1, 1, 1))
    hrnet.load_weights(again, tmp_path / "official.pth")  # strict
    # a head of another size: inference raises naming both sizes; fine-tuning re-initialises and says so
    other = hrnet.create_model("pose_hrnet_w18_small_v1", num_joints=17, stage_modules=(1, 1, 1))
    with pytest.raises(hrnet.models.weights.HeadMismatchError, match="predict 5 keypoints but the model has 17"):
        hrnet.load_weights(other, tmp_path / "official.pth")
    result = hrnet.load_weights(other, tmp_path / "official.pth", on_head_mismatch="reinit")
    assert result.reinitialized == ("final_layer.weight", "final_layer.bias")
    # another width is not a head mismatch: a plain shape error even when fine-tuning
    wide = hrnet.create_model("pose_hrnet_w18_small_v1", num_joints=5, stage_modules=(1, 1, 1), width=8)
    with pytest.raises(ValueError, match="another width or task"):
        hrnet.load_weights(wide, tmp_path / "official.pth", on_head_mismatch="reinit")


def test_card_round_trip_and_validation(tmp_path):
    card = ModelCard(
        task="cls",
        model="hrnet_w18_small_v1",
        num_outputs=2,
        labels=["cat", "dog"],
        overrides={"width": 8},
        meta={"class_ids": ["c", "d"]},
    )
    model = hrnet.create_model("hrnet_w18_small_v1", num_classes=2, width=8)
    path = hrnet.save_weights(model, tmp_path / "w.safetensors", card=card)
    assert read_card(path) == card and card.version == hrnet.__version__
    old = os.umask(0o022)
    try:
        assert oct(hrnet.save_weights(model, tmp_path / "v.safetensors", card=card).stat().st_mode & 0o777) == "0o644"
    finally:
        os.umask(old)
    with pytest.raises(ValueError, match="2 labels for a head of 3"):
        ModelCard(task="cls", model="x", num_outputs=3, labels=["a", "b"])
    with pytest.raises(ValueError, match="task must be one of"):
        ModelCard(task="depth", model="x", num_outputs=1, labels=["a"])
    with pytest.raises(ValueError, match="needs a .safetensors file"):
        hrnet.save_weights(model, tmp_path / "w.pth", card=card)


def test_hf_hub_source_from_the_local_cache(tmp_path):
    """``hf-hub:org/repo`` resolves through huggingface_hub's cache, offline: no network in tests."""
    pytest.importorskip("huggingface_hub")
    card = ModelCard(
        task="cls", model="hrnet_w18_small_v1", num_outputs=3, labels=["a", "b", "c"], overrides={"width": 8}
    )
    model = hrnet.create_model("hrnet_w18_small_v1", num_classes=3, width=8)
    snapshot = tmp_path / "hub" / "models--someone--tiny-hrnet" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    hrnet.save_weights(model, snapshot / "model.safetensors", card=card)
    (tmp_path / "hub" / "models--someone--tiny-hrnet" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--tiny-hrnet" / "refs" / "main").write_text("0" * 40)
    code = (
        "import hrnet; from hrnet.classification import Classifier; "
        "m = hrnet.load_model('hf-hub:someone/tiny-hrnet'); c = Classifier('hf-hub:someone/tiny-hrnet'); "
        "print(m.card.labels, c.class_names)"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "['a', 'b', 'c'] ['a', 'b', 'c']"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hrnet",
            "cls",
            "predict",
            str(REPO / "README.md"),
            "--weights",
            "hf-hub:someone/missing",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("hrnet: error:")


# --------------------------------------------------------------------------------------------------
# predict runs: folders, collisions, bad files, permissions


@pytest.fixture()
def carded_classifier(tmp_path) -> Path:
    torch.manual_seed(0)
    model = hrnet.create_model("hrnet_w18_small_v1", num_classes=3, width=8, stage_blocks=(1, 1, 1))
    card = ModelCard(
        task="cls",
        model="hrnet_w18_small_v1",
        num_outputs=3,
        labels=["a", "b", "c"],
        overrides={"width": 8, "stage_blocks": [1, 1, 1]},
        input_size=[64, 64],
        test={"crop_size": 64, "resize_size": 73},
    )
    return hrnet.save_weights(model, tmp_path / "cls.safetensors", card=card)


def _images(root: Path, shared_data: Path) -> None:
    src = sorted((shared_data / "imagenet_sample" / "images").iterdir())
    for folder in ("a", "b"):
        (root / folder).mkdir(parents=True)
    Image.open(src[0]).save(root / "a" / "x.jpg")
    Image.open(src[1]).save(root / "a" / "x.png")
    Image.open(src[2]).save(root / "b" / "x.jpg")


def test_runs_never_overwrite_each_other_and_equal_names_do_not_collide(carded_classifier, shared_data, tmp_path):
    data = tmp_path / "data"
    _images(data, shared_data)
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        for _ in range(2):
            assert (
                main(
                    [
                        "cls",
                        "predict",
                        str(data),
                        "--weights",
                        str(carded_classifier),
                        "--out",
                        str(out),
                        "--device",
                        "cpu",
                        "--batch-size",
                        "2",
                    ]
                )
                == 0
            )
    finally:
        os.umask(old)
    for run in ("run-001", "run-002"):
        report = json.loads((out / run / "results.json").read_text())
        assert [r["file"] for r in report["results"]] == ["a/x.jpg", "a/x.png", "b/x.jpg"]
        for rel in ("a/x.jpg", "a/x.png", "b/x.jpg"):
            assert (out / run / rel).is_file()
    pictures = {rel: np.asarray(Image.open(out / "run-001" / rel)) for rel in ("a/x.jpg", "b/x.jpg")}
    assert pictures["a/x.jpg"].shape != pictures["b/x.jpg"].shape or not np.array_equal(*pictures.values())
    modes = {oct(p.stat().st_mode & 0o777) for p in (out / "run-001").rglob("*") if p.is_file()}
    assert modes == {"0o644"}  # readable by the team under umask 022 (atomic writes used to give 0600)
    # --exist-ok writes into --out itself
    assert (
        main(
            [
                "cls",
                "predict",
                str(data / "a" / "x.jpg"),
                "--weights",
                str(carded_classifier),
                "--out",
                str(out),
                "--exist-ok",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (out / "results.json").is_file() and (out / "x.jpg").is_file()


def test_a_corrupt_image_stops_the_run_or_is_skipped(carded_classifier, shared_data, tmp_path, capsys):
    data = tmp_path / "data"
    _images(data, shared_data)
    (data / "a" / "y_broken.jpg").write_bytes(b"not a jpeg at all")
    args = ["cls", "predict", str(data), "--weights", str(carded_classifier), "--device", "cpu", "--batch-size", "8"]
    assert main([*args, "--out", str(tmp_path / "stop")]) == 2
    err = capsys.readouterr().err
    assert "y_broken.jpg" in err and "--skip-bad" in err and "Traceback" not in err
    report = json.loads((tmp_path / "stop" / "run-001" / "results.json").read_text())
    # what came before the bad file is written, and the report says what stopped the run
    assert [r["file"] for r in report["results"]] == ["a/x.jpg", "a/x.png"] and "y_broken.jpg" in report["stopped_by"]

    assert main([*args, "--out", str(tmp_path / "skip"), "--skip-bad"]) == 0
    report = json.loads((tmp_path / "skip" / "run-001" / "results.json").read_text())
    assert [r["file"] for r in report["results"]] == ["a/x.jpg", "a/x.png", "b/x.jpg"]
    assert [s["file"] for s in report["skipped"]] == ["a/y_broken.jpg"]
    assert "1 skipped" in capsys.readouterr().err


def test_os_failures_are_one_line(carded_classifier, shared_data, tmp_path, capsys):
    image = str(sorted((shared_data / "imagenet_sample" / "images").iterdir())[0])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        (["--out", str(blocker)], "is not a folder"),
        (["--out", str(blocker / "sub")], str(blocker)),
        (["--device", "cuda:7"], "--device cuda:7"),
    ]
    if torch.cuda.is_available():
        cases.pop()
    capsys.readouterr()
    for extra, expected in cases:
        assert main(["cls", "predict", image, "--weights", str(carded_classifier), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("hrnet: error:") and expected in err[0], err
    # quoted globs expand; a glob matching nothing is one line too
    assert (
        main(
            [
                "cls",
                "predict",
                str(Path(image).parent / "n014*.JPEG"),
                "--weights",
                str(carded_classifier),
                "--out",
                str(tmp_path / "g"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "g" / "run-001" / "results.json").read_text())["done"] == 2
    assert main(["cls", "predict", str(tmp_path / "*.nothing"), "--weights", str(carded_classifier)]) == 2
    assert "matches no images" in capsys.readouterr().err


def test_python_m_hrnet_and_version():
    proc = subprocess.run([sys.executable, "-m", "hrnet", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"hrnet {hrnet.__version__}"
