"""``hrnet <task> check-data``: a dataset with each problem planted once reports each problem once.

Pose is built from the real COCO sample (its images linked, its JSON edited); segmentation and
classification from small generated folders. The CLI is driven through ``hrnet.cli.main``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hrnet.classification.check import check_cls_data
from hrnet.classification.config import ClsConfig
from hrnet.cli import main
from hrnet.datacheck import DataReport
from hrnet.engine.config import load_config
from hrnet.pose.check import check_pose_data
from hrnet.pose.config import PoseConfig
from hrnet.segmentation.check import check_seg_data
from hrnet.segmentation.config import SegConfig

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_kpt_sample"


def _counts(report: DataReport) -> dict[str, int]:
    return {k: n for k, n in report.counts.items() if report.severity[k] != "note"}


# ---------------------------------------------------------------------------------------------------
# pose


@pytest.fixture()
def pose_config(tmp_path) -> Path:
    if not (SAMPLE / "person_keypoints_sample.json").is_file():
        pytest.skip(f"COCO keypoint sample not found at {SAMPLE}")
    images = tmp_path / "images"
    images.mkdir()
    for f in (SAMPLE / "images").iterdir():
        (images / f.name).symlink_to(f.resolve())
    (images / "empty.jpg").symlink_to((SAMPLE / "images" / "000000000785.jpg").resolve())
    (images / "broken.jpg").write_bytes(b"this is not a jpeg")
    data = json.loads((SAMPLE / "person_keypoints_sample.json").read_text())
    anns = {a["id"]: a for a in data["annotations"]}
    good = anns[442619]
    data["images"] += [
        {"id": 1, "file_name": "missing.jpg", "width": 640, "height": 425},  # missing image
        {"id": 2, "file_name": "broken.jpg", "width": 640, "height": 425},  # unreadable image
        {"id": 3, "file_name": "empty.jpg", "width": 640, "height": 425},  # empty image
        {"id": 785, "file_name": "000000000785.jpg"},  # duplicate image id
    ]
    next(i for i in data["images"] if i["id"] == 40083)["width"] += 10  # size differs from the file
    data["annotations"] += [{**good, "id": 11, "image_id": 1}, {**good, "id": 12, "image_id": 2}]
    kp = list(good["keypoints"])
    kp[0] = -2000  # keypoint outside the image
    good["keypoints"] = kp
    anns[460541]["bbox"] = [5000.0, 10.0, 50.0, 80.0]  # box outside the image
    anns[437295]["bbox"] = [10.0, 10.0, 0.0, 80.0]  # box without area
    anns[488308]["id"] = 467657  # duplicate annotation id
    anns[531914]["keypoints"] = [str(v) for v in anns[531914]["keypoints"]]  # wrong type
    (tmp_path / "ann.json").write_text(json.dumps(data))
    cfg = tmp_path / "pose.yaml"
    cfg.write_text(
        f"data: {{root: {tmp_path}, train_ann: ann.json, train_images: images, val_ann: ann.json, "
        "val_images: images}\n"
    )
    return cfg


def test_pose_each_planted_problem_counted_once(pose_config):
    report = check_pose_data(load_config(PoseConfig, pose_config))
    assert _counts(report) == {
        "missing image": 1,
        "unreadable image": 1,
        "image size differs from the JSON": 1,
        "keypoint outside image": 1,
        "box outside image": 1,
        "box without area": 1,
        "duplicate image id": 1,
        "duplicate annotation id": 1,
        "bad annotation": 1,
    }
    assert report.counts["empty image (no annotated person)"] == 1 and not report.ok
    lines = {k: report.examples[k][0].line() for k in report.counts}
    assert (
        "ann.json: annotation id 442619" in lines["keypoint outside image"]
        and "-2000" in lines["keypoint outside image"]
    )
    assert "annotation id 531914" in lines["bad annotation"] and "(a str)" in lines["bad annotation"]
    assert "missing.jpg" in lines["missing image"] and "says 510x333" in lines["image size differs from the JSON"]


def test_pose_cli_table_json_and_exit_status(pose_config, capsys):
    assert main(["pose", "check-data", "--config", str(pose_config)]) == 1
    out = capsys.readouterr().out
    assert ": 6 errors, 3 warnings" in out and "missing image" in out and "missing.jpg" in out
    assert main(["pose", "check-data", "--config", str(pose_config), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    kinds = {p["kind"]: p for p in report["problems"]}
    assert kinds["duplicate image id"]["count"] == 1 and kinds["duplicate image id"]["severity"] == "error"
    assert report["ok"] is False and report["errors"] == 6 and report["warnings"] == 3


def test_clean_sample_passes_and_training_prints_the_summary(tmp_path, caplog):
    if not (SAMPLE / "person_keypoints_sample.json").is_file():
        pytest.skip("COCO keypoint sample not found")
    from hrnet.pose.train import train

    tiny = Path(__file__).resolve().parents[1] / "configs" / "pose" / "sample" / "tiny.yaml"
    cfg = load_config(
        PoseConfig, tiny, [f"data.root={SAMPLE}", "data.input_size=[48,64]", "train.epochs=1", "train.eval_every=0"]
    )
    assert check_pose_data(cfg).ok
    with caplog.at_level(logging.INFO, logger="hrnet.pose"):
        train(cfg, tmp_path, device="cpu")
    assert "pose data check (4 image entries, 14 annotations, 4 images): 0 errors" in caplog.text


# ---------------------------------------------------------------------------------------------------
# segmentation (folder format)


def _png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array.astype(np.uint8)).save(path)


def test_seg_folder_each_planted_problem_counted_once(tmp_path, capsys):
    root = tmp_path / "seg"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.yaml").write_text("names: [background, road]\nignore_index: 255\n")
    rgb = np.zeros((24, 32, 3), np.uint8)
    mask = np.zeros((24, 32), np.uint8)
    mask[:, 16:] = 1
    for stem in ("good", "nomask", "badmask", "bigmask", "value", "ignored", "broken"):
        _png(root / "images" / f"{stem}.png", rgb)
    (root / "images" / "broken.png").write_bytes(b"not a png")
    for stem in ("good", "broken", "orphan"):
        _png(root / "masks" / f"{stem}.png", mask)
    (root / "masks" / "badmask.png").write_bytes(b"garbage")
    _png(root / "masks" / "bigmask.png", np.zeros((30, 32)))
    _png(root / "masks" / "value.png", np.where(mask == 1, 7, 0))
    _png(root / "masks" / "ignored.png", np.full((24, 32), 255))
    cfg_file = tmp_path / "seg.yaml"
    cfg_file.write_text(
        f"data: {{dataset: folder, root: {root}, num_classes: 2, train_split: train, val_split: train}}\n"
    )
    report = check_seg_data(load_config(SegConfig, cfg_file))
    assert _counts(report) == {
        "image without mask": 1,
        "mask without image": 1,
        "unreadable mask": 1,
        "unreadable image": 1,
        "mask size differs from image": 1,
        "label value outside the classes": 1,
        "mask is all ignore": 1,
    }
    assert "value.png" in report.examples["label value outside the classes"][0].where
    assert "[7]" in report.examples["label value outside the classes"][0].message
    assert main(["seg", "check-data", "--config", str(cfg_file), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["errors"] == 5


# ---------------------------------------------------------------------------------------------------
# classification (ImageFolder)


def test_cls_folder_each_planted_problem_counted_once(tmp_path, capsys):
    train, val = tmp_path / "train", tmp_path / "val"
    for d in (train / "cat", train / "dog", train / "fish", val / "cat", val / "bird"):
        d.mkdir(parents=True)
    img = Image.new("RGB", (16, 16), (90, 10, 200))
    for d, n in ((train / "cat", 2), (train / "fish", 1), (val / "cat", 1), (val / "bird", 1)):
        for i in range(n):
            img.save(d / f"{i}.png")
    (train / "fish" / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    (train / "cat" / "notes.txt").write_text("not an image")
    cfg_file = tmp_path / "cls.yaml"
    cfg_file.write_text(f"model: {{num_classes: 3}}\ndata: {{train: {train}, val: {val}}}\n")
    report = check_cls_data(load_config(ClsConfig, cfg_file))
    assert _counts(report) == {"empty class": 1, "unreadable image": 1, "class not in the training split": 1}
    assert report.counts["not an image file (ignored)"] == 1
    assert report.examples["empty class"][0].where.endswith("dog")
    quick = check_cls_data(load_config(ClsConfig, cfg_file), level="quick")
    assert "unreadable image" not in quick.counts  # quick decodes nothing
    assert main(["cls", "check-data", "--config", str(cfg_file)]) == 1
    out = capsys.readouterr().out
    assert "empty class" in out and "bad.jpg" in out
