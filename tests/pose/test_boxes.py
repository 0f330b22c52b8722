"""Predict-time person boxes: one validator for Python lists, the dict JSON, COCO results and COCO
ground-truth files. Every bad box gives a message naming it (or a count under ``skip_bad``), never a
traceback from deeper down; truth is hand-made boxes and the real COCO sample files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hrnet.pose.boxes import BOXES_HELP, BoxError, boxes_for, describe_counts, load_boxes_file, validate_boxes

H, W = 864, 900  # the image of the issue: 900 wide, 864 high


def test_clip_and_drop_counted():
    boxes = [
        [10, 20, 200, 300, 0.9],  # inside: unchanged
        [-50, -40, 5000, 4983, 0.8],  # far beyond: clipped to the image
        [950, 10, 1200, 200, 0.7],  # wholly right of the image: dropped
        [10, -300, 100, 0, 0.6],
    ]  # wholly above (ends on the border): dropped
    valid, counts = validate_boxes(boxes, (H, W))
    assert counts == {"clipped": 1, "outside": 2, "bad": 0}
    np.testing.assert_allclose(valid, [[10, 20, 200, 300, 0.9], [0, 0, W, H, 0.8]])
    assert describe_counts(counts) == "1 box clipped to the image, 2 boxes wholly outside the image dropped"


def test_size_is_height_then_width():
    # (H, W) = (100, 300): x up to 300 is inside, y beyond 100 is outside
    valid, counts = validate_boxes([[250, 10, 280, 50], [10, 150, 50, 180]], (100, 300))
    assert counts["outside"] == 1 and valid.tolist() == [[250, 10, 280, 50, 1.0]]


def test_border_box_of_a_detector_is_not_clipped():
    valid, counts = validate_boxes(np.array([[0, 0, W, H, 0.5]], dtype=np.float32), (H, W))
    assert counts == {"clipped": 0, "outside": 0, "bad": 0} and valid.shape == (1, 5)


@pytest.mark.parametrize(
    "box, why",
    [
        ([10, 20, math.nan, 300], "holds NaN"),
        ([10, 20, 200, math.inf], "holds an infinite value"),
        ([10, 20, 200, 300, math.nan], "holds NaN"),
        ([10, 20, 10, 300], "has no area"),
        ([200, 20, 10, 300], "has no area"),
    ],
)
def test_bad_boxes_are_named_or_counted(box, why):
    boxes = [[1, 1, 50, 50], box]
    with pytest.raises(BoxError, match=rf"^img.jpg: box 1 \[.*\] {why}"):
        validate_boxes(boxes, (H, W), source="img.jpg")
    valid, counts = validate_boxes(boxes, (H, W), skip_bad=True)
    assert counts["bad"] == 1 and valid.tolist() == [[1, 1, 50, 50, 1.0]]


def test_shape_and_type_errors():
    with pytest.raises(BoxError, match=r"\(N, 4\) or \(N, 5\).*shape \(1, 3\)"):
        validate_boxes([[1, 2, 3]], (H, W))
    with pytest.raises(BoxError, match="must be numbers"):
        validate_boxes([["a", 2, 3, 4]], (H, W))
    assert validate_boxes([], (H, W))[0].shape == (0, 5)


def _json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_dict_and_coco_list_formats_agree_on_zero_area(tmp_path):
    """A zero-area box: the same error whichever file format carried it (it used to abort in one format and
    vanish silently in the other)."""
    as_dict = load_boxes_file(_json(tmp_path / "d.json", {"a.jpg": [[10, 10, 10, 50, 0.9]]}))
    as_list = load_boxes_file(
        _json(tmp_path / "l.json", [{"image_id": 7, "category_id": 1, "bbox": [10, 10, 0, 40], "score": 0.9}])
    )
    for table, file in ((as_dict, Path("a.jpg")), (as_list, Path("000007.jpg"))):
        with pytest.raises(BoxError, match="box 0 .* has no area"):
            validate_boxes(boxes_for(table, file), (H, W))
        assert validate_boxes(boxes_for(table, file), (H, W), skip_bad=True)[1]["bad"] == 1


def test_nan_and_infinity_in_json(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text('{"a.jpg": [[NaN, 1, 2, 3], [1, 1, Infinity, 5]]}')
    table = load_boxes_file(path)
    with pytest.raises(BoxError, match="box 0 .* holds NaN"):
        validate_boxes(table["a.jpg"], (H, W))
    assert validate_boxes(table["a.jpg"], (H, W), skip_bad=True)[1]["bad"] == 2


def test_coco_results_file_of_the_sample(coco_dir):
    table = load_boxes_file(coco_dir / "person_detection_results_AP_H_56_sample.json")
    dets = json.loads((coco_dir / "person_detection_results_AP_H_56_sample.json").read_text())
    mine = [d for d in dets if d["image_id"] == 785]
    boxes = boxes_for(table, Path("000000000785.jpg"))
    assert boxes.shape == (len(mine), 5)
    x, y, w, h = mine[0]["bbox"]
    np.testing.assert_allclose(boxes[0], [x, y, x + w, y + h, mine[0]["score"]])


def test_coco_ground_truth_file_is_accepted(coco_dir, tmp_path):
    table = load_boxes_file(coco_dir / "person_keypoints_sample.json")
    gt = json.loads((coco_dir / "person_keypoints_sample.json").read_text())
    anns = [a for a in gt["annotations"] if a["image_id"] == 40083 and not a["iscrowd"]]
    by_name = boxes_for(table, Path("000000040083.jpg"))
    assert by_name.shape == (len(anns), 5) and np.all(by_name[:, 4] == 1.0)
    x, y, w, h = anns[0]["bbox"]
    np.testing.assert_allclose(by_name[0, :4], [x, y, x + w, y + h])
    # crowd regions and other categories are not people to pose
    gt["annotations"].append({**anns[0], "id": 99, "iscrowd": 1})
    gt["categories"].append({"id": 2, "name": "dog"})
    gt["annotations"].append({**anns[0], "id": 98, "category_id": 2})
    again = load_boxes_file(_json(tmp_path / "gt.json", gt))
    assert boxes_for(again, Path("000000040083.jpg")).shape == (len(anns), 5)


def test_file_errors_name_the_file_and_entry(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json: boxes file not found"):
        load_boxes_file(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BoxError, match="bad.json: not a JSON boxes file"):
        load_boxes_file(tmp_path / "bad.json")
    with pytest.raises(BoxError, match=r"s.json: boxes of 'a.jpg': box 1 must be 4 or 5 numbers"):
        load_boxes_file(_json(tmp_path / "s.json", {"a.jpg": [[1, 2, 3, 4], ["1", 2, 3, 4]]}))
    with pytest.raises(BoxError, match=r"r.json: entry 0: bbox must be four numbers"):
        load_boxes_file(_json(tmp_path / "r.json", [{"image_id": 1, "bbox": [1, 2, 3]}]))
    with pytest.raises(BoxError, match="got a JSON int"):
        load_boxes_file(_json(tmp_path / "i.json", 3))


def test_lookup_and_help():
    table = {"785": np.zeros((1, 5)), "b": np.ones((2, 5))}
    assert boxes_for(table, Path("000000000785.jpg")).shape == (1, 5)
    assert boxes_for(table, Path("dir/b.png")).shape == (2, 5) and boxes_for(table, Path("c.jpg")) is None
    for word in ("COCO detection results", "ground-truth", "--skip-bad", "clipped"):
        assert word in BOXES_HELP
