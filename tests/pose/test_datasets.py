"""COCO dataset items, augmentation, and bad input: clear errors naming the file / annotation, counted skips."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hrnet.io import ImageReadError
from hrnet.pose.datasets import CocoKeypoints, PoseAugment
from hrnet.pose.keypoints import COCO_KEYPOINTS


def _person(ann_id: int, image_id: int, bbox, k: int = 17) -> dict:
    kp = []
    for i in range(k):
        kp += [bbox[0] + bbox[2] * (i + 1) / (k + 1), bbox[1] + bbox[3] * (i + 1) / (k + 1), 2]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": kp,
        "num_keypoints": k,
        "bbox": bbox,
        "area": bbox[2] * bbox[3],
        "iscrowd": 0,
    }


def _dataset_dir(tmp_path: Path, anns: list[dict], modes=("RGB",)) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    entries = []
    for i, mode in enumerate(modes, start=1):
        name = f"{i:06d}.png"
        Image.new(mode, (64, 48), color=128 if mode == "L" else (10, 20, 30, 40)[: len(mode)]).save(images / name)
        entries.append({"id": i, "file_name": name, "width": 64, "height": 48})
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": entries, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}))
    return ann, images


def test_items_and_gray_rgba_images(tmp_path):
    anns = [_person(1, 1, [10, 5, 30, 40]), _person(2, 2, [5, 5, 20, 30]), _person(3, 3, [0, 0, 60, 40])]
    ann, images = _dataset_dir(tmp_path, anns, modes=("RGB", "L", "RGBA"))
    ds = CocoKeypoints(ann, images, input_size=(48, 64))
    assert len(ds) == 3
    for i in range(3):
        item = ds[i]
        assert item["image"].shape == (3, 64, 48) and item["target"].shape == (17, 16, 12)
        assert item["target_weight"].shape == (17, 1) and item["meta"]["image_id"] == i + 1
    gray = ds[1]["image"]  # grayscale -> three equal channels before normalisation
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    center = gray[:, 32, 24].numpy() * std + mean
    np.testing.assert_allclose(center, [128 / 255] * 3, atol=1e-5)


def test_skips_are_counted(tmp_path, caplog):
    anns = [_person(1, 1, [10, 5, 30, 40]), _person(2, 1, [10, 5, 0, 40]), _person(3, 1, [100, 80, 20, 20])]
    no_kp = _person(4, 1, [10, 5, 30, 40])
    no_kp["keypoints"] = [0] * 51
    no_kp["num_keypoints"] = 0
    anns.append(no_kp)
    ann, images = _dataset_dir(tmp_path, anns)
    with caplog.at_level(logging.WARNING, logger="hrnet.pose"):
        ds = CocoKeypoints(ann, images, input_size=(48, 64))
    assert len(ds) == 1
    assert ds.skipped == {"zero-area box": 1, "box outside the image": 1, "without labelled keypoints": 1}
    assert "skipped 3 person boxes" in caplog.text and str(ann) in caplog.text


def test_wrong_keypoint_length_names_annotation(tmp_path):
    bad = _person(4242, 1, [10, 5, 30, 40])
    bad["keypoints"] = bad["keypoints"][:-3]
    ann, images = _dataset_dir(tmp_path, [bad])
    with pytest.raises(ValueError, match=r"ann.json: annotation id 4242: keypoints has 48 values, expected 51"):
        CocoKeypoints(ann, images)


def test_missing_and_corrupt_images(tmp_path):
    ann, images = _dataset_dir(tmp_path, [_person(1, 1, [10, 5, 30, 40])])
    (images / "000001.png").unlink()
    with pytest.raises(FileNotFoundError, match="000001.png"):
        CocoKeypoints(ann, images)
    (images / "000001.png").write_bytes(b"not an image at all")
    ds = CocoKeypoints(ann, images)
    with pytest.raises(ImageReadError, match="000001.png"):
        ds[0]


def test_detection_files(tmp_path):
    ann, images = _dataset_dir(tmp_path, [_person(1, 1, [10, 5, 30, 40])])
    dets = tmp_path / "dets.json"
    dets.write_text("[]")
    with pytest.raises(ValueError, match="dets.json: the detections file holds no boxes"):
        CocoKeypoints(ann, images, boxes=dets)
    dets.write_text("")
    with pytest.raises(ValueError, match="dets.json: person detections file is empty"):
        CocoKeypoints(ann, images, boxes=dets)
    dets.write_text(
        json.dumps(
            [
                {"image_id": 1, "category_id": 1, "bbox": [10, 5, 30, 40], "score": 0.9},
                {"image_id": 1, "category_id": 1, "bbox": [10, 5, 0, 40], "score": 0.9},
                {"image_id": 1, "category_id": 1, "bbox": [500, 5, 30, 40], "score": 0.9},
                {"image_id": 1, "category_id": 1, "bbox": [10, 5, 30, 40], "score": 0.1},
                {"image_id": 99, "category_id": 1, "bbox": [10, 5, 30, 40], "score": 0.9},
            ]
        )
    )
    ds = CocoKeypoints(ann, images, boxes=dets, det_score_thr=0.3)
    assert len(ds) == 1 and ds[0]["meta"]["score"] == pytest.approx(0.9)
    assert ds.skipped == {"zero-area box": 1, "box outside the image": 1, "score below 0.3": 1, "unknown image_id": 1}


def test_flip_augmentation_swaps_pairs(tmp_path):
    """With only the flip on (p = 1/2 per draw), a flipped sample's left-shoulder heatmap is the mirror
    of the right-shoulder one of the unflipped sample."""
    ann, images = _dataset_dir(tmp_path, [_person(1, 1, [10, 5, 30, 40])])
    plain = CocoKeypoints(ann, images, input_size=(48, 64))
    aug = PoseAugment(rot_prob=0.0, scale_factor=0.0, flip=True, half_body_prob=0.0)
    ds = CocoKeypoints(ann, images, input_size=(48, 64), train=True, augment=aug)
    base = plain[0]["target"].numpy()
    ls, rs = COCO_KEYPOINTS.names.index("left_shoulder"), COCO_KEYPOINTS.names.index("right_shoulder")
    seen_flip = False
    for seed in range(8):
        np.random.seed(seed)
        t = ds[0]["target"].numpy()
        if np.allclose(t, base):
            continue
        seen_flip = True
        peak = np.unravel_index(t[ls].argmax(), t[ls].shape)
        mirror = np.unravel_index(base[rs].argmax(), base[rs].shape)
        assert peak[0] == mirror[0] and abs(peak[1] - (base.shape[2] - 1 - mirror[1])) <= 1
    assert seen_flip
