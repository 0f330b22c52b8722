"""COCO instances on the real 16-image sample: ids, boxes, polygon and RLE masks, crowd, skipping, groups."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from hrnet.detection.datasets import AnnotationError, CocoDetection, GroupedBatches, aspect_ratio_groups

ANN = "instances_sample.json"


@pytest.fixture(scope="module")
def raw(det_dir):
    return json.loads((det_dir / ANN).read_text())


def test_contiguous_labels_map_back_to_file_ids(det_dir, raw):
    ds = CocoDetection(det_dir / ANN, det_dir / "images")
    assert ds.num_classes == 80 and len(ds) == 16
    assert ds.category_ids == sorted(c["id"] for c in raw["categories"])
    assert ds.category_ids[-1] == 90 and ds.cat_to_label[90] == 80  # COCO's ids have gaps
    names = {c["id"]: c["name"] for c in raw["categories"]}
    assert [names[i] for i in ds.category_ids] == ds.class_names
    for i in range(len(ds)):
        t = ds.target(i)
        labels = t["labels"].tolist()
        file_ids = sorted(
            a["category_id"] for a in raw["annotations"] if a["image_id"] == int(t["image_id"]) and not a["iscrowd"]
        )
        assert sorted(ds.category_ids[lab - 1] for lab in labels) == file_ids


def test_boxes_masks_and_crowd(det_dir, raw):
    ds = CocoDetection(det_dir / ANN, det_dir / "images")
    crowd = next(a for a in raw["annotations"] if a["iscrowd"])
    index = ds.image_ids.index(crowd["image_id"])
    t = ds.target(index)
    anns = [a for a in raw["annotations"] if a["image_id"] == crowd["image_id"] and not a["iscrowd"]]
    assert len(t["boxes"]) == len(anns)  # the crowd region is not a training target
    x, y, w, h = anns[0]["bbox"]
    torch.testing.assert_close(t["boxes"][0], torch.tensor([x, y, x + w, y + h]))
    info = ds.image_info(index)
    # polygon -> mask: pycocotools' own rasterisation, and the mask lies inside its box
    rle = mask_utils.merge(mask_utils.frPyObjects(anns[0]["segmentation"], info["height"], info["width"]))
    assert np.array_equal(t["masks"][0].numpy(), mask_utils.decode(rle))
    ys, xs = np.nonzero(t["masks"][0].numpy())
    assert xs.min() >= int(x) and xs.max() <= x + w and ys.min() >= int(y) and ys.max() <= y + h
    # the crowd RLE (uncompressed counts: runs of 0s, 1s, 0s, ...) decodes to as many pixels as its 1-runs
    crowd_mask = ds.coco.annToMask(crowd)
    assert int(crowd_mask.sum()) == sum(crowd["segmentation"]["counts"][1::2])
    image, target = ds[index]
    assert image.shape == (3, info["height"], info["width"]) and 0.0 <= float(image.min()) <= float(image.max()) <= 1.0
    assert target["masks"].shape == (len(anns), info["height"], info["width"])


def test_unusable_images_are_skipped_and_counted(det_dir, raw, tmp_path):
    data = json.loads(json.dumps(raw))
    crowd_image = next(a["image_id"] for a in data["annotations"] if a["iscrowd"])
    bare = data["images"][0]["id"] if data["images"][0]["id"] != crowd_image else data["images"][1]["id"]
    # one image keeps only a crowd region, one has a zero-width box only
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != crowd_image or a["iscrowd"]]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != bare]
    data["annotations"].append(
        {
            "id": 10**9,
            "image_id": bare,
            "category_id": 1,
            "bbox": [5, 5, 0, 10],
            "area": 0,
            "iscrowd": 0,
            "segmentation": [],
        }
    )
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    train = CocoDetection(path, det_dir / "images", train=True)
    assert (len(train), train.skipped) == (14, 2)
    assert crowd_image not in train.image_ids and bare not in train.image_ids
    assert len(CocoDetection(path, det_dir / "images", train=False)) == 16  # evaluation keeps every image


def test_bad_files_give_one_clear_error(det_dir, raw, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        CocoDetection(tmp_path / "nothing.json", det_dir / "images")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(AnnotationError, match="bad.json"):
        CocoDetection(bad, det_dir / "images")
    data = json.loads(json.dumps(raw))
    data["annotations"][3]["category_id"] = 1234
    bad.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"bad.json: annotation \d+ has category 1234"):
        CocoDetection(bad, det_dir / "images")
    data["annotations"][3]["category_id"] = 1
    data["annotations"][3]["bbox"] = [1, 2, 3]
    bad.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"bbox must be \[x, y, w, h\]"):
        CocoDetection(bad, det_dir / "images")


def test_aspect_ratio_groups(det_dir):
    # torchvision's bins for k=3: 2**linspace(-1, 1, 7) = 0.5, 0.63, 0.79, 1, 1.26, 1.59, 2
    assert aspect_ratio_groups([0.4, 0.7, 1.0, 1.33, 1.5, 3.0], 3) == [0, 2, 4, 5, 5, 7]
    assert aspect_ratio_groups([0.4, 3.0], 0) == [0, 0]
    ds = CocoDetection(det_dir / ANN, det_dir / "images", train=True)
    batches = GroupedBatches(ds, batch_size=3, group_factor=3, seed=0)
    groups = aspect_ratio_groups(ds.aspect_ratios(), 3)
    first = [list(b) for b in batches.batches]
    assert sorted(i for b in first for i in b) == list(range(len(ds)))
    assert all(len({groups[i] for i in b}) == 1 for b in first)  # one shape group per batch
    batches.set_epoch(1)
    assert len(batches.batches) == len(first) and batches.batches != first  # new draw, same count
    batches.set_epoch(0)
    assert batches.batches == first  # and reproducible
    item = batches[0]
    assert item["image_ids"].shape == (len(first[0]),) and len(item["images"]) == len(item["targets"])
