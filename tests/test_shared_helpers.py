"""The small helpers every task shares (hrnet.labels, hrnet.coco, hrnet.paths, hrnet.io.image_size,
Result.save options), checked against values written out by hand."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hrnet.coco import coco_index
from hrnet.io import ImageReadError, image_size
from hrnet.labels import (
    canonical_name,
    check_num_classes,
    flip_pairs_from_names,
    flip_permutation,
    inverse_permutation,
)
from hrnet.paths import under_root
from hrnet.pose.codec import HeatmapCodec, heatmap_to_coords
from hrnet.pose.keypoints import COCO_KEYPOINTS, MPII_KEYPOINTS
from hrnet.pose.transforms import affine_points, get_affine_transform
from hrnet.segmentation.api import SegResult
from hrnet.segmentation.labels import LIP_CLASSES, LIP_FLIP_PAIRS

# COCO's order: the nose, then each body part left before right, from the eyes down to the ankles
PARTS = ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")
COCO17 = ["nose"] + [f"{side}_{part}" for part in PARTS for side in ("left", "right")]
# each COCO keypoint's mirror image, written out by hand: the nose stays, left/right neighbours swap
COCO17_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def test_coco17_flip_permutation_by_hand():
    pairs = flip_pairs_from_names(COCO17)
    assert pairs == [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]
    assert flip_permutation(17, pairs) == COCO17_FLIP
    assert COCO_KEYPOINTS.names == COCO17 and COCO_KEYPOINTS.flip_index() == COCO17_FLIP


def test_mpii_pairs_from_names_right_side_first():
    # MPII lists the right side first: r_ankle 0 .. r_hip 2, l_hip 3 .. l_ankle 5, r_wrist 10 .. r_shoulder 12,
    # l_shoulder 13 .. l_wrist 15; pairs come as (left, right) in the order of the left names
    assert flip_pairs_from_names(MPII_KEYPOINTS.names) == [(3, 2), (4, 1), (5, 0), (13, 12), (14, 11), (15, 10)]
    expected = [5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10]
    assert MPII_KEYPOINTS.flip_index() == expected
    assert flip_permutation(16, flip_pairs_from_names(MPII_KEYPOINTS.names)) == expected


def test_pairs_from_other_spellings_and_lip_classes():
    assert canonical_name("LShoulder") == "left_shoulder" and canonical_name("r-knee") == "right_knee"
    assert flip_pairs_from_names(["head", "RShoulder", "LShoulder", "left hand"]) == [(2, 1)]  # no right hand
    # LIP names its sides with hyphens: the name rule finds the dataset's own pairs (14<->15, 16<->17, 18<->19)
    assert flip_pairs_from_names(LIP_CLASSES) == [tuple(p) for p in LIP_FLIP_PAIRS] == [(14, 15), (16, 17), (18, 19)]


def test_flip_permutation_rejects_pairs_outside():
    with pytest.raises(ValueError, match=r"flip pair \(2, 5\) is outside the 4 channels"):
        flip_permutation(4, [(2, 5)])
    assert flip_permutation(3, []) == [0, 1, 2]


def test_inverse_permutation():
    assert inverse_permutation([2, 0, 1]) == [1, 2, 0]  # 0 went to 2, so 2 comes back to 0
    assert inverse_permutation(COCO17_FLIP) == COCO17_FLIP  # pairs undo themselves
    with pytest.raises(ValueError, match="not a permutation"):
        inverse_permutation([0, 0, 1])


def test_check_num_classes():
    check_num_classes("w.safetensors", None, 19)
    check_num_classes("w.safetensors", 19, 19)
    with pytest.raises(ValueError) as err:
        check_num_classes("w.safetensors", 7, 21, "classify")
    assert str(err.value) == (
        "w.safetensors: num_classes=7 but the weights classify 21 classes "
        "(leave num_classes out to use them as they are)"
    )


def test_coco_index_is_quiet(capsys):
    data = {
        "images": [{"id": 4, "file_name": "a.jpg", "width": 10, "height": 8}],
        "annotations": [
            {"id": 1, "image_id": 4, "category_id": 1, "bbox": [1, 1, 3, 3], "area": 9, "iscrowd": 0},
            {"id": 2, "image_id": 4, "category_id": 1, "bbox": [5, 2, 2, 2], "area": 4, "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    coco = coco_index(data)
    assert capsys.readouterr().out == ""  # pycocotools prints "creating index..." unless silenced
    assert sorted(coco.getAnnIds(imgIds=[4])) == [1, 2] and coco.dataset is data


def test_under_root(tmp_path):
    assert under_root("/data/coco", "ann/train.json") == Path("/data/coco/ann/train.json")
    assert under_root("/data/coco", tmp_path / "x.json") == tmp_path / "x.json"


def test_image_size(tmp_path):
    path = tmp_path / "wide.png"
    noise = np.random.default_rng(0).integers(0, 256, (30, 70, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    assert image_size(path) == (70, 30) and image_size(path, decode=True) == (70, 30)
    cut = tmp_path / "cut.png"
    cut.write_bytes(path.read_bytes()[:2000])  # header intact, most pixels cut off
    assert image_size(cut) == (70, 30)
    with pytest.raises(ImageReadError, match=r"cut\.png: cannot decode image"):
        image_size(cut, decode=True)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageReadError, match=r"text\.png: cannot read image"):
        image_size(tmp_path / "text.png")
    with pytest.raises(FileNotFoundError, match=r"gone\.png: image file not found"):
        image_size(tmp_path / "gone.png")


def test_codec_decodes_with_dark_set_at_construction():
    """A peak between pixels: DARK (set on the codec) lands nearer the truth than the quarter-pixel step."""
    w, h = 48, 64
    ys, xs = np.mgrid[0:h, 0:w]
    true_xy = (20.3, 30.6)
    hm = np.exp(-((xs - true_xy[0]) ** 2 + (ys - true_xy[1]) ** 2) / (2 * 2.0**2)).astype(np.float32)[None, None]
    center, scale = np.array([[96.0, 128.0]]), np.array([[0.96, 1.28]])  # 192x256 px region -> 48x64 heatmap
    plain = HeatmapCodec((192, 256), (w, h))
    dark = HeatmapCodec((192, 256), (w, h), dark=True)
    assert dark.with_dark(False).dark is False and plain.with_dark(True).heatmap_size == (w, h)
    got_plain, _ = plain.decode(torch.from_numpy(hm), center, scale)
    got_dark, _ = dark.decode(hm, center, scale)
    inv = get_affine_transform(center[0], scale[0], 0.0, (w, h), inv=True)
    truth = affine_points(np.array(true_xy), inv)
    expected_dark = affine_points(heatmap_to_coords(hm, dark=True)[0][0, 0], inv)
    np.testing.assert_allclose(got_dark[0, 0], expected_dark)
    assert np.abs(got_dark[0, 0] - truth).max() < 0.1 < np.abs(got_plain[0, 0] - truth).max()


def test_result_save_passes_plot_options(tmp_path):
    """``save(path, **options)`` draws with the options: opaque labels, no legend -> pure palette colours."""
    labels = np.array([[0, 1, 1], [1, 0, 0]])
    result = SegResult(np.full((2, 3, 3), 100, np.uint8), labels, ["bg", "thing"], [(0, 0, 0), (200, 10, 30)])
    written = result.save(tmp_path / "opaque.png", alpha=1.0, legend=False)
    assert [p.name for p in written] == ["opaque.png", "opaque.png.labels.png"]
    got = np.asarray(Image.open(tmp_path / "opaque.png").convert("RGB"))
    expected = np.where(labels[..., None] == 1, [200, 10, 30], [0, 0, 0])
    np.testing.assert_array_equal(got, expected)
    result.save(tmp_path / "default.png")  # default options: half blend and a legend panel to the right
    default = np.asarray(Image.open(tmp_path / "default.png").convert("RGB"))
    assert default.shape[1] > 3 and tuple(default[0, 0]) == (50, 50, 50)


def test_image_size_of_a_decompression_bomb_is_one_line_and_no_warning(tmp_path, monkeypatch):
    """A header above PIL's bomb limit: one ImageReadError naming the file; below it, no raw PIL warning."""
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 50, 3), dtype=np.uint8)).save(path)  # 2000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # warns above 600 px, refuses above 1200 px
    with pytest.raises(ImageReadError, match=r"big\.png: .*above the reader's limit"):
        image_size(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # 2000 px: PIL would warn, the reader stays quiet
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert image_size(path) == (50, 40)
