"""Hand-made model cards are checked when they are read: a card lacking what its task needs is one line
naming the file and the entry (never a ``KeyError`` traceback), and export refuses a flip test that the
card cannot do correctly (no left/right pairs to swap)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import hrnet
from hrnet.cli import main
from hrnet.models.card import ModelCard
from hrnet.pose.keypoints import load_keypoint_set
from hrnet.pose.model import keypoint_set_to_dict

POSE = "pose_hrnet_w18_small_v1"
SMALL = {"stage_blocks": [1, 1, 1]}


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 80, 3), dtype=np.uint8)).save(path)
    return path


def _pose_weights(path, meta, names):
    card = ModelCard(
        task="pose", model=POSE, num_outputs=len(names), labels=names, overrides=SMALL, input_size=[64, 48], meta=meta
    )
    model = hrnet.create_model(POSE, num_joints=len(names), stage_blocks=(1, 1, 1))
    return hrnet.save_weights(model, path, card=card)


def test_pose_card_without_keypoint_set_is_one_line_naming_file_and_entry(tmp_path, photo, capsys):
    coco = load_keypoint_set("coco")
    weights = _pose_weights(tmp_path / "hand.safetensors", {}, list(coco.names))
    code = main(["pose", "predict", str(photo), "--weights", str(weights), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        f"hrnet: error: {weights}: model card of {POSE}: a pose card needs meta.keypoint_set (the keypoint set: "
        "names, flip_pairs, skeleton, sigmas); it is missing"
    ]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.jpg"))
    # the same file given to export: the same line, no file written
    assert main(["export", str(weights), "-o", str(tmp_path / "x.onnx"), "--no-check"]) == 2
    assert "needs meta.keypoint_set" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()


def test_pose_card_with_keypoints_of_another_count_is_refused(tmp_path):
    coco = load_keypoint_set("coco")
    weights = _pose_weights(tmp_path / "w.safetensors", {"keypoint_set": keypoint_set_to_dict(coco)}, ["a", "b"])
    with pytest.raises(ValueError, match="its keypoint set has 17 keypoints, the head 2"):
        hrnet.load_model(weights)


def test_export_refuses_flip_without_flip_pairs(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    names = ["nose", "chin", "forehead"]
    ks = {"name": "face3", "names": names, "flip_pairs": [], "skeleton": [[0, 1], [0, 2]]}
    weights = _pose_weights(tmp_path / "face.safetensors", {"keypoint_set": ks}, names)
    out = tmp_path / "face.onnx"
    assert main(["export", str(weights), "--decode", "--flip", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no flip pairs" in err[0] and "export without --flip" in err[0]
    assert not out.exists()
    assert main(["export", str(weights), "--decode", "-o", str(out), "--no-check"]) == 0 and out.is_file()


def test_seg_and_cls_cards_are_checked(tmp_path):
    model = hrnet.create_model("seg_hrnet_w18_small_v1", num_classes=2, stage_blocks=(1, 1, 1))
    card = ModelCard(task="seg", model="seg_hrnet_w18_small_v1", num_outputs=2, labels=["a", "b"], overrides=SMALL)
    path = hrnet.save_weights(model, tmp_path / "seg.safetensors", card=card)
    with pytest.raises(ValueError, match=r"seg\.safetensors: .*a seg card needs meta\.palette"):
        hrnet.load_model(path)
    card.meta = {"palette": [[0, 0, 0]]}
    hrnet.save_weights(model, path, card=card)
    with pytest.raises(ValueError, match=r"meta\.palette must hold 2 \[R, G, B\] colours, got 1"):
        hrnet.load_model(path)
    card.meta = {"palette": [[0, 0, 0], [255, 0, 0]], "flip_pairs": [[0, 5]]}
    hrnet.save_weights(model, path, card=card)
    with pytest.raises(ValueError, match=r"flip_pairs entry \[0, 5\] is not two class indices"):
        hrnet.load_model(path)
    cls = hrnet.create_model("hrnet_w18_small_v1", num_classes=2, stage_blocks=(1, 1, 1))
    card = ModelCard(task="cls", model="hrnet_w18_small_v1", num_outputs=2, labels=["a", "b"], overrides=SMALL)
    card.meta = {"class_ids": ["n1"]}
    path = hrnet.save_weights(cls, tmp_path / "cls.safetensors", card=card)
    with pytest.raises(ValueError, match="meta.class_ids must list 2 class ids, got 1"):
        hrnet.load_model(path)
